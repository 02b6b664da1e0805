//! Layer normalisation for images (Ba, Kiros & Hinton, 2016): each example normalised over
//! all its channels and pixels, so that, unlike batch normalisation, nothing depends on the
//! other examples in the batch. Notebook 04 §4 sets it against batch normalisation.

use dfdx::prelude::*;

pub mod builder {
    /// Builds a [`super::LayerNorm2D`]; see there.
    #[derive(Debug, Clone, Copy)]
    pub struct LayerNorm2D<const C: usize>;
}

impl<const C: usize, E: Dtype, D: Device<E>> BuildOnDevice<D, E> for builder::LayerNorm2D<C> {
    type Built = LayerNorm2D<C, E, D>;
    fn try_build_on_device(device: &D) -> Result<Self::Built, D::Err> {
        Self::Built::try_build(device)
    }
}

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

impl<B: Dim, const C: usize, H: Dim, W: Dim, E: Dtype, D: Device<E>, T: Tape<E, D>>
    Module<Tensor<(B, Const<C>, H, W), E, D, T>> for LayerNorm2D<C, E, D>
{
    type Output = Tensor<(B, Const<C>, H, W), E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, x: Tensor<(B, Const<C>, H, W), E, D, T>) -> Result<Self::Output, D::Err> {
        let shape = *x.shape();
        // Mean and variance over axes 1, 2, 3 (C, h, w): one pair per example.
        x.try_normalize::<Axes3<1, 2, 3>>(self.epsilon)?
            .try_mul(self.gamma.retaped::<T>().try_broadcast_like(&shape)?)?
            .try_add(self.beta.retaped::<T>().try_broadcast_like(&shape)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
