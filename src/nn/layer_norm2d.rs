//! Layer normalisation for images (Ba, Kiros & Hinton, 2016): each example normalised over
//! all its channels and pixels, so that, unlike batch normalisation, nothing depends on the
//! other examples in the batch. Notebook 04 §5 sets it against batch normalisation. One
//! fused op, as batch norm is here; a test holds it against the same layer built from
//! dfdx's ops.

use super::channels::Channels;
use super::op::{output_buffer, param, record, values};
use dfdx::prelude::*;
use dfdx::tensor::CpuError;

builder!(LayerNorm2D<C>);

/// Layer normalisation of `(batch, C, height, width)` images: each example's `C·h·w`
/// values shifted and scaled to mean 0 and variance 1, then each channel scaled by
/// `gamma` and shifted by `beta` (`C` numbers each). PyTorch's `GroupNorm(1, C)`, which is
/// `LayerNorm([C, h, w])` with per-channel rather than per-pixel affine parameters, so it
/// takes any image size. Batch normalisation averages over `(batch, h, w)` per channel
/// instead. The same computation in training and evaluation: there are no running
/// statistics.
#[derive(Debug, Clone)]
pub struct LayerNorm2D<const C: usize, E: Dtype, D: Storage<E>> {
    pub gamma: Tensor<Rank1<C>, E, D>,
    pub beta: Tensor<Rank1<C>, E, D>,
    pub epsilon: f64,
}

impl<const C: usize, E: Dtype, D: Storage<E>> NonMutableModule for LayerNorm2D<C, E, D> {}

impl<const C: usize, E: Dtype, D: Device<E>> TensorCollection<E, D> for LayerNorm2D<C, E, D> {
    type To<E2: Dtype, D2: Device<E2>> = LayerNorm2D<C, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::tensor(
                    "gamma",
                    |s| &s.gamma,
                    |s| &mut s.gamma,
                    TensorOptions::reset_to_ones(),
                ),
                Self::tensor(
                    "beta",
                    |s| &s.beta,
                    |s| &mut s.beta,
                    TensorOptions::reset_to_zeros(),
                ),
                Self::scalar(
                    "epsilon",
                    |s| &s.epsilon,
                    |s| &mut s.epsilon,
                    ScalarOptions::from_default(1e-5),
                ),
            ),
            |(gamma, beta, epsilon)| LayerNorm2D {
                gamma,
                beta,
                epsilon,
            },
        )
    }
}

impl<B: Dim, const C: usize, H: Dim, W: Dim, T: Tape<f32, Cpu>>
    Module<Tensor<(B, Const<C>, H, W), f32, Cpu, T>> for LayerNorm2D<C, f32, Cpu>
{
    type Output = Tensor<(B, Const<C>, H, W), f32, Cpu, T>;
    type Error = CpuError;

    /// One op: two passes over each example forward, two backward.
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
        let x_values = values(&x);
        let n = (C * h * w) as f64;
        let mean: Vec<f32> = layout
            .example_sums(&x_values, &x_values, |_, _| |v, _| [v])
            .iter()
            .map(|[s]| (s / n) as f32)
            .collect();
        let inv_std: Vec<f32> = layout
            .example_sums(&x_values, &x_values, |e, _| {
                let mean = mean[e];
                move |v, _| [(v - mean).powi(2)]
            })
            .iter()
            .map(|[s]| (1.0 / (s / n + self.epsilon).sqrt()) as f32)
            .collect();
        let (gamma, beta) = (values(&self.gamma), values(&self.beta));
        let mut out = output_buffer(x.device(), x_values.len())?;
        layout.add_map(&x_values, &x_values, &mut out, |e, c| {
            let (mean, inv_std, gamma, beta) = (mean[e], inv_std[e], gamma[c], beta[c]);
            move |v, _| (v - mean) * inv_std * gamma + beta
        });
        let params = [param(&self.gamma), param(&self.beta)];
        record(&x, params, tape, out, *x.shape(), move |g, gx, [gg, gb]| {
            // With x̂ = (x − μ)/σ per example and y = γ·x̂ + β per channel: ∂L/∂β = Σ g,
            // ∂L/∂γ = Σ g·x̂, and ∂L/∂x = (γg − mean(γg) − x̂·mean(γg·x̂))/σ, the means over
            // the example, since its μ and σ depend on all of it.
            let sums = layout.image_sums(g, &x_values, |e, _| {
                let (mean, inv_std) = (mean[e], inv_std[e]);
                move |g, v| [g, g * (v - mean) * inv_std]
            });
            let mut means = vec![[0.0f64; 2]; sums.len()];
            for (example, m) in sums.iter().zip(&mut means) {
                for (c, [sum_g, sum_gx]) in example.iter().enumerate() {
                    gb[c] += *sum_g as f32;
                    gg[c] += *sum_gx as f32;
                    m[0] += gamma[c] as f64 * sum_g / n;
                    m[1] += gamma[c] as f64 * sum_gx / n;
                }
            }
            layout.add_map(g, &x_values, gx, |e, c| {
                let (mean, inv_std, gamma) = (mean[e], inv_std[e], gamma[c]);
                let [mean_g, mean_gx] = means[e].map(|m| m as f32);
                move |g, v| (gamma * g - mean_g - (v - mean) * inv_std * mean_gx) * inv_std
            });
        })
    }
}

