//! dfdx's `Linear` layer, `y = x·Wᵀ + b`, as one op: every row of `x` (all the positions of
//! all the sequences) in one matrix product, with the bias written in before it. dfdx's own
//! forward runs one small product per sequence, then adds the bias through a broadcast
//! tensor whose gradient goes back through a generic strided reduction: many small
//! products and a strided pass, where one large product keeps gemm's kernels busy.

use super::matmul::{matmul, Mat};
use super::op::{output_buffer, param, record, values};
use crate::Error;
use dfdx::nn::modules::Linear;
use dfdx::prelude::*;

/// Shapes whose last axis holds the `I` features a linear layer reads: `(batch, I)` and
/// `(batch, seq, I)`. The output keeps the leading axes and holds `O` features.
pub trait Features<const I: usize, const O: usize>: Shape {
    type Out: Shape;
    fn out(&self) -> Self::Out;
}

impl<B: Dim, const I: usize, const O: usize> Features<I, O> for (B, Const<I>) {
    type Out = (B, Const<O>);
    fn out(&self) -> Self::Out {
        (self.0, Const)
    }
}

impl<B: Dim, S: Dim, const I: usize, const O: usize> Features<I, O> for (B, S, Const<I>) {
    type Out = (B, S, Const<O>);
    fn out(&self) -> Self::Out {
        (self.0, self.1, Const)
    }
}

/// `layer` on `x`: what `layer.try_forward(x)` computes, as one recorded op. Its gradients
/// are those of dfdx's layer (`∂L/∂x = G·W`, `∂L/∂W = Gᵀ·x`, `∂L/∂b = Σ G` over the rows),
/// each one matrix product or one pass.
pub fn linear<const I: usize, const O: usize, S: Features<I, O>, T: Tape<f32, Cpu>>(
    layer: &Linear<I, O, f32, Cpu>,
    x: Tensor<S, f32, Cpu, T>,
) -> Result<Tensor<S::Out, f32, Cpu, T>, Error> {
    let (x, tape) = x.try_contiguous()?.split_tape();
    let (x_values, w_values) = (values(&x), values(&layer.weight));
    let rows = x_values.len() / I;
    let threads = rayon::current_num_threads();
    let mut out = output_buffer(x.device(), rows * O)?;
    let bias = values(&layer.bias);
    out.chunks_exact_mut(O)
        .for_each(|o| o.copy_from_slice(&bias));
    matmul(
        &mut out,
        Mat::rows(&x_values, rows, I),
        Mat::rows(&w_values, O, I).t(),
        true,
        threads,
    );
    let params = [param(&layer.weight), param(&layer.bias)];
    let shape = x.shape().out();
    Ok(record(
        &x,
        params,
        tape,
        out,
        shape,
        move |g, gx, [gw, gb]| {
            let g_rows = Mat::rows(g, rows, O);
            matmul(gx, g_rows, Mat::rows(&w_values, O, I), true, threads);
            matmul(gw, g_rows.t(), Mat::rows(&x_values, rows, I), true, threads);
            for g in g.chunks_exact(O) {
                gb.iter_mut().zip(g).for_each(|(gb, g)| *gb += g);
            }
        },
    )?)
}

/// The readable version of [`linear`]: dfdx's own `Linear` layer, `x·Wᵀ + b` with the
/// bias broadcast over the rows, one product per sequence. Notebook `05_attention` §3,
/// whose projections run [`linear`].
pub fn linear_reference<const I: usize, const O: usize, S: Features<I, O>, T: Tape<f32, Cpu>>(
    layer: &Linear<I, O, f32, Cpu>,
    x: Tensor<S, f32, Cpu, T>,
) -> Tensor<S::Out, f32, Cpu, T>
where
    Linear<I, O, f32, Cpu>: Module<Tensor<S, f32, Cpu, T>, Output = Tensor<S::Out, f32, Cpu, T>>,
{
    layer.forward(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::assert_close_f32;
    use dfdx::nn::builders as builder;

    /// Ours and the reference give the same outputs and the same gradients for the input,
    /// the weight and the bias, on sequences and on plain batches.
    #[test]
    fn matches_the_reference_in_values_and_gradients() {
        let dev = Cpu::seed_from_u64(0);
        let layer = dev.build_module::<builder::Linear<5, 3>, f32>();
        let x: Tensor<(usize, usize, Const<5>), f32, _> = dev.sample_normal_like(&(4, 6, Const));
        let w: Tensor<(usize, usize, Const<3>), f32, _> = dev.sample_normal_like(&(4, 6, Const));
        let ours = linear(&layer, x.leaky_trace()).unwrap();
        let theirs = linear_reference(&layer, x.leaky_trace());
        assert_close_f32("output", &ours.as_vec(), &theirs.as_vec(), 1e-4);
        let ours = (ours * w.clone()).sum().backward();
        let theirs = (theirs * w).sum().backward();
        let grad = |g: &Gradients<f32, Cpu>| {
            [
                g.get(&x).as_vec(),
                g.get(&layer.weight).as_vec(),
                g.get(&layer.bias).as_vec(),
            ]
        };
        for ((what, o), t) in ["∂/∂x", "∂/∂W", "∂/∂b"]
            .iter()
            .zip(grad(&ours))
            .zip(grad(&theirs))
        {
            assert_close_f32(what, &o, &t, 1e-4);
        }

        let flat: Tensor<(usize, Const<5>), f32, _> = x.reshape_like(&(24, Const));
        let ours = linear(&layer, flat.clone()).unwrap();
        assert_close_f32(
            "rows",
            &ours.as_vec(),
            &linear_reference(&layer, flat).as_vec(),
            1e-4,
        );
    }
}
