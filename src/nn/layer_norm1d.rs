//! Layer normalisation of feature vectors (Ba, Kiros & Hinton, 2016), the transformer's
//! (notebook 05), with dfdx's `LayerNorm1D`'s fields and numbers, as one op: each vector's
//! mean and variance, the normalisation and the affine map in two passes forward and two
//! backward, where dfdx chains a dozen generic broadcasts and reductions.

use super::op::{chunks_per_task, output_buffer, param, record, values};
use dfdx::prelude::*;
use dfdx::tensor::CpuError;
use rayon::prelude::*;

builder!(LayerNorm1D<M>);

/// Layer normalisation of the last axis, `M` features: each vector shifted and scaled to
/// mean 0 and variance 1, then feature `j` scaled by `gamma[j]` and shifted by `beta[j]`.
/// The same in training and evaluation. dfdx's `LayerNorm1D`'s fields and defaults
/// (γ = 1, β = 0, ε = 1e-5) and PyTorch's `LayerNorm(M)`.
#[derive(Debug, Clone)]
pub struct LayerNorm1D<const M: usize, E: Dtype, D: Storage<E>> {
    pub gamma: Tensor<Rank1<M>, E, D>,
    pub beta: Tensor<Rank1<M>, E, D>,
    pub epsilon: f64,
}

impl<const M: usize, E: Dtype, D: Storage<E>> NonMutableModule for LayerNorm1D<M, E, D> {}

impl<const M: usize, E: Dtype, D: Device<E>> TensorCollection<E, D> for LayerNorm1D<M, E, D> {
    type To<E2: Dtype, D2: Device<E2>> = LayerNorm1D<M, E2, D2>;

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
            |(gamma, beta, epsilon)| LayerNorm1D {
                gamma,
                beta,
                epsilon,
            },
        )
    }
}

impl<const M: usize> LayerNorm1D<M, f32, Cpu> {
    /// The same layer, with the weights of dfdx's.
    pub fn from_dfdx(norm: &dfdx::nn::modules::LayerNorm1D<M, f32, Cpu>) -> Self {
        LayerNorm1D {
            gamma: norm.gamma.clone(),
            beta: norm.beta.clone(),
            epsilon: norm.epsilon,
        }
    }

    /// The layer on any shape whose last axis is the `M` features.
    fn normalize<S: Shape, T: Tape<f32, Cpu>>(
        &self,
        x: Tensor<S, f32, Cpu, T>,
    ) -> Result<Tensor<S, f32, Cpu, T>, CpuError> {
        let (x, tape) = x.try_contiguous()?.split_tape();
        let xs = values(&x);
        let per_task = chunks_per_task(M);
        // Each vector's mean and 1/σ.
        let stats: Vec<(f32, f32)> = xs
            .par_chunks(M)
            .with_min_len(per_task)
            .map(|v| {
                let mean = v.iter().sum::<f32>() / M as f32;
                let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / M as f32;
                (mean, 1.0 / (var + self.epsilon as f32).sqrt())
            })
            .collect();
        let (gamma, beta) = (values(&self.gamma), values(&self.beta));
        let mut out = output_buffer(x.device(), xs.len())?;
        out.par_chunks_mut(M)
            .zip(xs.par_chunks(M).zip(&stats))
            .with_min_len(per_task)
            .for_each(|(out, (v, &(mean, r)))| {
                for j in 0..M {
                    out[j] = (v[j] - mean) * r * gamma[j] + beta[j];
                }
            });
        let params = [param(&self.gamma), param(&self.beta)];
        record(&x, params, tape, out, *x.shape(), move |g, gx, [gg, gb]| {
            // With x̂ = (x − μ)/σ per vector and y = γ·x̂ + β: ∂L/∂β = Σ g, ∂L/∂γ = Σ g·x̂
            // over the vectors, and ∂L/∂x = (γg − mean(γg) − x̂·mean(γg·x̂))/σ, the means
            // over the vector, since its μ and σ depend on all of it.
            gx.par_chunks_mut(M)
                .zip(g.par_chunks(M).zip(xs.par_chunks(M).zip(&stats)))
                .with_min_len(per_task)
                .for_each(|(gx, (g, (v, &(mean, r))))| {
                    let (mut a, mut c) = (0.0, 0.0);
                    for j in 0..M {
                        a += gamma[j] * g[j];
                        c += gamma[j] * g[j] * (v[j] - mean) * r;
                    }
                    let (a, c) = (a / M as f32, c / M as f32);
                    for j in 0..M {
                        let x_hat = (v[j] - mean) * r;
                        gx[j] += (gamma[j] * g[j] - a - x_hat * c) * r;
                    }
                });
            for (g, (v, &(mean, r))) in g.chunks(M).zip(xs.chunks(M).zip(&stats)) {
                for j in 0..M {
                    gb[j] += g[j];
                    gg[j] += g[j] * (v[j] - mean) * r;
                }
            }
        })
    }
}

