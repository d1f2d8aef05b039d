//! The WASI a plugin sees: deny-all, and nothing in it may block.
//!
//! wasmtime-wasi's synchronous bindings run every operation that can wait
//! (`poll`, `pollable.block`, blocking stream writes and reads, stream
//! drops, UDP socket creation) by `block_on` on the ambient tokio runtime.
//! Plugins are called from inside a runtime's worker, where that panics:
//! a guest's `println!` or `sleep` took down the task serving the request.
//! A plugin on the request path has nothing to wait for, so these are
//! redefined here: each runs its operation once, without a runtime; what
//! is ready at once (a write to the discarding stdout, an expired clock)
//! completes, and what would wait traps the call ("plugins may not
//! block"), which the sandbox counts and replaces like any other trap.
//!
//! Sockets are refused outright (`allow_tcp`/`allow_udp` off, and the UDP
//! constructor answers `access-denied` without touching the runtime).

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use wasmtime::component::{Linker, Resource, ResourceTable, ResourceType};
use wasmtime::{StoreContextMut, format_err};
use wasmtime_wasi::p2::bindings::io::poll::{Host as _, HostPollable as _};
use wasmtime_wasi::p2::bindings::io::streams::{
    Host as _, HostInputStream, HostOutputStream, StreamError,
};
use wasmtime_wasi::p2::bindings::sockets::network::{ErrorCode, IpAddressFamily};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable, UdpSocket};
use wasmtime_wasi::{WasiCtx, WasiView};

use super::state::PluginState;

/// The WASI version wasmtime-wasi 48 defines; guests built against any
/// 0.2.x link to it.
const POLL: &str = "wasi:io/poll@0.2.12";
const STREAMS: &str = "wasi:io/streams@0.2.12";
const UDP_CREATE: &str = "wasi:sockets/udp-create-socket@0.2.12";

/// The deny-all context: no files, environment, arguments or sockets;
/// stdin is empty, stdout and stderr discard; clocks and random work.
pub(super) fn context() -> WasiCtx {
    WasiCtx::builder()
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build()
}

/// Adds WASI to `linker`: wasmtime-wasi's synchronous bindings with the
/// operations that would block on the runtime replaced.
pub(super) fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    linker.allow_shadowing(true);
    let result = shadow(linker);
    linker.allow_shadowing(false);
    result
}

fn shadow(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    let mut poll = linker.instance(POLL)?;
    poll.func_wrap(
        "poll",
        |mut store: Store<'_>, (pollables,): (Vec<Resource<DynPollable>>,)| {
            let ready = at_once(table(&mut store).poll(pollables)).ok_or_else(would_block)??;
            Ok((ready,))
        },
    )?;
    poll.func_wrap(
        "[method]pollable.ready",
        |mut store: Store<'_>, (pollable,): (Resource<DynPollable>,)| {
            // `ready` never waits; if it were pending, it is not ready.
            let ready = at_once(table(&mut store).ready(pollable)).unwrap_or(Ok(false))?;
            Ok((ready,))
        },
    )?;
    poll.func_wrap(
        "[method]pollable.block",
        |mut store: Store<'_>, (pollable,): (Resource<DynPollable>,)| {
            at_once(table(&mut store).block(pollable)).ok_or_else(would_block)??;
            Ok(())
        },
    )?;

    let mut streams = linker.instance(STREAMS)?;
    streams.resource(
        "output-stream",
        ResourceType::host::<DynOutputStream>(),
        |mut store, rep| {
            let stream = Resource::<DynOutputStream>::new_own(rep);
            // A stream that would flush asynchronously is dropped unflushed.
            at_once(HostOutputStream::drop(table(&mut store), stream)).unwrap_or(Ok(()))
        },
    )?;
    streams.resource(
        "input-stream",
        ResourceType::host::<DynInputStream>(),
        |mut store, rep| {
            let stream = Resource::<DynInputStream>::new_own(rep);
            at_once(HostInputStream::drop(table(&mut store), stream)).unwrap_or(Ok(()))
        },
    )?;
    streams.func_wrap(
        "[method]output-stream.blocking-write-and-flush",
        |mut store: Store<'_>, (stream, bytes): (Resource<DynOutputStream>, Vec<u8>)| {
            let table = table(&mut store);
            let done = at_once(table.blocking_write_and_flush(stream, bytes));
            Ok((finish_blocking(table, done)?,))
        },
    )?;
    streams.func_wrap(
        "[method]output-stream.blocking-write-zeroes-and-flush",
        |mut store: Store<'_>, (stream, len): (Resource<DynOutputStream>, u64)| {
            let table = table(&mut store);
            let done = at_once(table.blocking_write_zeroes_and_flush(stream, len));
            Ok((finish_blocking(table, done)?,))
        },
    )?;
    streams.func_wrap(
        "[method]output-stream.blocking-flush",
        |mut store: Store<'_>, (stream,): (Resource<DynOutputStream>,)| {
            let table = table(&mut store);
            let done = at_once(table.blocking_flush(stream));
            Ok((finish_blocking(table, done)?,))
        },
    )?;
    streams.func_wrap(
        "[method]output-stream.blocking-splice",
        |mut store: Store<'_>,
         (dst, src, len): (Resource<DynOutputStream>, Resource<DynInputStream>, u64)| {
            let table = table(&mut store);
            let done = at_once(table.blocking_splice(dst, src, len));
            Ok((finish_blocking(table, done)?,))
        },
    )?;
    streams.func_wrap(
        "[method]input-stream.blocking-read",
        |mut store: Store<'_>, (stream, len): (Resource<DynInputStream>, u64)| {
            let table = table(&mut store);
            let done = at_once(table.blocking_read(stream, len));
            Ok((finish_blocking(table, done)?,))
        },
    )?;
    streams.func_wrap(
        "[method]input-stream.blocking-skip",
        |mut store: Store<'_>, (stream, len): (Resource<DynInputStream>, u64)| {
            let table = table(&mut store);
            let done = at_once(table.blocking_skip(stream, len));
            Ok((finish_blocking(table, done)?,))
        },
    )?;

    linker.instance(UDP_CREATE)?.func_wrap(
        "create-udp-socket",
        |_: Store<'_>, (_family,): (IpAddressFamily,)| {
            Ok((Err::<Resource<UdpSocket>, _>(ErrorCode::AccessDenied),))
        },
    )?;
    Ok(())
}

type Store<'a> = StoreContextMut<'a, PluginState>;

fn table<'a>(store: &'a mut Store<'_>) -> &'a mut ResourceTable {
    store.data_mut().ctx().table
}

/// Runs `future` once, with no runtime and no waker: its output if it is
/// ready at once.
fn at_once<F: Future>(future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

fn would_block() -> wasmtime::Error {
    format_err!("plugins may not block: the call waited on a WASI pollable or stream")
}

/// A blocking stream operation's answer as the guest sees it: a trap if it
/// would have waited (`None`), a stream error as a value, a trap as a trap.
fn finish_blocking<T>(
    table: &mut ResourceTable,
    done: Option<Result<T, wasmtime_wasi::p2::StreamError>>,
) -> wasmtime::Result<Result<T, StreamError>> {
    match done.ok_or_else(would_block)? {
        Ok(value) => Ok(Ok(value)),
        Err(error) => Ok(Err(table.convert_stream_error(error)?)),
    }
}
