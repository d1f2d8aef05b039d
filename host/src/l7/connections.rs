//! Keep-alive HTTP/1.1 connections to backends, pooled per address.
//!
//! A connection is taken before the request is committed to it, so a
//! backend that refuses the connection costs nothing but a retry on the
//! next candidate. A connection goes back to the pool when its response
//! body has been read to the end; a body dropped half-read takes its
//! connection with it (it cannot be reused safely).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::upstream::ActiveRequest;

/// An idle connection unused for this long is closed rather than reused:
/// backends commonly time out idle keep-alive connections after 60 s or more.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle connections kept per backend address.
const MAX_IDLE_PER_BACKEND: usize = 256;
/// A returned connection normally becomes ready at once; one that does not
/// within this time is discarded.
const READY_TIMEOUT: Duration = Duration::from_millis(100);

/// Idle keep-alive connections by backend address.
#[derive(Debug, Default)]
pub struct UpstreamConnections {
    idle: Mutex<HashMap<String, Vec<IdleConnection>>>,
}

#[derive(Debug)]
struct IdleConnection {
    sender: SendRequest<Incoming>,
    since: Instant,
}

/// A connection ready to carry one request.
#[derive(Debug)]
pub struct Connection {
    sender: SendRequest<Incoming>,
    address: String,
    pool: Arc<UpstreamConnections>,
}

/// Why no connection could be had.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// TCP connect failed.
    #[error("connecting to backend {address} failed")]
    Io {
        /// The backend.
        address: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// TCP connect did not finish in time.
    #[error("connecting to backend {address} timed out after {timeout:?}")]
    Timeout {
        /// The backend.
        address: String,
        /// The budget.
        timeout: Duration,
    },
    /// The HTTP/1.1 handshake failed.
    #[error("http handshake with backend {address} failed")]
    Handshake {
        /// The backend.
        address: String,
        /// Why.
        #[source]
        source: hyper::Error,
    },
}

/// What sending a request produced when it did not produce a response.
#[derive(Debug)]
pub struct SendError {
    /// The error.
    pub error: hyper::Error,
    /// The request, when it was never written and may be sent elsewhere.
    pub unsent: Option<http::Request<Incoming>>,
}

/// A response body that returns its connection to the pool once read to
/// the end, and keeps the backend's active-request count until then.
#[derive(Debug)]
pub struct UpstreamBody {
    inner: Incoming,
    release: Option<Release>,
}

#[derive(Debug)]
struct Release {
    sender: SendRequest<Incoming>,
    address: String,
    pool: Arc<UpstreamConnections>,
    _active: ActiveRequest,
}

// === impl UpstreamConnections ===

impl UpstreamConnections {
    /// A connection to `address`: a ready idle one, or a new one.
    pub async fn get(
        self: &Arc<Self>,
        address: &str,
        connect_timeout: Duration,
    ) -> Result<Connection, ConnectError> {
        while let Some(mut idle) = self.take_idle(address) {
            if idle.since.elapsed() > IDLE_TIMEOUT || idle.sender.is_closed() {
                continue;
            }
            // Usually ready at once: skip arming a timer for it.
            if idle.sender.is_ready() {
                return Ok(self.connection(idle.sender, address));
            }
            if let Ok(Ok(())) = tokio::time::timeout(READY_TIMEOUT, idle.sender.ready()).await {
                return Ok(self.connection(idle.sender, address));
            }
        }
        let sender = connect(address, connect_timeout).await?;
        Ok(self.connection(sender, address))
    }

    fn connection(self: &Arc<Self>, sender: SendRequest<Incoming>, address: &str) -> Connection {
        Connection {
            sender,
            address: address.to_owned(),
            pool: Arc::clone(self),
        }
    }

    fn take_idle(&self, address: &str) -> Option<IdleConnection> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.get_mut(address)?.pop()
    }

    fn put_idle(&self, address: String, sender: SendRequest<Incoming>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.entry(address).or_default();
        if list.len() < MAX_IDLE_PER_BACKEND {
            list.push(IdleConnection {
                sender,
                since: Instant::now(),
            });
        }
    }
}

async fn connect(address: &str, timeout: Duration) -> Result<SendRequest<Incoming>, ConnectError> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(source)) => {
            return Err(ConnectError::Io {
                address: address.to_owned(),
                source,
            });
        }
        Err(_) => {
            return Err(ConnectError::Timeout {
                address: address.to_owned(),
                timeout,
            });
        }
    };
    // Requests and responses are written whole; Nagle would only add delay.
    let _ = stream.set_nodelay(true);
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|source| ConnectError::Handshake {
            address: address.to_owned(),
            source,
        })?;
    let address = address.to_owned();
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(backend = %address, %error, "backend connection ended with an error");
        }
    });
    Ok(sender)
}

// === impl Connection ===

impl Connection {
    /// Sends `request`. A request that was never written comes back in the
    /// error so that the caller can try another backend.
    pub async fn send(
        mut self,
        request: http::Request<Incoming>,
        active: ActiveRequest,
    ) -> Result<http::Response<UpstreamBody>, SendError> {
        match self.sender.try_send_request(request).await {
            Ok(response) => Ok(response.map(|inner| UpstreamBody {
                inner,
                release: Some(Release {
                    sender: self.sender,
                    address: self.address,
                    pool: self.pool,
                    _active: active,
                }),
            })),
            Err(mut error) => {
                let unsent = error.take_message();
                Err(SendError {
                    error: error.into_error(),
                    unsent,
                })
            }
        }
    }
}

// === impl UpstreamBody ===

impl UpstreamBody {
    fn release(&mut self) {
        if let Some(release) = self.release.take() {
            release.pool.put_idle(release.address, release.sender);
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.release(),
            // A broken body means a broken connection: never reuse it.
            Poll::Ready(Some(Err(_))) => self.release = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // Bodiless responses (HEAD, 204, 304) may never be polled.
        if self.inner.is_end_stream() {
            self.release();
        }
    }
}
