//! Where training runs: a seeded CPU device whose freed buffers are reused, driven from one
//! of rayon's threads, with the pool's other threads kept awake while a loop trains. Every
//! section builds its models on [`device`]; the training loop ([`crate::train`]) holds a
//! [`hot_pool`] while it runs.

use dfdx::prelude::*;

/// The device a model trains on: seeded (its initial weights and dropout masks come from
/// `seed`), reusing freed tensor buffers instead of asking the system for fresh pages at
/// every step, and driven from one of rayon's threads ([`join_thread_pool`]).
pub fn device(seed: u64) -> Cpu {
    join_thread_pool();
    let dev = Cpu::seed_from_u64(seed);
    dev.enable_cache();
    dev
}

/// Makes the calling thread one of the threads of rayon's global pool, when the pool has
/// not started yet (later calls do nothing). A parallel op started from outside the pool
/// hands its work over and sleeps until it is done, so every op would cost two thread
/// wake-ups; from inside, the thread does a share itself and the pool's other threads take
/// the rest. The pool keeps its size (`RAYON_NUM_THREADS`, else one thread per core), this
/// thread counted.
pub fn join_thread_pool() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // An error means the pool started already, without this thread: ops still run
        // on it, with the hand-over.
        let _ = rayon::ThreadPoolBuilder::new()
            .use_current_thread()
            .build_global();
    });
}

/// Joins rayon's pool ([`join_thread_pool`]) and, while the returned guard lives, keeps
/// the pool's other threads polling for work instead of going to sleep. The training loop
/// holds one.
///
/// A training step runs dozens of parallel ops with sequential work between them (dfdx's
/// own ops, copies). Between two ops an idle rayon thread yields a few dozen times and then
/// sleeps; waking it takes longer than the share of an op it was woken for, so the calling
/// thread would do most ops alone. PyTorch's OpenMP threads spin between ops too. The
/// polling threads yield their cores between polls, and the numbers do not change: every
/// op splits its work the same way whichever thread runs it.
pub fn hot_pool() -> HotPool {
    use std::sync::atomic::{AtomicBool, Ordering};
    join_thread_pool();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    // Only from inside the pool: a polling job could otherwise land on a thread that joined
    // the pool from elsewhere (another test's thread) and hold it up until the guard drops.
    if let Some(caller) = rayon::current_thread_index() {
        let polling = stop.clone();
        rayon::spawn_broadcast(move |thread| {
            if thread.index() == caller {
                return;
            }
            while !polling.load(Ordering::Relaxed) {
                if rayon::yield_now() != Some(rayon::Yield::Executed) {
                    std::thread::yield_now();
                }
            }
        });
    }
    HotPool { stop }
}

/// See [`hot_pool`]; dropping it lets the pool's threads sleep again.
pub struct HotPool {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for HotPool {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Hands the buffers kept for reuse by `model`'s device (its tensor cache, which
/// [`device`] turns on) back to the allocator: the training loop does it every 100 steps
/// and at its end. The cache keeps every buffer a step frees, by exact size, for as long as
/// any tensor of the device lives, and a trained model lives on in a notebook's variables;
/// where a loop's sizes vary from step to step (BERT's count of masked words, notebook
/// `06_embeddings` §6) it holds every size it met.
pub fn release_cache<M: TensorCollection<f32, Cpu>>(model: &M) {
    let walked = M::iter_tensors(&mut RecursiveWalker {
        m: model,
        f: &mut EmptyCache,
    });
    match walked {
        Ok(_) => {}
        Err(never) => match never {},
    }
}

/// Empties the cache of each tensor's device (all of a model's tensors share one, and an
/// empty cache costs nothing to empty again).
struct EmptyCache;

impl TensorVisitor<f32, Cpu> for EmptyCache {
    type Viewer = ViewTensorRef;
    type Err = std::convert::Infallible;
    type E2 = f32;
    type D2 = Cpu;

    fn visit<S: Shape>(
        &mut self,
        _: TensorOptions<S, f32, Cpu>,
        t: &Tensor<S, f32, Cpu>,
    ) -> Result<Option<Tensor<S, f32, Cpu>>, Self::Err> {
        t.device().empty_cache();
        Ok(None)
    }
}
