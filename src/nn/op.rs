//! What every op of `nn` is built from: its inputs' values and its output's buffer from
//! dfdx's tensor cache, its recording on dfdx's tape, the share of work a rayon task takes,
//! and the errors it gives for shapes that do not fit.
//!
//! Recording uses dfdx's public API only: the op computes its output, and leaves on the
//! tape a closure that turns the output's gradient into its inputs' gradients, as dfdx's
//! own ops do (micrograd's `_backward`, at tensor scale).

use super::im2col::Window;
use crate::Error;
use dfdx::prelude::*;
use dfdx::tensor::CpuError;

/// The fewest values one rayon task of a pass over memory takes (PyTorch's grain is the
/// same): on smaller tasks, waking the other threads costs more than sharing saves, and the
/// course's small nets (8 channels of 14×14) would pay it on every op.
pub(super) const GRAIN: usize = 32_768;

/// Chunks of `len` values per task, so that each task has at least [`GRAIN`] values.
pub(super) fn chunks_per_task(len: usize) -> usize {
    GRAIN.div_ceil(len.max(1))
}

/// A contiguous tensor's values, in order, in a buffer from dfdx's tensor cache that goes
/// back to it when dropped ([`cached_zeros`]).
pub(super) fn values<S: Shape, T>(t: &Tensor<S, f32, Cpu, T>) -> <Cpu as Storage<f32>>::Vec {
    let mut out = cached_zeros(t.device(), t.shape().num_elements());
    t.copy_into(&mut out);
    out
}

/// `len` zeros in a buffer from dfdx's tensor cache that goes back to it when dropped. Fresh
/// memory for each would be handed back to the system and faulted in again at every
/// training step; worse, memory the allocator knows is zero comes unwritten, as the
/// kernel's shared zero page, so a first `+=` on each page faults, copies it, and stops the
/// other core to flush its TLB. As with `vec!`, running out of memory stops the program.
///
/// Call it from one thread at a time, never inside a parallel loop: dfdx's cache looks for
/// a buffer of `len` under one lock and takes it under another, so two threads taking the
/// last one of a length at once panic while holding the lock, and every buffer dropped
/// after that panics again (measured: a `make bench` run aborted in the VAE's step).
pub(super) fn cached_zeros(dev: &Cpu, len: usize) -> <Cpu as Storage<f32>>::Vec {
    dev.try_alloc_len(len)
        .unwrap_or_else(|_| panic!("out of memory for a buffer of {len} values"))
}

/// A zeroed buffer of `len` floats for an op's output, from dfdx's tensor cache when it is
/// on. Every output ends up in a dfdx tensor, which gives its buffer to the cache when
/// dropped; an op that took fresh memory instead would grow the cache at every training
/// step and pay the system's page faults for it. Only the empty
/// shell of the cached vector goes back, as a zero-length entry.
pub(super) fn output_buffer(dev: &Cpu, len: usize) -> Result<Vec<f32>, CpuError> {
    let mut cached = dev.try_alloc_len(len)?;
    Ok(std::mem::take(&mut *cached))
}

/// A parameter of an op, as the tape's backward pass finds it: swaps the parameter's
/// gradient buffer in dfdx's gradient map with another (allocating it when the map has
/// none). Erasing the shape lets one op record parameters of different shapes (a linear
/// layer's weight and bias).
pub(super) type Param =
    Box<dyn Fn(&mut Gradients<f32, Cpu>, &mut GradBuffer) -> Result<(), CpuError>>;

type GradBuffer = <Cpu as Storage<f32>>::Vec;

/// `t` as a [`Param`] of an op.
pub(super) fn param<S: Shape>(t: &Tensor<S, f32, Cpu>) -> Param {
    let ghost = t.ghost();
    Box::new(move |grads, buffer| {
        std::mem::swap(grads.get_or_alloc_mut(&ghost)?, buffer);
        Ok(())
    })
}

/// The output of an op on an input `x` and `N` parameters, on the tape `tape` (the inputs'
/// tapes, merged). `backward(grad_out, grad_x, grad_params)` adds the op's contributions to
/// the gradients.
pub(super) fn record<S: Shape, So: Shape, T: Tape<f32, Cpu>, const N: usize>(
    x: &Tensor<S, f32, Cpu>,
    params: [Param; N],
    mut tape: T,
    out: Vec<f32>,
    shape: So,
    backward: impl FnOnce(&[f32], &mut [f32], [&mut [f32]; N]) + 'static,
) -> Result<Tensor<So, f32, Cpu, T>, CpuError> {
    let out = x.device().try_tensor_from_vec(out, shape)?;
    let (x, y, dev) = (param(x), param(&out), x.device().clone());
    tape.add_backward_op(move |grads| {
        // Gradients live in one map: swap the buffers out for empty ones, work, swap back.
        let mut buffers = (0..N + 2)
            .map(|_| dev.try_alloc_len(0))
            .collect::<Result<Vec<_>, _>>()?;
        let [grad_out, grad_x, grad_params @ ..] = &mut buffers[..] else {
            unreachable!("two buffers and one per parameter")
        };
        let swap_all = |grads: &mut Gradients<f32, Cpu>,
                        grad_out: &mut GradBuffer,
                        grad_x: &mut GradBuffer,
                        grad_params: &mut [GradBuffer]| {
            y(grads, grad_out)?;
            x(grads, grad_x)?;
            params
                .iter()
                .zip(grad_params)
                .try_for_each(|(p, g)| p(grads, g))
        };
        swap_all(grads, grad_out, grad_x, grad_params)?;
        let mut slices = grad_params.iter_mut().map(|g| &mut g[..]);
        backward(
            grad_out,
            grad_x,
            std::array::from_fn(|_| slices.next().expect("one gradient per parameter")),
        );
        swap_all(grads, grad_out, grad_x, grad_params)
    });
    Ok(out.put_tape(tape))
}

/// A shape that does not fit an op: what was expected, and what came.
pub(super) fn shape_error(what: &'static str, expected: impl ToString, got: String) -> Error {
    Error::ShapeMismatch {
        what,
        expected: expected.to_string(),
        got,
    }
}

/// An image smaller than the window `w` sliding over it.
pub(super) fn too_small(height: usize, width: usize, w: &Window) -> Error {
    let span = w.dilation * (w.kernel - 1) + 1;
    shape_error(
        "the image",
        format!("at least {span}×{span} with padding {}", w.padding),
        format!("{height}×{width}"),
    )
}

/// A layer's result as dfdx's `Module` must return it: device errors pass through, and
/// a shape that does not fit the layer stops with the reason, as dfdx's own layers do.
pub(super) fn layer_result<X>(layer: &str, result: Result<X, Error>) -> Result<X, CpuError> {
    match result {
        Ok(x) => Ok(x),
        Err(Error::Device(e)) => Err(e),
        Err(e) => panic!("{layer}: {e}"),
    }
}
