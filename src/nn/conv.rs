//! The convolution both [`conv2d`](super::conv2d) and
//! [`conv_transpose2d`](super::conv_transpose2d) run: im2col turns every patch into a
//! column and one matrix product per image and group filters them all, or, for narrow
//! stride-1 layers, the direct path of [`super::direct`]; the backward pass is two more
//! products plus the adjoint of im2col.

use super::direct::Correlation;
use super::im2col::Plane;
use super::matmul::{matmul, Mat};
use super::op::{cached_zeros, chunks_per_task, output_buffer, param, record, values};
use super::Images;
use crate::Error;
use dfdx::prelude::*;
use rand_distr::{uniform::SampleUniform, Uniform};
use rayon::prelude::*;
use std::cell::RefCell;
use std::ops::Range;

/// Resets a convolution layer's weight `A × B × K × K` uniform in ±1/√(B·K·K): PyTorch's
/// default for `Conv2d` (`A` out, `B` in) and `ConvTranspose2d` (`A` in, `B` out) alike,
/// Kaiming-uniform (He et al., 2015) with its gain, the fan-in taken from every axis but
/// the first.
pub(super) fn reset_uniform<const A: usize, const B: usize, const K: usize, E, D>(
    w: &mut Tensor<Rank4<A, B, K, K>, E, D>,
) -> Result<(), D::Err>
where
    E: Dtype + num_traits::Float + SampleUniform,
    D: Device<E>,
{
    let bound = E::ONE / E::from_usize(B * K * K).unwrap().sqrt();
    w.try_fill_with_distr(Uniform::new(-bound, bound))
}

/// What [`conv2d`](super::conv2d) and [`conv_transpose2d`](super::conv_transpose2d) share
/// once their shapes are checked: the values of the images `x` and the kernels `w`, the
/// output `(batch, channels, out_h, out_w)` that `forward(x, w, out)` fills, and its
/// recording on the merged tapes, `backward(dev, x, w, grad_out, grad_x, grad_w)` adding to
/// the gradients (`dev` for the scratch buffers of its sums).
pub(super) fn record_with_kernels<B: Dim, C: Dim, H: Dim, W: Dim, Ks: Shape, O: Dim, T, R>(
    x: Tensor<(B, C, H, W), f32, Cpu, T>,
    w: Tensor<Ks, f32, Cpu, R>,
    (channels, out_h, out_w): (O, usize, usize),
    forward: impl FnOnce(&[f32], &[f32], &mut [f32]),
    backward: impl FnOnce(&Cpu, &[f32], &[f32], &[f32], &mut [f32], &mut [f32]) + 'static,
) -> Result<Images<B, O, T>, Error>
where
    T: Tape<f32, Cpu> + Merge<R>,
    R: Tape<f32, Cpu>,
{
    let (x, tape) = x.try_contiguous()?.split_tape();
    let (w, w_tape) = w.try_contiguous()?.split_tape();
    let (x_values, w_values) = (values(&x), values(&w));
    let shape = (x.shape().0, channels, out_h, out_w);
    let dev = x.device().clone();
    let mut out = output_buffer(x.device(), shape.num_elements())?;
    forward(&x_values, &w_values, &mut out);
    let out = record(
        &x,
        [param(&w)],
        tape.merge(w_tape),
        out,
        shape,
        move |g, gx, [gw]| backward(&dev, &x_values, &w_values, g, gx, gw),
    )?;
    Ok(out)
}

/// The sizes of one convolution: `batch` images, each `groups` groups of
/// `plane.channels` channels, each group filtered by `out_per_group` kernels. Its three
/// methods are the forward pass and the two gradients; the transposed convolution is the
/// same three, used in another order.
#[derive(Clone, Copy, Debug)]
pub(super) struct Conv {
    pub batch: usize,
    pub groups: usize,
    pub out_per_group: usize,
    pub plane: Plane,
}

impl Conv {
    fn in_len(&self) -> usize {
        self.groups * self.plane.image_len()
    }

