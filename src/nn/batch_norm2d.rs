//! Batch normalisation for images (Ioffe & Szegedy, 2015), with dfdx's `BatchNorm2D`'s
//! fields, defaults and semantics, as one op: two passes over the batch forward, two
//! backward, where dfdx's version chains a dozen broadcasts and reductions. Notebook 04 §4–5
//! trains it; §5 sets it against layer normalisation.

use super::channels::Channels;
use super::op::{output_buffer, param, record, values};
use dfdx::prelude::*;
use dfdx::tensor::CpuError;

builder!(BatchNorm2D<C>);

/// Batch normalisation of `(batch, C, height, width)` images: each channel shifted and
/// scaled to mean 0 and variance 1 over the batch and its pixels, then scaled by `scale`
/// and shifted by `bias` (`C` numbers each, learned).
///
/// - **Training** (`forward_mut` on a traced batch): normalises with the batch's own mean
///   and (biased) variance, and moves the running statistics towards them:
///   `running ← (1 − momentum)·running + momentum·batch` (the variance unbiased, n/(n − 1)).
/// - **Evaluation** (`forward` on an untraced batch): normalises with the running
///   statistics, so an example's output no longer depends on its batch.
///
/// The same fields, defaults (ε = 1e-5, momentum 0.1) and numbers as dfdx's and PyTorch's
/// `BatchNorm2d`.
#[derive(Debug, Clone)]
pub struct BatchNorm2D<const C: usize, E: Dtype, D: Storage<E>> {
    pub scale: Tensor<Rank1<C>, E, D>,
    pub bias: Tensor<Rank1<C>, E, D>,
    pub running_mean: Tensor<Rank1<C>, E, D>,
    pub running_var: Tensor<Rank1<C>, E, D>,
    pub epsilon: f64,
    pub momentum: f64,
}

impl<const C: usize, E: Dtype, D: Device<E>> TensorCollection<E, D> for BatchNorm2D<C, E, D> {
    type To<E2: Dtype, D2: Device<E2>> = BatchNorm2D<C, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::tensor(
                    "scale",
                    |s| &s.scale,
                    |s| &mut s.scale,
                    TensorOptions::reset_to_ones(),
                ),
                Self::tensor(
                    "bias",
                    |s| &s.bias,
                    |s| &mut s.bias,
                    TensorOptions::reset_to_zeros(),
                ),
                Self::tensor(
                    "running_mean",
                    |s| &s.running_mean,
                    |s| &mut s.running_mean,
                    TensorOptions::detached(|t| t.try_fill_with_zeros()),
                ),
                Self::tensor(
                    "running_var",
                    |s| &s.running_var,
                    |s| &mut s.running_var,
                    TensorOptions::detached(|t| t.try_fill_with_ones()),
                ),
                Self::scalar(
                    "epsilon",
                    |s| &s.epsilon,
                    |s| &mut s.epsilon,
                    ScalarOptions::from_default(1e-5),
                ),
                Self::scalar(
                    "momentum",
                    |s| &s.momentum,
                    |s| &mut s.momentum,
                    ScalarOptions::from_default(0.1),
                ),
            ),
            |(scale, bias, running_mean, running_var, epsilon, momentum)| BatchNorm2D {
                scale,
                bias,
                running_mean,
                running_var,
                epsilon,
                momentum,
            },
        )
    }
}

type Batch<B, const C: usize, H, W, T> = Tensor<(B, Const<C>, H, W), f32, Cpu, T>;

impl<const C: usize> BatchNorm2D<C, f32, Cpu> {
    /// `y = a_c·x + b_c` per channel: the normalisation and affine map folded into one
    /// multiply-add.
    fn affine(&self, mean: &[f64], var: &[f64]) -> (Vec<f32>, Vec<f32>) {
        let (scale, bias) = (values(&self.scale), values(&self.bias));
        let a: Vec<f32> = (0..C)
            .map(|c| (scale[c] as f64 / (var[c] + self.epsilon).sqrt()) as f32)
            .collect();
        let b = (0..C)
            .map(|c| (bias[c] as f64 - mean[c] * a[c] as f64) as f32)
            .collect();
        (a, b)
    }

    /// `running ← (1 − momentum)·running + momentum·batch`.
    fn update_running(&mut self, mean: &[f64], var: &[f64], n: f64) {
        let m = self.momentum;
        let step = |running: &mut Tensor<Rank1<C>, f32, Cpu>, batch: &[f64], correction: f64| {
            let old = values(running);
            let new: Vec<f32> = (0..C)
                .map(|c| ((1.0 - m) * old[c] as f64 + m * batch[c] * correction) as f32)
                .collect();
            running.copy_from(&new);
        };
        step(&mut self.running_mean, mean, 1.0);
        step(&mut self.running_var, var, n / (n - 1.0).max(1.0));
    }
}

