//! Giving freed heap back to the system after loading a model. A runtime reads a model
//! through large transient buffers (ONNX Runtime: the file, its protobuf and copies of
//! the weights while it optimises the graph), often on a worker's own thread, whose
//! glibc arena keeps the freed pages. Measured with ResNet-50 and two ONNX Runtime
//! sessions: 587 MB resident for the whole run without a trim, 271 MB with one.

/// Returns the free pages of every malloc arena to the system. Called after a model
/// or session is loaded, never while a step runs (it walks every arena).
pub fn release_free_heap() {
    // SAFETY: malloc_trim only hands free pages back; it takes the arenas' locks and
    // touches no memory in use.
    unsafe {
        libc::malloc_trim(0);
    }
}
