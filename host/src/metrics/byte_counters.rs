//! Body bytes in each direction, for a listener's clients or a backend,
//! registered once so that counting is an atomic add per body.

/// `sent` and `received` of one listener or backend.
#[derive(Debug, Clone)]
pub struct ByteCounters {
    /// Bytes written: response bodies to clients, request bodies to a
    /// backend.
    pub sent: metrics::Counter,
    /// Bytes read: request bodies from clients, response bodies from a
    /// backend.
    pub received: metrics::Counter,
}

// === impl ByteCounters ===

impl ByteCounters {
    /// `bascule_http_bytes_total{listener,direction}`.
    pub fn listener(listener: &str) -> Self {
        let counter = |direction: &'static str| metrics::counter!(super::HTTP_BYTES, "listener" => listener.to_owned(), "direction" => direction);
        ByteCounters {
            sent: counter("sent"),
            received: counter("received"),
        }
    }

    /// `bascule_upstream_bytes_total{pool,backend,direction}`.
    pub fn backend(pool: &str, backend: &str) -> Self {
        let counter = |direction: &'static str| {
            metrics::counter!(
                super::UPSTREAM_BYTES,
                "pool" => pool.to_owned(),
                "backend" => backend.to_owned(),
                "direction" => direction,
            )
        };
        ByteCounters {
            sent: counter("sent"),
            received: counter("received"),
        }
    }
}
