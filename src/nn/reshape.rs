//! Between images and vectors: [`Flatten2D`] hands a convolutional stack's feature maps
//! to dfdx's `Linear` layers, [`Unflatten2D`] gives flat pixels back their grid. Both are
//! dfdx reshapes, free when the data is contiguous, and differentiable.

use dfdx::prelude::*;
use dfdx::tensor::CpuError;

/// Flattens `(batch, channels, height, width)` into `(batch, Const<F>)` for a `Linear`
/// layer; `F` must be channels·height·width. Stable Rust cannot compute that product in a
/// type, so the model states it, and a wrong `F` stops at the first forward pass with the
/// right value in the message.
#[derive(Debug, Default, Clone, Copy)]
pub struct Flatten2D<const F: usize>;

/// Gives `(batch, Const<C·H·W>)` flat pixels their `(batch, C, H, W)` grid back, so a
/// convolutional model trains on the same mini-batches as an MLP.
#[derive(Debug, Default, Clone, Copy)]
pub struct Unflatten2D<const C: usize, const H: usize, const W: usize>;

impl<const F: usize> ZeroSizedModule for Flatten2D<F> {}
impl<const F: usize> NonMutableModule for Flatten2D<F> {}
impl<const C: usize, const H: usize, const W: usize> ZeroSizedModule for Unflatten2D<C, H, W> {}
impl<const C: usize, const H: usize, const W: usize> NonMutableModule for Unflatten2D<C, H, W> {}

impl<const F: usize, B: Dim, C: Dim, H: Dim, W: Dim, T: Tape<f32, Cpu>>
    Module<Tensor<(B, C, H, W), f32, Cpu, T>> for Flatten2D<F>
{
    type Output = Tensor<(B, Const<F>), f32, Cpu, T>;
    type Error = CpuError;

    fn try_forward(&self, x: Tensor<(B, C, H, W), f32, Cpu, T>) -> Result<Self::Output, CpuError> {
        let [_, c, h, w] = x.shape().concrete();
        assert!(
            c * h * w == F,
            "Flatten2D<{F}> got {c}×{h}×{w} feature maps: make it Flatten2D<{}>",
            c * h * w
        );
        let batch = x.shape().0;
        x.try_reshape_like(&(batch, Const))
    }
}

impl<const C: usize, const H: usize, const W: usize, B: Dim, F: Dim, T: Tape<f32, Cpu>>
    Module<Tensor<(B, F), f32, Cpu, T>> for Unflatten2D<C, H, W>
{
    type Output = Tensor<(B, Const<C>, Const<H>, Const<W>), f32, Cpu, T>;
    type Error = CpuError;

    fn try_forward(&self, x: Tensor<(B, F), f32, Cpu, T>) -> Result<Self::Output, CpuError> {
        let features = x.shape().1.size();
        assert!(
            features == C * H * W,
            "Unflatten2D<{C}, {H}, {W}> needs {} features per example but got {features}",
            C * H * W
        );
        let batch = x.shape().0;
        x.try_reshape_like(&(batch, Const, Const, Const))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flatten_and_unflatten_round_trip_with_gradients() {
        let dev = Cpu::default();
        let x: Tensor<Rank2<3, 12>, f32, _> = dev.sample_normal();
        let grid = Unflatten2D::<3, 2, 2>.forward(x.leaky_trace());
        assert_eq!(grid.shape().concrete(), [3, 3, 2, 2]);
        let flat = Flatten2D::<12>.forward(grid);
        assert_eq!(flat.as_vec(), x.as_vec());
        let grads = flat.square().sum().backward();
        let expected: Vec<f32> = x.as_vec().iter().map(|v| 2.0 * v).collect();
        assert_eq!(grads.get(&x).as_vec(), expected);
    }

    #[test]
    #[should_panic(expected = "make it Flatten2D<12>")]
    fn a_wrong_flatten_size_names_the_right_one() {
        let x: Tensor<Rank4<1, 3, 2, 2>, f32, _> = Cpu::default().zeros();
        Flatten2D::<10>.forward(x);
    }
}
