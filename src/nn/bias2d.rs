//! A learned shift per channel, the bias of a convolution, as one op: dfdx's `Bias2D` adds a
//! broadcast tensor and sums its gradient back through a generic strided reduction, one
//! strided index per value, where a pass per channel plane is a contiguous loop.

use super::channels::Channels;
use super::op::{output_buffer, param, record, values};
use dfdx::prelude::*;
use dfdx::tensor::CpuError;

builder!(Bias2D<C>);

/// Adds `bias[c]` to every pixel of channel `c` of `(batch, C, height, width)` images:
/// our convolutions have no bias of their own, as dfdx's do not. Starts at zero, as
/// dfdx's `Bias2D`, whose fields it has.
#[derive(Debug, Clone)]
pub struct Bias2D<const C: usize, E: Dtype, D: Storage<E>> {
    pub bias: Tensor<Rank1<C>, E, D>,
}

impl<const C: usize, E: Dtype, D: Storage<E>> NonMutableModule for Bias2D<C, E, D> {}

impl<const C: usize, E: Dtype, D: Device<E>> TensorCollection<E, D> for Bias2D<C, E, D> {
    type To<E2: Dtype, D2: Device<E2>> = Bias2D<C, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            Self::tensor(
                "bias",
                |s| &s.bias,
                |s| &mut s.bias,
                TensorOptions::reset_to_zeros(),
            ),
            |bias| Bias2D { bias },
        )
    }
}

impl<B: Dim, const C: usize, H: Dim, W: Dim, T: Tape<f32, Cpu>>
    Module<Tensor<(B, Const<C>, H, W), f32, Cpu, T>> for Bias2D<C, f32, Cpu>
{
    type Output = Tensor<(B, Const<C>, H, W), f32, Cpu, T>;
    type Error = CpuError;

    fn try_forward(
        &self,
        x: Tensor<(B, Const<C>, H, W), f32, Cpu, T>,
    ) -> Result<Self::Output, CpuError> {
        let [_, _, h, w] = x.shape().concrete();
        let layout = Channels {
            channels: C,
            pixels: h * w,
        };
        let (x, tape) = x.try_contiguous()?.split_tape();
        let bias = values(&self.bias);
        let x_values = values(&x);
        let mut out = output_buffer(x.device(), x_values.len())?;
        layout.add_map(&x_values, &x_values, &mut out, |_, c| {
            let bias = bias[c];
            move |x, _| x + bias
        });
        record(
            &x,
            [param(&self.bias)],
            tape,
            out,
            *x.shape(),
            move |g, gx, [gb]| {
                gx.iter_mut().zip(g).for_each(|(gx, g)| *gx += g);
                for (gb, [sum]) in gb.iter_mut().zip(layout.sums(g, g, |_, _| |g, _| [g])) {
                    *gb += sum as f32;
                }
            },
        )
    }
}

/// The readable version of [`Bias2D`]'s forward pass: dfdx's `x + bias`, the bias
/// broadcast over the batch and the pixels. Notebook `04_convnets` §3.
pub fn bias2d_reference<const C: usize, T: Tape<f32, Cpu>>(
    layer: &Bias2D<C, f32, Cpu>,
    x: Tensor<(usize, Const<C>, usize, usize), f32, Cpu, T>,
) -> Tensor<(usize, Const<C>, usize, usize), f32, Cpu, T> {
    let shape = *x.shape();
    x + layer.bias.retaped::<T>().broadcast_like(&shape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::assert_close_f32;

    type Images = Tensor<(usize, Const<2>, usize, usize), f32, Cpu>;

    #[test]
    fn matches_the_reference_in_values_and_gradients() {
        let dev = Cpu::seed_from_u64(0);
        let mut layer = dev.build_module::<builder::Bias2D<2>, f32>();
        layer.bias = dev.tensor([1.0, -2.0]);
        let x: Images = dev.sample_normal_like(&(3, Const, 4, 5));
        let r: Images = dev.sample_normal_like(&(3, Const, 4, 5));
        let ours = layer.forward(x.leaky_trace());
        let theirs = bias2d_reference(&layer, x.leaky_trace());
        assert_eq!(ours.as_vec(), theirs.as_vec());
        let g = (ours * r.clone()).sum().backward();
        let e = (theirs * r).sum().backward();
        assert_eq!(g.get(&x).as_vec(), e.get(&x).as_vec());
        let (got, expected) = (g.get(&layer.bias).as_vec(), e.get(&layer.bias).as_vec());
        assert_close_f32("∂/∂bias", &got, &expected, 1e-5);
    }
}