impl<B: Dim, const M: usize, T: Tape<f32, Cpu>> Module<Tensor<(B, Const<M>), f32, Cpu, T>>
    for LayerNorm1D<M, f32, Cpu>
{
    type Output = Tensor<(B, Const<M>), f32, Cpu, T>;
    type Error = CpuError;

    fn try_forward(&self, x: Tensor<(B, Const<M>), f32, Cpu, T>) -> Result<Self::Output, CpuError> {
        self.normalize(x)
    }
}

impl<B: Dim, S: Dim, const M: usize, T: Tape<f32, Cpu>>
    Module<Tensor<(B, S, Const<M>), f32, Cpu, T>> for LayerNorm1D<M, f32, Cpu>
{
    type Output = Tensor<(B, S, Const<M>), f32, Cpu, T>;
    type Error = CpuError;

    fn try_forward(
        &self,
        x: Tensor<(B, S, Const<M>), f32, Cpu, T>,
    ) -> Result<Self::Output, CpuError> {
        self.normalize(x)
    }
}

/// The readable version of [`LayerNorm1D`]: dfdx's `normalize` over each vector's `M`
/// features, then `gamma` and `beta` broadcast over the vectors; dfdx's own
/// `LayerNorm1D` computes the same. Notebook `05_attention` §5.
pub fn layer_norm1d_reference<const M: usize, T: Tape<f32, Cpu>>(
    layer: &LayerNorm1D<M, f32, Cpu>,
    x: Tensor<(usize, usize, Const<M>), f32, Cpu, T>,
) -> Tensor<(usize, usize, Const<M>), f32, Cpu, T> {
    let shape = *x.shape();
    x.normalize::<Axis<2>>(layer.epsilon) * layer.gamma.retaped::<T>().broadcast_like(&shape)
        + layer.beta.retaped::<T>().broadcast_like(&shape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::assert_close_f32;

    /// Ours against the reference on the same vectors: outputs and the gradients of the
    /// input, γ and β.
    #[test]
    fn matches_the_reference_in_values_and_gradients() {
        let dev = Cpu::seed_from_u64(0);
        let mut norm = dev.build_module::<builder::LayerNorm1D<5>, f32>();
        norm.gamma = dev.tensor([0.5, 2.0, -1.0, 1.0, 0.3]);
        norm.beta = dev.tensor([0.1, 0.0, 3.0, -1.0, 0.0]);
        let shape = (3, 4, Const::<5>);
        let x: Tensor<(usize, usize, Const<5>), f32, _> =
            dev.sample_normal_like(&shape) * 2.0 + 1.5;
        let r: Tensor<(usize, usize, Const<5>), f32, _> = dev.sample_normal_like(&shape);
        let ours = norm.forward(x.leaky_trace());
        let theirs = layer_norm1d_reference(&norm, x.leaky_trace());
        assert_close_f32("output", &ours.as_vec(), &theirs.as_vec(), 1e-5);
        let g = (ours * r.clone()).sum().backward();
        let e = (theirs * r).sum().backward();
        assert_close_f32("∂/∂x", &g.get(&x).as_vec(), &e.get(&x).as_vec(), 1e-5);
        for (what, p) in [("∂/∂γ", &norm.gamma), ("∂/∂β", &norm.beta)] {
            assert_close_f32(what, &g.get(p).as_vec(), &e.get(p).as_vec(), 1e-5);
        }
    }
}