    pub fn out_len(&self) -> usize {
        self.groups * self.out_per_group * self.plane.positions()
    }

    /// Group `g`'s kernels as an `out_per_group × patch_len` matrix.
    fn kernels<'a>(&self, w: &'a [f32], g: usize) -> Mat<'a> {
        let (rows, cols) = (self.out_per_group, self.plane.patch_len());
        Mat::rows(&w[g * rows * cols..][..rows * cols], rows, cols)
    }

    /// One product per image on each of rayon's threads when the batch is large enough to
    /// share out, otherwise each product split across all threads.
    fn threads_per_product(&self) -> usize {
        let threads = rayon::current_num_threads();
        if self.batch >= threads {
            1
        } else {
            threads
        }
    }

    /// The direct path's correlations, for the forward pass and the input gradient, where
    /// it applies: stride 1, no dilation, and a kernel and channels few enough that the
    /// im2col path's matrix products would be too thin to pay for copying every pixel k²
    /// times.
    fn direct(&self) -> Option<(Correlation, Correlation)> {
        let (p, w) = (self.plane, self.plane.window);
        let channels = [p.channels, self.out_per_group];
        let narrow = w.kernel <= DIRECT_MAX_KERNEL
            && channels
                .iter()
                .all(|c| (DIRECT_MIN_CHANNELS..=DIRECT_MAX_CHANNELS).contains(c));
        if w.stride != 1 || w.dilation != 1 || w.padding >= w.kernel || !narrow {
            return None;
        }
        let forward = Correlation::new(p.channels, p.height, p.width, w.padding, w.kernel)?;
        let back_pad = w.kernel - 1 - w.padding;
        let backward = Correlation::new(self.out_per_group, p.out_h, p.out_w, back_pad, w.kernel)?;
        Some((forward, backward))
    }

    /// Where weight `(o, c, tap)` of group `g` is, in PyTorch's `out × channels × k × k`
    /// layout.
    fn weight_index(&self, g: usize, o: usize, c: usize, tap: usize) -> usize {
        let taps = self.plane.window.kernel.pow(2);
        ((g * self.out_per_group + o) * self.plane.channels + c) * taps + tap
    }

    /// Adds the output, `batch × groups·out_per_group × positions`, to `out`.
    pub fn forward(&self, x: &[f32], w: &[f32], out: &mut [f32]) {
        if let Some((direct, _)) = self.direct() {
            let weight = |g, o, c, t| w[self.weight_index(g, o, c, t)];
            let outs = self.out_per_group;
            return self.add_correlations(
                direct,
                outs,
                weight,
                x,
                self.in_len(),
                out,
                self.out_len(),
            );
        }
        let (positions, threads) = (self.plane.positions(), self.threads_per_product());
        self.per_image(out, self.out_len(), x, self.in_len(), |out, x| {
            with_scratch(self.plane.patch_len() * positions, |cols| {
                let groups = out.chunks_exact_mut(self.out_per_group * positions);
                for (g, out) in groups.enumerate() {
                    let patches = self.patches(x, g, cols);
                    matmul(out, self.kernels(w, g), patches, true, threads);
                }
            })
        });
    }

    /// Runs `f(dst, src)` on each image's `dst_len` and `src_len` values, images shared out
    /// among rayon's threads.
    fn per_image(
        &self,
        dst: &mut [f32],
        dst_len: usize,
        src: &[f32],
        src_len: usize,
        f: impl Fn(&mut [f32], &[f32]) + Sync,
    ) {
        dst.par_chunks_mut(dst_len)
            .zip(src.par_chunks(src_len))
            .with_min_len(chunks_per_task(self.out_len()))
            .for_each(|(dst, src)| f(dst, src));
    }

    /// The direct path's passes: adds to each image's `dst_len` values the correlation, group
    /// by group, of its `src_len` values with the kernels `weight(group, out, channel, tap)`
    /// of `outs` outputs.
    #[allow(clippy::too_many_arguments)]
    fn add_correlations(
        &self,
        direct: Correlation,
        outs: usize,
        weight: impl Fn(usize, usize, usize, usize) -> f32,
        src: &[f32],
        src_len: usize,
        dst: &mut [f32],
        dst_len: usize,
    ) {
        let kernels: Vec<Vec<f32>> = (0..self.groups)
            .map(|g| direct.pack(outs, |o, c, t| weight(g, o, c, t)))
            .collect();
        let (src_group, dst_group) = (src_len / self.groups, dst_len / self.groups);
        self.per_image(dst, dst_len, src, src_len, |dst, src| {
            with_scratch(direct.padded_len() + direct.wide_len(outs), |buffer| {
                let (padded, wide) = buffer.split_at_mut(direct.padded_len());
                let groups = src
                    .chunks_exact(src_group)
                    .zip(dst.chunks_exact_mut(dst_group));
                for ((src, dst), kernels) in groups.zip(&kernels) {
                    direct.pad(src, padded);
                    direct.forward(padded, kernels, wide);
                    direct.add_narrow(wide, outs, dst);
                }
            })
        });
    }

    /// Σ over images of `f(images, dst, sum)`, each thread summing its share of the batch
    /// into a buffer of its own from `dev`'s tensor cache ([`cached_zeros`]), of `len`
    /// values; the buffers are added to the first. `dst` (empty, or a value buffer per
    /// image) is split the same way: `f` gets the images' part of it, to write what it
    /// computes per image on the way.
    fn sum_over_images(
        &self,
        dev: &Cpu,
        len: usize,
        dst: &mut [f32],
        f: impl Fn(Range<usize>, &mut [f32], &mut [f32]) + Sync,
    ) -> <Cpu as Storage<f32>>::Vec {
        let threads = rayon::current_num_threads().min(self.batch).max(1);
        let per_thread = self.batch.div_ceil(threads);
        let per_image = dst.len() / self.batch;
        let mut shares = Vec::with_capacity(threads);
        let mut rest = dst;
        for t in 0..threads {
            let images = (t * per_thread).min(self.batch)..((t + 1) * per_thread).min(self.batch);
            let (part, tail) = std::mem::take(&mut rest).split_at_mut(images.len() * per_image);
            // Taken here, on one thread, as `cached_zeros` must be.
            shares.push((images, part, cached_zeros(dev, len)));
            rest = tail;
        }
        let partials: Vec<_> = shares
            .into_par_iter()
            .map(|(images, dst, mut sum)| {
                f(images, dst, &mut sum);
                sum
            })
            .collect();
        let mut partials = partials.into_iter();
        let mut total = partials.next().expect("at least one share");
        for partial in partials {
            total
                .iter_mut()
                .zip(partial.iter())
                .for_each(|(t, p)| *t += p);
        }
        total
    }

    /// Group `g`'s patches of image `x` (im2col into `cols`): `patch_len × positions`.
    fn patches<'a>(&self, x: &[f32], g: usize, cols: &'a mut [f32]) -> Mat<'a> {
        let image = self.plane.image_len();
        self.plane.im2col(&x[g * image..][..image], cols);
        Mat::rows(cols, self.plane.patch_len(), self.plane.positions())
    }

    /// Adds ∂L/∂w = Σ over images of ∂L/∂out · patchesᵀ to `grad_w`. The patches are
    /// rebuilt from `x` image by image rather than kept from the forward pass: a cache-sized
    /// buffer per thread instead of one the size of every patch of the batch.
    pub fn weight_grad(&self, dev: &Cpu, x: &[f32], grad_out: &[f32], grad_w: &mut [f32]) {
        let positions = self.plane.positions();
        let image = |b: usize| &x[b * self.in_len()..][..self.in_len()];
        let grad = |b: usize| &grad_out[b * self.out_len()..][..self.out_len()];
        if let Some((direct, _)) = self.direct() {
            let outs = self.out_per_group;
            let packed = direct.grad_len(outs);
            let len = self.groups * packed;
            let sums = self.sum_over_images(dev, len, &mut [], |images, _, sums| {
                with_scratch(direct.padded_len() + direct.wide_len(outs), |buffer| {
                    let (padded, wide) = buffer.split_at_mut(direct.padded_len());
                    for b in images {
                        for (g, sums) in sums.chunks_exact_mut(packed).enumerate() {
                            direct.pad(&image(b)[g * self.plane.image_len()..], padded);
                            direct.interleave(&grad(b)[g * outs * positions..], outs, wide);
                            direct.weight_grad(padded, wide, sums);
                        }
                    }
                })
            });
            for (g, sums) in sums.chunks_exact(packed).enumerate() {
                direct.unpack_grad(outs, sums, |o, c, t, v| {
                    grad_w[self.weight_index(g, o, c, t)] += v;
                });
            }
            return;
        }
        self.im2col_weight_grad(dev, x, grad_out, grad_w, None);
    }

    /// [`Conv::forward`] of `x` into `out` and [`Conv::weight_grad`] of `x` with `grad_out`
    /// into `grad_w` in one sweep over the images, each image's patches built once for both
    /// products instead of twice: a transposed convolution's backward pass, where `x` is its
    /// output gradient. The same products, summed in the same order.
    pub fn forward_and_weight_grad(
        &self,
        dev: &Cpu,
        x: &[f32],
        w: &[f32],
        out: &mut [f32],
        grad_out: &[f32],
        grad_w: &mut [f32],
    ) {
        if self.direct().is_some() {
            self.forward(x, w, out);
            return self.weight_grad(dev, x, grad_out, grad_w);
        }
        self.im2col_weight_grad(dev, x, grad_out, grad_w, Some((w, out)));
    }

    /// The im2col path's weight gradient: adds Σ over images of ∂L/∂out · patchesᵀ to
    /// `grad_w`. With `forward = Some((w, out))`, each image's patches also give its
    /// [`Conv::forward`] product into `out`, so they are built once for both.
    fn im2col_weight_grad(
        &self,
        dev: &Cpu,
        x: &[f32],
        grad_out: &[f32],
        grad_w: &mut [f32],
        forward: Option<(&[f32], &mut [f32])>,
    ) {
        let (positions, patch) = (self.plane.positions(), self.plane.patch_len());
        let image = |b: usize| &x[b * self.in_len()..][..self.in_len()];
        let grad = |b: usize| &grad_out[b * self.out_len()..][..self.out_len()];
        let threads = self.threads_per_product();
        let (w, out) = match forward {
            Some((w, out)) => (Some(w), out),
            None => (None, &mut [][..]),
        };
        let sum = self.sum_over_images(dev, grad_w.len(), out, |images, out, sum| {
            with_scratch(patch * positions, |cols| {
                let first = images.start;
                for b in images {
                    for g in 0..self.groups {
                        let patches = self.patches(image(b), g, cols);
                        if let Some(w) = w {
                            let image_out = &mut out[(b - first) * self.out_len()..];
                            let group_out = &mut image_out[g * self.out_per_group * positions..]
                                [..self.out_per_group * positions];
                            matmul(group_out, self.kernels(w, g), patches, true, threads);
                        }
                        let grad_out = &grad(b)[g * self.out_per_group * positions..]
                            [..self.out_per_group * positions];
                        let grad_out = Mat::rows(grad_out, self.out_per_group, positions);
                        let sum = &mut sum[g * self.out_per_group * patch..]
                            [..self.out_per_group * patch];
                        matmul(sum, grad_out, patches.t(), true, threads);
                    }
                }
            })
        });
        grad_w.iter_mut().zip(sum.iter()).for_each(|(g, s)| *g += s);
    }

    /// Adds ∂L/∂x to `grad_x`: each image's patch gradients kernelsᵀ · ∂L/∂out, folded back
    /// onto the pixels they came from (col2im). On the direct path: the correlation of the
    /// padded ∂L/∂out with the kernels flipped, input and output channels swapped.
    pub fn input_grad(&self, w: &[f32], grad_out: &[f32], grad_x: &mut [f32]) {
        let (positions, patch) = (self.plane.positions(), self.plane.patch_len());
        if let Some((_, direct)) = self.direct() {
            let last = self.plane.window.kernel.pow(2) - 1;
            let weight = |g, c, o, t| w[self.weight_index(g, o, c, last - t)];
            let (grads, outs) = (self.out_len(), self.plane.channels);
            return self.add_correlations(
                direct,
                outs,
                weight,
                grad_out,
                grads,
                grad_x,
                self.in_len(),
            );
        }
        self.per_image(
            grad_x,
            self.in_len(),
            grad_out,
            self.out_len(),
            |grad_x, grad_out| {
                with_scratch(patch * positions, |cols| {
                    let groups = grad_x
                        .chunks_exact_mut(self.plane.image_len())
                        .zip(grad_out.chunks_exact(self.out_per_group * positions));
                    for (g, (grad_x, grad_out)) in groups.enumerate() {
                        let grad_out = Mat::rows(grad_out, self.out_per_group, positions);
                        let kernels = self.kernels(w, g).t();
                        matmul(cols, kernels, grad_out, false, self.threads_per_product());
                        self.plane.col2im(cols, grad_x);
                    }
                })
            },
        );
    }
}

