//! Recording our own ops on dfdx's tape with dfdx's public API only: the op computes its
//! output, and leaves on the tape a closure that turns the output's gradient into its
//! inputs' gradients, as dfdx's own ops do (micrograd's `_backward`, at tensor scale).

use dfdx::prelude::*;
use dfdx::tensor::CpuError;

/// The output of a one-input op, on the input's tape. `backward(grad_out, grad_x)` adds
/// the op's contribution to `grad_x`.
pub(crate) fn record_unary<S: Shape, So: Shape, T: Tape<f32, Cpu>>(
    x: &Tensor<S, f32, Cpu>,
    mut tape: T,
    out: Vec<f32>,
    shape: So,
    backward: impl FnOnce(&[f32], &mut [f32]) + 'static,
) -> Result<Tensor<So, f32, Cpu, T>, CpuError> {
    let out = x.device().try_tensor_from_vec(out, shape)?;
    let (x, y, dev) = (x.ghost(), out.ghost(), x.device().clone());
    tape.add_backward_op(move |grads| {
        grads.try_alloc_for(&x)?;
        let grad_out = std::mem::replace(grads.get_or_alloc_mut(&y)?, dev.try_alloc_len(0)?);
        backward(&grad_out, grads.get_or_alloc_mut(&x)?);
        *grads.get_or_alloc_mut(&y)? = grad_out;
        Ok(())
    });
    Ok(out.put_tape(tape))
}

/// The output of a two-input op (an image and a weight), on their merged tape.
/// `backward(grad_out, grad_x, grad_w)` adds the op's contributions to both gradients.
pub(crate) fn record_binary<S: Shape, Sw: Shape, So: Shape, T: Tape<f32, Cpu>>(
    x: &Tensor<S, f32, Cpu>,
    w: &Tensor<Sw, f32, Cpu>,
    mut tape: T,
    out: Vec<f32>,
    shape: So,
    backward: impl FnOnce(&[f32], &mut [f32], &mut [f32]) + 'static,
) -> Result<Tensor<So, f32, Cpu, T>, CpuError> {
    let out = x.device().try_tensor_from_vec(out, shape)?;
    let (x, w, y, dev) = (x.ghost(), w.ghost(), out.ghost(), x.device().clone());
    tape.add_backward_op(move |grads| {
        // Gradients live in one map: take the three buffers out, work, put them back.
        let empty = || dev.try_alloc_len(0);
        let grad_out = std::mem::replace(grads.get_or_alloc_mut(&y)?, empty()?);
        let mut grad_x = std::mem::replace(grads.get_or_alloc_mut(&x)?, empty()?);
        let mut grad_w = std::mem::replace(grads.get_or_alloc_mut(&w)?, empty()?);
        backward(&grad_out, &mut grad_x, &mut grad_w);
        *grads.get_or_alloc_mut(&y)? = grad_out;
        *grads.get_or_alloc_mut(&x)? = grad_x;
        *grads.get_or_alloc_mut(&w)? = grad_w;
        Ok(())
    });
    Ok(out.put_tape(tape))
}
