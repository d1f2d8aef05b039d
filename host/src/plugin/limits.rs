//! The memory cap applied to every plugin instance.

/// Refuses linear-memory growth past a fixed size, and remembers that it
/// did so that the resulting trap is reported as a memory-limit failure.
#[derive(Debug)]
pub struct MemoryCap {
    max_bytes: usize,
    exceeded: bool,
    /// Bytes the memory grew by since the current call began.
    grown_in_call: usize,
    /// Linear memory of the instance, every memory summed: wasmtime asks
    /// here for each memory's initial size too.
    linear_bytes: usize,
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
            grown_in_call: 0,
            linear_bytes: 0,
        }
    }

    /// Whether a growth request was refused.
    pub fn exceeded(&self) -> bool {
        self.exceeded
    }

    /// The instance's linear memory, in bytes.
    pub fn linear_bytes(&self) -> usize {
        self.linear_bytes
    }

    /// Starts counting growth for a new call.
    pub fn begin_call(&mut self) {
        self.grown_in_call = 0;
    }

    /// Whether the current call grew the memory by an eighth of the cap or
    /// more. Touching fresh pages costs the kernel ~0.4 ms per MiB here, so
    /// a guest allocating without bound uses a 10 ms budget after ~25 MiB,
    /// before it reaches a 64 MiB cap: stopped for time while growing that
    /// fast, it is reported as the memory bomb it is. (A quarter of the cap
    /// left too little margin on a loaded machine: a bomb that reached only
    /// 15 MiB was once reported as a timeout.)
    pub fn grew_fast(&self) -> bool {
        self.grown_in_call >= self.max_bytes / 8
    }
}

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grown_in_call = self
            .grown_in_call
            .saturating_add(desired.saturating_sub(current));
        if desired > self.max_bytes {
            self.exceeded = true;
            // An error, not `Ok(false)`: guests abort on allocation failure
            // anyway, and a trap here names the real cause.
            wasmtime::bail!("memory limit of {} bytes reached", self.max_bytes);
        }
        self.linear_bytes = self
            .linear_bytes
            .saturating_add(desired.saturating_sub(current));
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
