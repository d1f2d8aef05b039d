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

/// The unit a wasm memory grows by.
const WASM_PAGE_BYTES: usize = 64 << 10;

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

    /// Whether the current call grew the memory by a sixty-fourth of the
    /// cap or more (1 MiB at the default 64 MiB). Touching fresh pages is
    /// charged to the guest's CPU clock (0.4 ms per MiB on an idle machine
    /// here, several times that on a loaded CI runner), so a guest
    /// allocating without bound often uses its time budget before it
    /// reaches the cap: stopped for time while growing, it is reported as
    /// the memory bomb it is. An eighth of the cap was once too much margin:
    /// a bomb whose thread waited for a core through the wall-clock half of
    /// its budget reached under 8 MiB and was reported as a timeout. A
    /// request-path call of a well-behaved plugin grows its memory by a few
    /// pages at most, so a spinning guest is still a timeout.
    pub fn grew_fast(&self) -> bool {
        self.grown_in_call >= (self.max_bytes / 64).max(WASM_PAGE_BYTES)
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

#[cfg(test)]
mod tests {
    use wasmtime::ResourceLimiter;

    use super::*;

    #[test]
    fn growth_of_a_sixty_fourth_of_the_cap_in_one_call_is_fast() {
        let mut cap = MemoryCap::new(64 << 20);
        cap.begin_call();
        assert!(cap.memory_growing(0, 2 * WASM_PAGE_BYTES, None).unwrap());
        assert!(!cap.grew_fast(), "a few pages is a normal call");
        assert!(
            cap.memory_growing(2 * WASM_PAGE_BYTES, 1 << 20, None)
                .unwrap()
        );
        assert!(cap.grew_fast());
        cap.begin_call();
        assert!(!cap.grew_fast(), "growth counts per call");
    }

    #[test]
    fn a_small_cap_counts_one_page_as_fast() {
        let mut cap = MemoryCap::new(1 << 20);
        cap.begin_call();
        assert!(cap.memory_growing(0, WASM_PAGE_BYTES, None).unwrap());
        assert!(cap.grew_fast());
        assert!(cap.memory_growing(WASM_PAGE_BYTES, 2 << 20, None).is_err());
        assert!(cap.exceeded());
    }
}
