//! Test plugin: misbehaves on purpose, so the host's sandbox can be tested.
//!
//! The `mode` option picks the misbehaviour of `select`:
//! - `spin`: loops forever (the epoch deadline must stop it);
//! - `grow-memory`: allocates without bound (the memory cap must stop it);
//! - `sleep`: sleeps, which waits on a WASI pollable (the host must trap
//!   the call: plugins may not block);
//! - `print`: writes to stdout and stderr, then picks backends in order
//!   (the host discards the output and the call succeeds);
//! - `trap`: executes `unreachable` (the Store must be replaced);
//! - `out-of-range`: returns an index past the last backend;
//! - `error`: returns a plugin error;
//! - `reject-config`: fails `configure` itself.
//!
//! When the request carries an `x-behave: yes` header, `select` behaves and
//! picks backend 0: tests use it to show the instance was replaced.

use bascule_guest_sdk::{Backend, Balancer, Candidates, Error, Options, Request, RequestNeeds};
use serde::Deserialize;

/// The misbehaviour to perform.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Loop forever.
    Spin,
    /// Allocate until the sandbox stops it.
    GrowMemory,
    /// Sleep (a WASI poll in the host) in a loop.
    Sleep,
    /// Print, then behave.
    Print,
    /// Trap.
    Trap,
    /// Return an invalid index.
    OutOfRange,
    /// Return an error.
    Error,
    /// Fail configuration.
    RejectConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    mode: Mode,
}

/// The misbehaving balancer.
#[derive(Debug)]
pub struct Misbehaving {
    mode: Mode,
    len: u32,
    next: u32,
    hoard: Vec<Vec<u8>>,
}

impl Balancer for Misbehaving {
    fn configure(options: &Options) -> Result<Self, Error> {
        let settings: Settings = options.parse()?;
        if let Mode::RejectConfig = settings.mode {
            return Err(Error::new("configuration rejected on purpose"));
        }
        Ok(Misbehaving {
            mode: settings.mode,
            len: 0,
            next: 0,
            hoard: Vec::new(),
        })
    }

    fn needs(&self) -> RequestNeeds {
        RequestNeeds::nothing().header("x-behave")
    }

    fn set_backends(&mut self, _generation: u64, backends: Vec<Backend>) {
        self.len = u32::try_from(backends.len()).unwrap_or(u32::MAX);
    }

    fn select(&mut self, request: &Request) -> Result<Candidates, Error> {
        if request.header("x-behave").as_deref() == Some("yes") {
            return Ok(vec![0]);
        }
        match self.mode {
            Mode::Spin => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            Mode::GrowMemory => loop {
                let chunk = vec![1u8; 1 << 20];
                self.hoard.push(std::hint::black_box(chunk));
            },
            Mode::Sleep => loop {
                std::thread::sleep(std::time::Duration::from_millis(5));
            },
            Mode::Print => {
                println!("select called with {} backends", self.len);
                eprintln!("and a line on stderr");
                let pick = self.next;
                self.next = (self.next + 1) % self.len.max(1);
                Ok(vec![pick])
            }
            Mode::Trap => std::process::abort(),
            Mode::OutOfRange => Ok(vec![self.len + 7]),
            Mode::Error => Err(Error::new("select failed on purpose")),
            Mode::RejectConfig => Ok(Vec::new()),
        }
    }
}

bascule_guest_sdk::export_balancer!(Misbehaving);
