//! The memory cap applied to every plugin instance.

/// Refuses linear-memory growth past a fixed size, and remembers that it
/// did so that the resulting trap is reported as a memory-limit failure.
#[derive(Debug)]
pub struct MemoryCap {
    max_bytes: usize,
    exceeded: bool,
}

/// Tables hold function references; no balancer needs more than this.
const MAX_TABLE_ELEMENTS: usize = 100_000;

// === impl MemoryCap ===

impl MemoryCap {
    /// A cap of `max_bytes` per memory.
    pub fn new(max_bytes: usize) -> Self {
        MemoryCap {
            max_bytes,
            exceeded: false,
        }
    }

    /// Whether a growth request was refused.
    pub fn exceeded(&self) -> bool {
        self.exceeded
    }
}

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.exceeded = true;
            // An error, not `Ok(false)`: guests abort on allocation failure
            // anyway, and a trap here names the real cause.
            wasmtime::bail!("memory limit of {} bytes reached", self.max_bytes);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