impl<B: Dim, const C: usize, H: Dim, W: Dim> Module<Batch<B, C, H, W, NoneTape>>
    for BatchNorm2D<C, f32, Cpu>
{
    type Output = Batch<B, C, H, W, NoneTape>;
    type Error = CpuError;

    /// Evaluation: normalises with the running statistics, which stay as they are.
    fn try_forward(&self, x: Batch<B, C, H, W, NoneTape>) -> Result<Self::Output, CpuError> {
        let [_, _, h, w] = x.shape().concrete();
        let layout = Channels {
            channels: C,
            pixels: h * w,
        };
        let x = x.try_contiguous()?;
        let x_values = values(&x);
        let to_f64 = |t: &Tensor<Rank1<C>, f32, Cpu>| values(t).iter().map(|&v| v as f64).collect();
        let (mean, var): (Vec<f64>, Vec<f64>) =
            (to_f64(&self.running_mean), to_f64(&self.running_var));
        let (a, b) = self.affine(&mean, &var);
        let mut out = output_buffer(x.device(), x_values.len())?;
        layout.add_map(&x_values, &x_values, &mut out, |_, c| {
            let (a, b) = (a[c], b[c]);
            move |x, _| a * x + b
        });
        x.device().try_tensor_from_vec(out, *x.shape())
    }
}

impl<B: Dim, const C: usize, H: Dim, W: Dim> ModuleMut<Batch<B, C, H, W, OwnedTape<f32, Cpu>>>
    for BatchNorm2D<C, f32, Cpu>
{
    type Output = Batch<B, C, H, W, OwnedTape<f32, Cpu>>;
    type Error = CpuError;

    /// Training: normalises with the batch's statistics and updates the running ones.
    fn try_forward_mut(
        &mut self,
        x: Batch<B, C, H, W, OwnedTape<f32, Cpu>>,
    ) -> Result<Self::Output, CpuError> {
        let [batch, _, h, w] = x.shape().concrete();
        let layout = Channels {
            channels: C,
            pixels: h * w,
        };
        let (x, tape) = x.try_contiguous()?.split_tape();
        let x_values = values(&x);
        let n = (batch * h * w) as f64;
        let mean: Vec<f64> = layout
            .sums(&x_values, &x_values, |_, _| |v, _| [v])
            .iter()
            .map(|[s]| s / n)
            .collect();
        let mean32: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
        let var: Vec<f64> = layout
            .sums(&x_values, &x_values, |_, c| {
                let mean = mean32[c];
                move |v, _| [(v - mean).powi(2)]
            })
            .iter()
            .map(|[s]| s / n)
            .collect();
        self.update_running(&mean, &var, n);
        let (a, b) = self.affine(&mean, &var);
        let mut out = output_buffer(x.device(), x_values.len())?;
        layout.add_map(&x_values, &x_values, &mut out, |_, c| {
            let (a, b) = (a[c], b[c]);
            move |x, _| a * x + b
        });
        let inv_std: Vec<f32> = var
            .iter()
            .map(|v| (1.0 / (v + self.epsilon).sqrt()) as f32)
            .collect();
        let params = [param(&self.scale), param(&self.bias)];
        record(&x, params, tape, out, *x.shape(), move |g, gx, [gs, gb]| {
            // With x̂ = (x − μ)/σ and y = a·x + b: ∂L/∂bias = Σ g, ∂L/∂scale = Σ g·x̂, and
            // ∂L/∂x = a·(g − Σg/n − x̂·Σ(g·x̂)/n), since μ and σ depend on every x.
            let sums = layout.sums(g, &x_values, |_, c| {
                let mean = mean32[c];
                move |g, x| [g, g * (x - mean)]
            });
            let (mut p, mut q) = (vec![0.0; C], vec![0.0; C]);
            for c in 0..C {
                let [sum_g, sum_gx] = sums[c];
                let inv_std = inv_std[c] as f64;
                gb[c] += sum_g as f32;
                gs[c] += (sum_gx * inv_std) as f32;
                // ∂L/∂x = a·g + p·x + q, one multiply-add per value.
                let a = a[c] as f64;
                p[c] = -a * inv_std * inv_std * sum_gx / n;
                q[c] = (-a * sum_g / n - p[c] * mean[c]) as f32;
            }
            let p: Vec<f32> = p.iter().map(|&p| p as f32).collect();
            layout.add_map(g, &x_values, gx, |_, c| {
                let (a, p, q) = (a[c], p[c], q[c]);
                move |g, x| a * g + p * x + q
            });
        })
    }
}

