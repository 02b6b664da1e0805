//! Recording our own ops on dfdx's tape with dfdx's public API only: the op computes its
//! output, and leaves on the tape a closure that turns the output's gradient into its
//! inputs' gradients, as dfdx's own ops do (micrograd's `_backward`, at tensor scale).

use dfdx::prelude::*;
use dfdx::tensor::CpuError;

/// A zeroed buffer of `len` floats for an op's output, from dfdx's tensor cache when it is
/// on. Every output ends up in a dfdx tensor, which gives its buffer to the cache when
/// dropped; an op that took fresh memory instead would grow the cache at every training
/// step (9 MB a step for LeNet) and pay the system's page faults for it. Only the empty
/// shell of the cached vector goes back, as a zero-length entry.
pub(crate) fn output_buffer(dev: &Cpu, len: usize) -> Result<Vec<f32>, CpuError> {
    let mut cached = dev.try_alloc_len(len)?;
    Ok(std::mem::take(&mut *cached))
}

/// The output of an op on an input `x` and `N` parameters of one shape (a convolution's
/// weight; batch norm's scale and shift), on the tape `tape` (the inputs' tapes, merged).
/// `backward(grad_out, grad_x, grad_params)` adds the op's contributions to the gradients.
pub(crate) fn record<S: Shape, P: Shape, So: Shape, T: Tape<f32, Cpu>, const N: usize>(
    x: &Tensor<S, f32, Cpu>,
    params: [&Tensor<P, f32, Cpu>; N],
    mut tape: T,
    out: Vec<f32>,
    shape: So,
    backward: impl FnOnce(&[f32], &mut [f32], [&mut [f32]; N]) + 'static,
) -> Result<Tensor<So, f32, Cpu, T>, CpuError> {
    let out = x.device().try_tensor_from_vec(out, shape)?;
    let (x, y, dev) = (x.ghost(), out.ghost(), x.device().clone());
    let params = params.map(|p| p.ghost());
    tape.add_backward_op(move |grads| {
        // Gradients live in one map: take the buffers out, work, put them back.
        let empty = || dev.try_alloc_len(0);
        let grad_out = std::mem::replace(grads.get_or_alloc_mut(&y)?, empty()?);
        let mut grad_x = std::mem::replace(grads.get_or_alloc_mut(&x)?, empty()?);
        let mut grad_params = Vec::with_capacity(N);
        for p in &params {
            grad_params.push(std::mem::replace(grads.get_or_alloc_mut(p)?, empty()?));
        }
        let mut slices = grad_params.iter_mut().map(|g| &mut g[..]);
        backward(
            &grad_out,
            &mut grad_x,
            std::array::from_fn(|_| slices.next().expect("one gradient per parameter")),
        );
        *grads.get_or_alloc_mut(&y)? = grad_out;
        *grads.get_or_alloc_mut(&x)? = grad_x;
        for (p, g) in params.iter().zip(grad_params) {
            *grads.get_or_alloc_mut(p)? = g;
        }
        Ok(())
    });
    Ok(out.put_tape(tape))
}