/// The readable version of [`LayerNorm2D`]: dfdx's `normalize` over each example's
/// channels and pixels, then `gamma` and `beta` broadcast per channel. Notebook
/// `04_convnets` §5.
pub fn layer_norm2d_reference<const C: usize, T: Tape<f32, Cpu>>(
    layer: &LayerNorm2D<C, f32, Cpu>,
    x: Tensor<(usize, Const<C>, usize, usize), f32, Cpu, T>,
) -> Tensor<(usize, Const<C>, usize, usize), f32, Cpu, T> {
    let shape = *x.shape();
    x.normalize::<Axes3<1, 2, 3>>(layer.epsilon) * layer.gamma.retaped::<T>().broadcast_like(&shape)
        + layer.beta.retaped::<T>().broadcast_like(&shape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::assert_close_f32;

    #[test]
    fn each_example_is_normalised_over_channels_and_pixels() {
        let dev = Cpu::seed_from_u64(0);
        let mut norm = dev.build_module::<builder::LayerNorm2D<2>, f32>();
        let x: Tensor<(usize, Const<2>, usize, usize), f32, _> =
            dev.sample_normal_like(&(3, Const::<2>, 4, 5)) * 3.0 + 7.0;
        let y = norm.forward(x.clone()).as_vec();
        for example in y.chunks(40) {
            let mean = example.iter().sum::<f32>() / 40.0;
            let var = example.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 40.0;
            assert!(
                mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-3,
                "{mean} {var}"
            );
        }
        // gamma scales channel by channel, beta shifts; both get gradients.
        norm.gamma = dev.tensor([2.0, 1.0]);
        norm.beta = dev.tensor([0.0, 5.0]);
        let z = norm.forward(x.leaky_trace());
        let grads = z.sum().backward();
        assert_eq!(
            grads.get(&norm.beta).array(),
            [60.0, 60.0],
            "3·4·5 pixels each"
        );
        let first = norm.forward(x.clone()).as_vec();
        assert!((first[0] - 2.0 * y[0]).abs() < 1e-5);
        assert!((first[20] - (y[20] + 5.0)).abs() < 1e-5);
    }

    /// The fused op against its reference: outputs and the gradients of the input, γ
    /// and β.
    #[test]
    fn matches_the_reference_in_values_and_gradients() {
        let dev = Cpu::seed_from_u64(0);
        let mut norm = dev.build_module::<builder::LayerNorm2D<3>, f32>();
        norm.gamma = dev.tensor([0.5, 2.0, -1.0]);
        norm.beta = dev.tensor([0.1, 0.0, 3.0]);
        let shape = (4, Const::<3>, 5, 6);
        let x: Tensor<(usize, Const<3>, usize, usize), f32, _> =
            dev.sample_normal_like(&shape) * 2.0 + 1.5;
        let r: Tensor<(usize, Const<3>, usize, usize), f32, _> = dev.sample_normal_like(&shape);
        let ours = norm.forward(x.leaky_trace());
        let theirs = layer_norm2d_reference(&norm, x.leaky_trace());
        assert_close_f32("output", &ours.as_vec(), &theirs.as_vec(), 1e-4);
        let g = (ours * r.clone()).sum().backward();
        let e = (theirs * r).sum().backward();
        assert_close_f32("∂/∂x", &g.get(&x).as_vec(), &e.get(&x).as_vec(), 1e-4);
        for (what, p) in [("∂/∂γ", &norm.gamma), ("∂/∂β", &norm.beta)] {
            assert_close_f32(what, &g.get(p).as_vec(), &e.get(p).as_vec(), 1e-4);
        }
    }
}
