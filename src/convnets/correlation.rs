//! §1: what a convolution computes. A convolutional layer slides one small kernel over the
//! image and takes a dot product at every position: a cross-correlation, the kernel not
//! flipped (Zhang, Lipton, Li & Smola, *Dive into Deep Learning*, §7.2). Here: grey images
//! as the 4-D batches the ops take, an edge detector learned back from its output by
//! gradient descent, and shifted images, to measure that a convolution's output moves with
//! its input and how much of a shift max pooling absorbs.

use crate::nn::builders::Conv2D;
use crate::nn::{Images, Kernels};
use crate::optim::Method;
use crate::runtime::device;
use crate::train::{fit, Drawn, History, Measured, TrainConfig};
use crate::Error;
use dfdx::prelude::*;

/// One grey image, `height × width` row-major, as the `(1, 1, height, width)` batch that
/// [`conv2d`](crate::nn::conv2d) and [`pool2d`](crate::nn::pool2d) take (also a kernel of
/// one input and one output channel). Notebook `04_convnets` §1.
pub fn as_batch(pixels: &[f32], height: usize, width: usize) -> Kernels {
    Cpu::default().tensor_from_vec(pixels.to_vec(), (1, 1, height, width))
}

/// Every image of `x` moved `dy` pixels down and `dx` right (negative: up, left), the
/// pixels that move in from outside zero. Notebook `04_convnets` §1 shifts images to
/// measure translation equivariance and what pooling absorbs.
pub fn shift(x: &Kernels, dy: isize, dx: isize) -> Kernels {
    let (_, _, h, w) = *x.shape();
    let values = x.as_vec();
    let moved = (0..values.len()).map(|i| {
        let (plane, y, x) = (i / (h * w), (i / w % h) as isize, (i % w) as isize);
        let (sy, sx) = (y - dy, x - dx);
        let inside = (0..h as isize).contains(&sy) && (0..w as isize).contains(&sx);
        if inside {
            values[plane * h * w + sy as usize * w + sx as usize]
        } else {
            0.0
        }
    });
    x.device().tensor_from_vec(moved.collect(), *x.shape())
}

/// A 2×2 kernel learned by [`learn_kernel`] (notebook `04_convnets` §1), row-major, and
/// the loss of every step.
pub struct LearnedKernel {
    pub kernel: Vec<f32>,
    pub history: History,
}

/// Learns the 2×2 kernel `w` that makes `conv2d(x, w)` match `target` (stride 1, no
/// padding): `steps` steps of plain gradient descent at learning rate `lr` on the mean
/// squared error, from a [`Conv2D`] layer's random start (seeded). Dive into Deep Learning's
/// §7.2.4 learns d2l's [1, −1] edge detector this way; the crate's convolution takes square
/// kernels, so ours is 2×2. Notebook `04_convnets` §1.
pub fn learn_kernel(
    x: &Kernels,
    target: &Images<usize, usize, NoneTape>,
    steps: usize,
    lr: f64,
    seed: u64,
) -> Result<LearnedKernel, Error> {
    let dev = device(seed);
    // evcxr links the crate, dfdx included, afresh into every notebook cell, and each copy
    // numbers its tensors from 0: an image made in an earlier cell could share its number
    // with the layer's weight, and their gradients would mix. Copies made here cannot.
    let (x, target) = (copy(&dev, x), copy(&dev, target));
    let mut layer = dev.build_module::<Conv2D<1, 1, 2>, f32>();
    let mut sgd = Method::Sgd.at(lr).build(&layer);
    let objective = |layer: &mut <Conv2D<1, 1, 2> as BuildOnDevice<Cpu, f32>>::Built,
                     (): (),
                     grads|
     -> Result<Measured, Error> {
        let y = layer.try_forward(x.clone().traced(grads))?;
        let target = target.clone().reshape_like(y.shape());
        Ok(Measured::loss((y - target).square().mean()))
    };
    let history = fit(
        &mut layer,
        sgd.as_mut(),
        Drawn::new(steps, || ()),
        objective,
        &TrainConfig::new(1).quiet(),
    )?;
    Ok(LearnedKernel {
        kernel: layer.weight.as_vec(),
        history,
    })
}

/// `t`'s values in a new tensor on `dev`.
fn copy(dev: &Cpu, t: &Kernels) -> Kernels {
    dev.tensor_from_vec(t.as_vec(), *t.shape())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{conv2d, ConvSpec};

    #[test]
    fn shifting_moves_pixels_and_fills_with_zeros() {
        let x = as_batch(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3);
        assert_eq!(shift(&x, 0, 1).as_vec(), [0.0, 1.0, 2.0, 0.0, 4.0, 5.0]);
        assert_eq!(shift(&x, -1, 0).as_vec(), [4.0, 5.0, 6.0, 0.0, 0.0, 0.0]);
        assert_eq!(shift(&x, 0, 0).as_vec(), x.as_vec());
    }

    #[test]
    fn gradient_descent_recovers_an_edge_detector() {
        // A bright square: vertical and horizontal edges and corners fix all four weights.
        let square: Vec<f32> = (0..64)
            .map(|i| {
                f32::from(u8::from(
                    (2..6).contains(&(i / 8)) && (2..6).contains(&(i % 8)),
                ))
            })
            .collect();
        let x = as_batch(&square, 8, 8);
        let edge = as_batch(&[1.0, -1.0, 0.0, 0.0], 2, 2);
        let target = conv2d(x.clone(), edge.clone(), ConvSpec::default()).unwrap();
        let learned = learn_kernel(&x, &target, 300, 0.9, 0).unwrap();
        let error = learned
            .kernel
            .iter()
            .zip(edge.as_vec())
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(error < 1e-3, "{:?}", learned.kernel);
        let losses = learned.history.losses();
        assert!(losses[losses.len() - 1] < 1e-4 * losses[0], "{losses:?}");
    }
}
