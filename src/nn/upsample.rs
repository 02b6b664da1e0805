//! Upsampling by a factor, for images whose size is known only at run time (a U-Net's
//! decoder, notebook 09). dfdx's stable `Upscale2D` needs the output size in the type;
//! this wraps its runtime-sized `upscale2d_like` instead.

use dfdx::prelude::*;
use dfdx::tensor::CpuError;

/// Scales height and width by `F`: nearest neighbour by default (PyTorch's
/// `Upsample(scale_factor=F)`), or dfdx's `Bilinear` (with `align_corners=True`).
#[derive(Debug, Default, Clone, Copy)]
pub struct Upsample2D<const F: usize, M = NearestNeighbor>(pub M);

impl<const F: usize, M: Default> ZeroSizedModule for Upsample2D<F, M> {}
impl<const F: usize, M> NonMutableModule for Upsample2D<F, M> {}

impl<const F: usize, M, B: Dim, C: Dim, H: Dim, W: Dim, T> Module<Tensor<(B, C, H, W), f32, Cpu, T>>
    for Upsample2D<F, M>
where
    M: UpscaleMethod + Copy,
    T: Tape<f32, Cpu>,
    Tensor<(B, C, H, W), f32, Cpu, T>: GenericUpscale2D<
        M,
        Output<usize, usize> = Tensor<(B, C, usize, usize), f32, Cpu, T>,
        Err = CpuError,
    >,
{
    type Output = Tensor<(B, C, usize, usize), f32, Cpu, T>;
    type Error = CpuError;

    fn try_forward(&self, x: Tensor<(B, C, H, W), f32, Cpu, T>) -> Result<Self::Output, CpuError> {
        let [_, _, h, w] = x.shape().concrete();
        x.try_upscale2d_like(self.0, h * F, w * F)
    }
}

/// The readable version of [`Upsample2D`] with nearest neighbours, as plain loops:
/// `out[n, c, y, x] = x[n, c, y / factor, x / factor]`. Notebook `04_convnets` §6 (the
/// U-Net's decoder).
pub fn upsample2d_reference(
    x: &Tensor<(usize, usize, usize, usize), f32, Cpu>,
    factor: usize,
) -> Tensor<(usize, usize, usize, usize), f32, Cpu> {
    let (b, c, h, w) = *x.shape();
    let (oh, ow) = (h * factor, w * factor);
    let xs = x.as_vec();
    let out = (0..b * c * oh * ow).map(|i| {
        let (plane, y, x) = (i / (oh * ow), i / ow % oh, i % ow);
        xs[(plane * h + y / factor) * w + x / factor]
    });
    x.device().tensor_from_vec(out.collect(), (b, c, oh, ow))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_close, finite_differences, noise, weighted_sum};

    #[test]
    fn nearest_copies_each_pixel_into_a_block() {
        let dev = Cpu::default();
        let x = dev.tensor_from_vec(vec![1.0, 2.0, 3.0, 4.0], (1, 1, 2, 2));
        let y = Upsample2D::<2>::default().forward(x.leaky_trace());
        assert_eq!(*y.shape(), (1, 1, 4, 4));
        let row = |r: usize| y.as_vec()[r * 4..][..4].to_vec();
        assert_eq!(row(0), [1.0, 1.0, 2.0, 2.0]);
        assert_eq!(row(3), [3.0, 3.0, 4.0, 4.0]);
        // Each input pixel feeds 4 outputs, so its gradient under a sum is 4.
        let grads = y.sum().backward();
        assert_eq!(grads.get(&x).as_vec(), [4.0; 4]);
    }

    /// The values are the reference's, and the gradients the reference's by central
    /// differences (exact: the op is linear).
    #[test]
    fn nearest_matches_the_reference_in_values_and_gradients() {
        let dev = Cpu::default();
        let shape = (2, 3, 4, 5);
        let x = noise(2 * 3 * 4 * 5, 1);
        let xt = dev.tensor_from_vec(x.clone(), shape);
        let y = Upsample2D::<3>::default().forward(xt.leaky_trace());
        let reference =
            |x: &[f32]| upsample2d_reference(&dev.tensor_from_vec(x.to_vec(), shape), 3);
        assert_eq!(y.as_vec(), reference(&x).as_vec());
        let r = noise(y.shape().num_elements(), 2);
        let grads = (y * dev.tensor_from_vec(r.clone(), (2, 3, 12, 15)))
            .sum()
            .backward();
        let loss = |x: &[f32]| weighted_sum(&reference(x).as_vec(), &r);
        assert_close(
            "∂/∂x",
            &grads.get(&xt).as_vec(),
            &finite_differences(&x, 0.5, loss),
            1e-4,
        );
    }

    #[test]
    fn bilinear_is_available_too() {
        let x: Tensor<Rank4<2, 3, 5, 5>, f32, _> = Cpu::default().sample_normal();
        let y = Upsample2D::<3, Bilinear>::default().forward(x);
        assert_eq!(y.shape().concrete(), [2, 3, 15, 15]);
    }
}