/// The readable version of [`BatchNorm2D`]'s training pass (without the running
/// statistics): dfdx's `normalize` of each channel over the batch and its pixels, then
/// `scale` and `bias` broadcast per channel. Notebook `04_convnets` §5.
pub fn batch_norm2d_reference<const C: usize, T: Tape<f32, Cpu>>(
    layer: &BatchNorm2D<C, f32, Cpu>,
    x: Tensor<(usize, Const<C>, usize, usize), f32, Cpu, T>,
) -> Tensor<(usize, Const<C>, usize, usize), f32, Cpu, T> {
    let shape = *x.shape();
    x.normalize::<Axes3<0, 2, 3>>(layer.epsilon) * layer.scale.retaped::<T>().broadcast_like(&shape)
        + layer.bias.retaped::<T>().broadcast_like(&shape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_close, assert_close_f32, finite_differences, noise, weighted_sum};

    type Images = Tensor<(usize, Const<3>, usize, usize), f32, Cpu>;
    const SHAPE: (usize, Const<3>, usize, usize) = (4, Const, 5, 6);
    const LEN: usize = 4 * 3 * 5 * 6;

    fn images(dev: &Cpu, values: &[f32]) -> Images {
        dev.tensor_from_vec(values.to_vec(), SHAPE)
    }

    /// Channels off centre and off unit scale, as conv features are.
    fn batch(seed: u64) -> Vec<f32> {
        noise(LEN, seed).iter().map(|v| 2.0 * v + 1.5).collect()
    }

    fn as_f64(v: Vec<f32>) -> Vec<f64> {
        v.into_iter().map(f64::from).collect()
    }

    /// Ours against dfdx's on the same batches: outputs, the gradients of the input, scale
    /// and bias, and the running statistics after two training steps; then evaluation.
    #[test]
    fn matches_dfdx_batch_norm() {
        let dev = Cpu::seed_from_u64(0);
        let mut ours = dev.build_module::<builder::BatchNorm2D<3>, f32>();
        let mut theirs = dev.build_module::<dfdx::nn::builders::BatchNorm2D<3>, f32>();
        (ours.scale, ours.bias) = (dev.tensor([0.5, 2.0, -1.0]), dev.tensor([0.1, 0.0, 3.0]));
        (theirs.scale, theirs.bias) = (ours.scale.clone(), ours.bias.clone());
        let r = images(&dev, &noise(LEN, 9));
        for seed in [1, 2] {
            let x = images(&dev, &batch(seed));
            let y = ours.forward_mut(x.leaky_trace());
            let expected = theirs.forward_mut(x.leaky_trace());
            assert_close("output", &y.as_vec(), &as_f64(expected.as_vec()), 1e-5);
            let g = (y * r.clone()).sum().backward();
            let expected = (expected * r.clone()).sum().backward();
            assert_close(
                "∂/∂x",
                &g.get(&x).as_vec(),
                &as_f64(expected.get(&x).as_vec()),
                1e-4,
            );
            let pairs = [
                ("∂/∂scale", &ours.scale, &theirs.scale),
                ("∂/∂bias", &ours.bias, &theirs.bias),
            ];
            for (what, o, t) in pairs {
                assert_close(
                    what,
                    &g.get(o).as_vec(),
                    &as_f64(expected.get(t).as_vec()),
                    1e-4,
                );
            }
        }
        let stats = [
            ("running mean", &ours.running_mean, &theirs.running_mean),
            ("running variance", &ours.running_var, &theirs.running_var),
        ];
        for (what, o, t) in stats {
            assert_close(what, &o.as_vec(), &as_f64(t.as_vec()), 1e-5);
        }
        let x = images(&dev, &batch(3));
        let expected = as_f64(theirs.forward(x.clone()).as_vec());
        assert_close("evaluation", &ours.forward(x).as_vec(), &expected, 1e-5);
    }

    #[test]
    fn training_matches_the_reference_in_values_and_gradients() {
        let dev = Cpu::seed_from_u64(0);
        let mut bn = dev.build_module::<builder::BatchNorm2D<3>, f32>();
        (bn.scale, bn.bias) = (dev.tensor([0.5, 2.0, -1.0]), dev.tensor([0.1, 0.0, 3.0]));
        let (x, r) = (images(&dev, &batch(6)), images(&dev, &noise(LEN, 7)));
        let theirs = batch_norm2d_reference(&bn, x.leaky_trace());
        let ours = bn.forward_mut(x.leaky_trace());
        assert_close_f32("output", &ours.as_vec(), &theirs.as_vec(), 1e-5);
        let g = (ours * r.clone()).sum().backward();
        let e = (theirs * r).sum().backward();
        assert_close_f32("∂/∂x", &g.get(&x).as_vec(), &e.get(&x).as_vec(), 1e-4);
        for (what, p) in [("∂/∂scale", &bn.scale), ("∂/∂bias", &bn.bias)] {
            assert_close_f32(what, &g.get(p).as_vec(), &e.get(p).as_vec(), 1e-4);
        }
    }

    #[test]
    fn input_gradient_matches_finite_differences() {
        let dev = Cpu::seed_from_u64(0);
        let mut bn = dev.build_module::<builder::BatchNorm2D<3>, f32>();
        bn.scale = dev.tensor([1.5, -0.7, 0.3]);
        let (x, r) = (batch(4), noise(LEN, 5));
        let loss = |x: &[f32]| {
            weighted_sum(
                &bn.clone()
                    .forward_mut(images(&dev, x).leaky_trace())
                    .as_vec(),
                &r,
            )
        };
        let x_t = images(&dev, &x);
        let y = bn.clone().forward_mut(x_t.leaky_trace());
        let analytic = (y * images(&dev, &r)).sum().backward().get(&x_t).as_vec();
        assert_close("∂/∂x", &analytic, &finite_differences(&x, 1e-2, loss), 1e-2);
    }
}