/// The widest kernel and the most input or output channels (per group) a convolution takes
/// the direct path with: past them, the im2col path's products are deep enough for gemm to
/// do better. Measured on the course's layers (benches/course.rs): 3×3 layers of 8 to 64
/// channels are faster direct; LeNet's 16 → 32 channels, 5×5, through im2col.
pub(super) const DIRECT_MAX_KERNEL: usize = 3;
pub(super) const DIRECT_MAX_CHANNELS: usize = 64;

/// The fewest input and output channels (per group) for the direct path: with fewer, most of
/// a block of 8 accumulators would idle (a first layer's one input channel is its input
/// gradient's one output).
const DIRECT_MIN_CHANNELS: usize = 4;

/// Runs `f` on this thread's scratch buffer of `len` floats, kept between calls so that a
/// training loop does not allocate (and the kernel zero) patch matrices at every step. A
/// nested call on the same thread (rayon can run another image's work while a product
/// waits) gets a buffer of its own.
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    thread_local!(static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) });
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut buffer) => {
            if buffer.len() < len {
                buffer.resize(len, 0.0);
            }
            f(&mut buffer[..len])
        }
        Err(_) => f(&mut vec![0.0; len]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::ConvSpec;
    use crate::testing::noise;

    #[test]
    fn the_fused_sweep_is_its_two_passes_to_the_bit() {
        // Stride 2 (the im2col path), two groups, a batch the threads do not divide.
        let spec = ConvSpec::default().stride(2).padding(1).groups(2);
        let (batch, channels, outs, k) = (5, 4, 6, 3);
        let plane = Plane::new(channels / 2, 7, 6, spec.window(k).unwrap()).unwrap();
        let conv = Conv {
            batch,
            groups: 2,
            out_per_group: outs / 2,
            plane,
        };
        let x = noise(batch * conv.in_len(), 1);
        let w = noise(outs * plane.patch_len(), 2);
        let g = noise(batch * conv.out_len(), 3);
        let (mut out, mut gw) = (vec![0.0; g.len()], vec![0.0; w.len()]);
        conv.forward(&x, &w, &mut out);
        let dev = Cpu::default();
        conv.weight_grad(&dev, &x, &g, &mut gw);
        let (mut fused_out, mut fused_gw) = (vec![0.0; g.len()], vec![0.0; w.len()]);
        conv.forward_and_weight_grad(&dev, &x, &w, &mut fused_out, &g, &mut fused_gw);
        let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&fused_out), bits(&out));
        assert_eq!(bits(&fused_gw), bits(&gw));
    }
}
