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

/// A parameter of an op, as the tape's backward pass finds it: swaps the parameter's
/// gradient buffer in dfdx's gradient map with another (allocating it when the map has
/// none). Erasing the shape lets one op record parameters of different shapes (a linear
/// layer's weight and bias).
pub(crate) type Param =
    Box<dyn Fn(&mut Gradients<f32, Cpu>, &mut GradBuffer) -> Result<(), CpuError>>;

type GradBuffer = <Cpu as Storage<f32>>::Vec;

/// `t` as a [`Param`] of an op.
pub(crate) fn param<S: Shape>(t: &Tensor<S, f32, Cpu>) -> Param {
    let ghost = t.ghost();
    Box::new(move |grads, buffer| {
        std::mem::swap(grads.get_or_alloc_mut(&ghost)?, buffer);
        Ok(())
    })
}

/// The output of an op on an input `x` and `N` parameters, on the tape `tape` (the inputs'
/// tapes, merged). `backward(grad_out, grad_x, grad_params)` adds the op's contributions to
/// the gradients.
pub(crate) fn record<S: Shape, So: Shape, T: Tape<f32, Cpu>, const N: usize>(
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
