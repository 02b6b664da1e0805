//! 2-D convolution (LeCun et al., 1989) as a dfdx op and layer, on stable Rust: im2col
//! turns every patch into a column, one matrix product per image and group filters them
//! all, and the backward pass is two more products plus the adjoint of im2col.
//! Taught in notebook 04 (convolutional networks).

use super::chunks_per_task;
use super::direct::Correlation;
use super::im2col::{Plane, Window};
use super::matmul::{matmul, Mat};
use super::tape::{output_buffer, param, record};
use super::Images;
use crate::Error;
use dfdx::prelude::*;
use dfdx::tensor::CpuError;
use rand_distr::Uniform;
use rayon::prelude::*;
use std::cell::RefCell;
use std::ops::Range;

/// Stride, padding, dilation and groups of a convolution, named as in PyTorch's
/// `nn.Conv2d`. The kernel size comes from the weight's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvSpec {
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
    pub groups: usize,
}

impl Default for ConvSpec {
    fn default() -> ConvSpec {
        ConvSpec {
            stride: 1,
            padding: 0,
            dilation: 1,
            groups: 1,
        }
    }
}

impl ConvSpec {
    pub fn stride(self, stride: usize) -> ConvSpec {
        ConvSpec { stride, ..self }
    }
    pub fn padding(self, padding: usize) -> ConvSpec {
        ConvSpec { padding, ..self }
    }
    pub fn dilation(self, dilation: usize) -> ConvSpec {
        ConvSpec { dilation, ..self }
    }
    pub fn groups(self, groups: usize) -> ConvSpec {
        ConvSpec { groups, ..self }
    }

    pub(crate) fn window(&self, kernel: usize) -> Result<Window, Error> {
        for (what, value) in [
            ("the kernel size", kernel),
            ("the stride", self.stride),
            ("the dilation", self.dilation),
            ("the number of groups", self.groups),
        ] {
            if value == 0 {
                return Err(Error::InvalidArgument {
                    what,
                    expected: "at least 1",
                    got: "0".into(),
                });
            }
        }
        Ok(Window {
            kernel,
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
        })
    }
}

/// The sizes of one convolution: `batch` images, each `groups` groups of
/// `plane.channels` channels, each group filtered by `out_per_group` kernels. Its three
/// methods are the forward pass and the two gradients; the transposed convolution is the
/// same three, used in another order.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Conv {
    pub batch: usize,
    pub groups: usize,
    pub out_per_group: usize,
    pub plane: Plane,
}

impl Conv {
    fn in_len(&self) -> usize {
        self.groups * self.plane.image_len()
    }

    fn out_len(&self) -> usize {
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
    /// it applies: stride 1, no dilation, and a patch small enough that the im2col path's
    /// matrix products would be too thin to pay for copying every pixel k² times.
    fn direct(&self) -> Option<(Correlation, Correlation)> {
        let (p, w) = (self.plane, self.plane.window);
        let narrow = p.patch_len() <= DIRECT_MAX_PATCH
            && p.channels.min(self.out_per_group) >= DIRECT_MIN_CHANNELS;
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
    /// into a buffer of its own, of `len` values; the buffers are added at the end. `dst`
    /// (empty, or a value buffer per image) is split the same way: `f` gets the images'
    /// part of it, to write what it computes per image on the way.
    fn sum_over_images(
        &self,
        len: usize,
        dst: &mut [f32],
        f: impl Fn(Range<usize>, &mut [f32], &mut [f32]) + Sync,
    ) -> Vec<f32> {
        let threads = rayon::current_num_threads().min(self.batch).max(1);
        let per_thread = self.batch.div_ceil(threads);
        let per_image = dst.len() / self.batch;
        let mut shares = Vec::with_capacity(threads);
        let mut rest = dst;
        for t in 0..threads {
            let images = (t * per_thread).min(self.batch)..((t + 1) * per_thread).min(self.batch);
            let (part, tail) = std::mem::take(&mut rest).split_at_mut(images.len() * per_image);
            shares.push((images, part));
            rest = tail;
        }
        let partials: Vec<Vec<f32>> = shares
            .into_par_iter()
            .map(|(images, dst)| {
                let mut sum = vec![0.0; len];
                f(images, dst, &mut sum);
                sum
            })
            .collect();
        let mut total = vec![0.0; len];
        for partial in partials {
            total.iter_mut().zip(partial).for_each(|(t, p)| *t += p);
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
    pub fn weight_grad(&self, x: &[f32], grad_out: &[f32], grad_w: &mut [f32]) {
        let positions = self.plane.positions();
        let image = |b: usize| &x[b * self.in_len()..][..self.in_len()];
        let grad = |b: usize| &grad_out[b * self.out_len()..][..self.out_len()];
        if let Some((direct, _)) = self.direct() {
            let outs = self.out_per_group;
            let packed = direct.grad_len(outs);
            let sums = self.sum_over_images(self.groups * packed, &mut [], |images, _, sums| {
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
        self.im2col_weight_grad(x, grad_out, grad_w, None);
    }

    /// [`Conv::forward`] of `x` into `out` and [`Conv::weight_grad`] of `x` with `grad_out`
    /// into `grad_w` in one sweep over the images, each image's patches built once for both
    /// products instead of twice: a transposed convolution's backward pass, where `x` is its
    /// output gradient. The same products, summed in the same order.
    pub fn forward_and_weight_grad(
        &self,
        x: &[f32],
        w: &[f32],
        out: &mut [f32],
        grad_out: &[f32],
        grad_w: &mut [f32],
    ) {
        if self.direct().is_some() {
            self.forward(x, w, out);
            return self.weight_grad(x, grad_out, grad_w);
        }
        self.im2col_weight_grad(x, grad_out, grad_w, Some((w, out)));
    }

    /// The im2col path's weight gradient: adds Σ over images of ∂L/∂out · patchesᵀ to
    /// `grad_w`. With `forward = Some((w, out))`, each image's patches also give its
    /// [`Conv::forward`] product into `out`, so they are built once for both.
    fn im2col_weight_grad(
        &self,
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
        let sum = self.sum_over_images(grad_w.len(), out, |images, out, sum| {
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
        grad_w.iter_mut().zip(sum).for_each(|(g, s)| *g += s);
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

/// The largest patch (channels per group × k²) a convolution takes the direct path for:
/// past it, the im2col path's products are deep enough for gemm to do better. Measured on
/// the course's layers (benches/course.rs): 8 or 16 channels, 3×3, are faster direct; LeNet's
/// 16 channels, 5×5, and 64 channels, 3×3, through im2col.
const DIRECT_MAX_PATCH: usize = 32 * 9;

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

/// A contiguous tensor's values, in order, in a buffer from dfdx's tensor cache that goes
/// back to it when dropped. With fresh memory for each, the allocator gave big buffers back
/// to the system and faulted them in again at every training step (the ResNet's step had
/// 2,000 page faults more). As with `vec!`, running out of memory stops the program.
pub(crate) fn values<S: Shape, T>(t: &Tensor<S, f32, Cpu, T>) -> <Cpu as Storage<f32>>::Vec {
    let len = t.shape().num_elements();
    let mut out = t
        .device()
        .try_alloc_len(len)
        .unwrap_or_else(|_| panic!("out of memory for a buffer of {len} values"));
    t.copy_into(&mut out);
    out
}

/// 2-D convolution of images `x` (batch × channels × height × width) with kernels `w`
/// (out channels × channels per group × k × k, PyTorch's layout), recorded on the tape.
/// The output is batch × out channels × ⌊(h + 2p − d(k−1) − 1)/s⌋ + 1 × (the same for w).
pub fn conv2d<B: Dim, C: Dim, H: Dim, W: Dim, O: Dim, I: Dim, K: Dim, T, R>(
    x: Tensor<(B, C, H, W), f32, Cpu, T>,
    w: Tensor<(O, I, K, K), f32, Cpu, R>,
    spec: ConvSpec,
) -> Result<Images<B, O, T>, Error>
where
    T: Tape<f32, Cpu> + Merge<R>,
    R: Tape<f32, Cpu>,
{
    let [batch, channels, height, width] = x.shape().concrete();
    let [out_channels, per_group, k, k2] = w.shape().concrete();
    let window = spec.window(k)?;
    if k != k2 {
        return Err(shape_error("the kernel", "square", format!("{k}×{k2}")));
    }
    if channels != per_group * spec.groups || out_channels % spec.groups != 0 {
        return Err(shape_error(
            "the input channels",
            format!(
                "{per_group} per group × {} groups, with the {out_channels} output channels divisible by the groups",
                spec.groups
            ),
            channels.to_string(),
        ));
    }
    let plane = Plane::new(per_group, height, width, window)
        .ok_or_else(|| too_small(height, width, &window))?;
    let conv = Conv {
        batch,
        groups: spec.groups,
        out_per_group: out_channels / spec.groups,
        plane,
    };
    let (x, tape) = x.try_contiguous()?.split_tape();
    let (w, w_tape) = w.try_contiguous()?.split_tape();
    let (x_values, w_values) = (values(&x), values(&w));
    let mut out = output_buffer(x.device(), batch * conv.out_len())?;
    conv.forward(&x_values, &w_values, &mut out);
    let shape = (x.shape().0, w.shape().0, plane.out_h, plane.out_w);
    let out = record(
        &x,
        [param(&w)],
        tape.merge(w_tape),
        out,
        shape,
        move |g, gx, [gw]| {
            conv.weight_grad(&x_values, g, gw);
            conv.input_grad(&w_values, g, gx);
        },
    )?;
    Ok(out)
}

pub(crate) fn shape_error(what: &'static str, expected: impl ToString, got: String) -> Error {
    Error::ShapeMismatch {
        what,
        expected: expected.to_string(),
        got,
    }
}

pub(crate) fn too_small(height: usize, width: usize, w: &Window) -> Error {
    let span = w.dilation * (w.kernel - 1) + 1;
    shape_error(
        "the image",
        format!("at least {span}×{span} with padding {}", w.padding),
        format!("{height}×{width}"),
    )
}

pub mod builder {
    /// Builds a [`super::Conv2D`]; see there for the parameters.
    #[derive(Debug, Clone, Copy)]
    pub struct Conv2D<
        const I: usize,
        const O: usize,
        const K: usize,
        const S: usize = 1,
        const P: usize = 0,
        const L: usize = 1,
        const G: usize = 1,
    >;
}

impl<
        const I: usize,
        const O: usize,
        const K: usize,
        const S: usize,
        const P: usize,
        const L: usize,
        const G: usize,
        E: Dtype,
        D: Device<E>,
    > BuildOnDevice<D, E> for builder::Conv2D<I, O, K, S, P, L, G>
where
    Conv2D<I, O, K, S, P, L, G, E, D>: BuildModule<D, E>,
{
    type Built = Conv2D<I, O, K, S, P, L, G, E, D>;
    fn try_build_on_device(device: &D) -> Result<Self::Built, D::Err> {
        Self::Built::try_build(device)
    }
}

/// A 2-D convolution layer without bias (pair it with dfdx's `Bias2D<O>`, as dfdx's own
/// Conv2D does): `O` kernels of `K×K`, moved `S` pixels at a time (stride), over images
/// padded with `P` zeros, taps `L` apart (dilation), channels split into `G` groups.
///
/// The parameters name the weight's shape, `O × I × K × K` as PyTorch stores it: `I` is
/// the channels *each kernel sees*, so the layer takes `G·I` channels (stable Rust cannot
/// divide in a type). With one group, `Conv2D<3, 16, 3>` is PyTorch's `Conv2d(3, 16, 3)`;
/// a depthwise 3×3 over 32 channels is `Conv2D<1, 32, 3, 1, 1, 1, 32>`.
///
/// Input `(batch, channels, height, width)` with any channel dimension type (checked at
/// run time); output `(batch, Const<O>, out_h, out_w)`. Initialised like dfdx's `Linear`:
/// uniform in ±1/√(I·K·K) (He et al. 2015's Kaiming-uniform with PyTorch's gain).
/// Taught in notebook 04.
#[derive(Debug, Clone)]
pub struct Conv2D<
    const I: usize,
    const O: usize,
    const K: usize,
    const S: usize,
    const P: usize,
    const L: usize,
    const G: usize,
    E: Dtype,
    D: Storage<E>,
> {
    pub weight: Tensor<Rank4<O, I, K, K>, E, D>,
}

impl<
        const I: usize,
        const O: usize,
        const K: usize,
        const S: usize,
        const P: usize,
        const L: usize,
        const G: usize,
        E: Dtype,
        D: Storage<E>,
    > NonMutableModule for Conv2D<I, O, K, S, P, L, G, E, D>
{
}

impl<
        const I: usize,
        const O: usize,
        const K: usize,
        const S: usize,
        const P: usize,
        const L: usize,
        const G: usize,
        E: Dtype + num_traits::Float + rand_distr::uniform::SampleUniform,
        D: Device<E>,
    > TensorCollection<E, D> for Conv2D<I, O, K, S, P, L, G, E, D>
{
    type To<E2: Dtype, D2: Device<E2>> = Conv2D<I, O, K, S, P, L, G, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            Self::tensor(
                "weight",
                |s| &s.weight,
                |s| &mut s.weight,
                TensorOptions::reset_with(|t| {
                    let bound = E::ONE / E::from_usize(I * K * K).unwrap().sqrt();
                    t.try_fill_with_distr(Uniform::new(-bound, bound))
                }),
            ),
            |weight| Conv2D { weight },
        )
    }
}

impl<
        const I: usize,
        const O: usize,
        const K: usize,
        const S: usize,
        const P: usize,
        const L: usize,
        const G: usize,
        B: Dim,
        C: Dim,
        H: Dim,
        W: Dim,
        T: Tape<f32, Cpu>,
    > Module<Tensor<(B, C, H, W), f32, Cpu, T>> for Conv2D<I, O, K, S, P, L, G, f32, Cpu>
{
    type Output = Tensor<(B, Const<O>, usize, usize), f32, Cpu, T>;
    type Error = CpuError;

    fn try_forward(&self, x: Tensor<(B, C, H, W), f32, Cpu, T>) -> Result<Self::Output, CpuError> {
        let spec = ConvSpec {
            stride: S,
            padding: P,
            dilation: L,
            groups: G,
        };
        layer_result("Conv2D", conv2d(x, self.weight.retaped::<T>(), spec))
    }
}

/// A layer's result as dfdx's `Module` must return it: device errors pass through, and
/// a shape that does not fit the layer stops with the reason, as dfdx's own layers do.
pub(crate) fn layer_result<X>(layer: &str, result: Result<X, Error>) -> Result<X, CpuError> {
    match result {
        Ok(x) => Ok(x),
        Err(Error::Device(e)) => Err(e),
        Err(e) => panic!("{layer}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::check::{assert_close, finite_differences, noise, weighted_sum};

    /// (batch, channels, height, width, out channels, kernel, spec)
    type Case = (usize, usize, usize, usize, usize, usize, ConvSpec);

    fn cases() -> Vec<Case> {
        let s = ConvSpec::default();
        vec![
            (2, 3, 7, 6, 4, 3, s),
            (1, 2, 8, 8, 3, 3, s.stride(2).padding(1)),
            (3, 2, 9, 7, 4, 3, s.stride(2).padding(2)),
            (3, 4, 7, 7, 6, 3, s.padding(2).dilation(2).groups(2)),
            (2, 4, 6, 5, 4, 1, s.groups(4)),
            (1, 1, 5, 5, 2, 5, s.padding(2)),
            (4, 6, 11, 9, 6, 3, s.stride(3).padding(1).groups(3)),
            (2, 2, 5, 8, 2, 2, s.stride(2).dilation(3).padding(1)),
            // The direct path with two blocks of outputs, odd widths and groups; the im2col
            // path at stride 1, past the direct path's channel limit.
            (2, 3, 9, 13, 11, 3, s.padding(1)),
            (2, 4, 6, 7, 6, 3, s.padding(1).groups(2)),
            (2, 4, 7, 9, 5, 3, s),
            (1, 4, 6, 6, 4, 5, s.padding(2)),
            (1, DIRECT_MAX_PATCH / 9 + 1, 4, 5, 2, 3, s.padding(1)),
        ]
    }

    /// The definition, summed term by term in f64: out[n, o, y, x] = Σ w[o, i, ky, kx] ·
    /// image[n, group(o)·I + i, y·s + ky·d − p, x·s + kx·d − p].
    fn naive(case: &Case, x: &[f32], w: &[f32]) -> Vec<f64> {
        let &(b, c, h, wd, o, k, spec) = case;
        let i_per = c / spec.groups;
        let o_per = o / spec.groups;
        let out_len =
            |n: usize| (n + 2 * spec.padding - spec.dilation * (k - 1) - 1) / spec.stride + 1;
        let (oh, ow) = (out_len(h), out_len(wd));
        let mut out = vec![0.0; b * o * oh * ow];
        for n in 0..b {
            for oc in 0..o {
                for y in 0..oh {
                    for xx in 0..ow {
                        let mut sum = 0.0f64;
                        for i in 0..i_per {
                            let ic = oc / o_per * i_per + i;
                            for ky in 0..k {
                                for kx in 0..k {
                                    let iy = (y * spec.stride + ky * spec.dilation) as isize
                                        - spec.padding as isize;
                                    let ix = (xx * spec.stride + kx * spec.dilation) as isize
                                        - spec.padding as isize;
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                        continue;
                                    }
                                    let pixel =
                                        x[((n * c + ic) * h + iy as usize) * wd + ix as usize];
                                    sum += pixel as f64
                                        * w[((oc * i_per + i) * k + ky) * k + kx] as f64;
                                }
                            }
                        }
                        out[((n * o + oc) * oh + y) * ow + xx] = sum;
                    }
                }
            }
        }
        out
    }

    fn forward(case: &Case, x: &[f32], w: &[f32]) -> Vec<f32> {
        let &(b, c, h, wd, o, k, spec) = case;
        let dev = Cpu::default();
        let x = dev.tensor_from_vec(x.to_vec(), (b, c, h, wd));
        let w = dev.tensor_from_vec(w.to_vec(), (o, c / spec.groups, k, k));
        conv2d(x, w, spec).unwrap().as_vec()
    }

    #[test]
    fn forward_matches_the_definition() {
        for (n, case) in cases().iter().enumerate() {
            let &(b, c, h, wd, o, k, spec) = case;
            let x = noise(b * c * h * wd, n as u64);
            let w = noise(o * c / spec.groups * k * k, 100 + n as u64);
            assert_close(
                &format!("case {n}"),
                &forward(case, &x, &w),
                &naive(case, &x, &w),
                1e-5,
            );
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        let dev = Cpu::default();
        for (n, case) in cases().iter().enumerate() {
            let &(b, c, h, wd, o, k, spec) = case;
            let x = noise(b * c * h * wd, n as u64);
            let w = noise(o * c / spec.groups * k * k, 100 + n as u64);
            let r = noise(forward(case, &x, &w).len(), 200 + n as u64);
            let xt = dev.tensor_from_vec(x.clone(), (b, c, h, wd));
            let wt = dev.tensor_from_vec(w.clone(), (o, c / spec.groups, k, k));
            let out = conv2d(xt.clone().leaky_trace(), wt.clone().leaky_trace(), spec).unwrap();
            let rt = dev.tensor_from_vec(r.clone(), *out.shape());
            let grads = (out * rt).sum().backward();
            let loss_x = |x: &[f32]| weighted_sum(&forward(case, x, &w), &r);
            let loss_w = |w: &[f32]| weighted_sum(&forward(case, &x, w), &r);
            let what = format!("case {n}");
            assert_close(
                &what,
                &grads.get(&xt).as_vec(),
                &finite_differences(&x, 0.5, loss_x),
                1e-4,
            );
            assert_close(
                &what,
                &grads.get(&wt).as_vec(),
                &finite_differences(&w, 0.5, loss_w),
                1e-4,
            );
        }
    }

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
        conv.weight_grad(&x, &g, &mut gw);
        let (mut fused_out, mut fused_gw) = (vec![0.0; g.len()], vec![0.0; w.len()]);
        conv.forward_and_weight_grad(&x, &w, &mut fused_out, &g, &mut fused_gw);
        let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&fused_out), bits(&out));
        assert_eq!(bits(&fused_gw), bits(&gw));
    }

    #[test]
    fn bad_shapes_are_refused_with_the_reason() {
        let dev = Cpu::default();
        let x: Tensor<Rank4<1, 3, 4, 4>, f32, _> = dev.zeros();
        let w: Tensor<Rank4<2, 2, 3, 3>, f32, _> = dev.zeros();
        let e = conv2d(x.clone(), w, ConvSpec::default()).unwrap_err();
        assert!(e.to_string().contains("input channels"), "{e}");
        let w: Tensor<Rank4<2, 3, 5, 5>, f32, _> = dev.zeros();
        let e = conv2d(x.clone(), w.clone(), ConvSpec::default()).unwrap_err();
        assert!(e.to_string().contains("at least 5×5"), "{e}");
        let e = conv2d(x, w, ConvSpec::default().stride(0)).unwrap_err();
        assert!(e.to_string().contains("stride"), "{e}");
    }

    #[test]
    fn the_layer_trains_with_dfdx_optimizers_and_saves() {
        use dfdx::optim::{Adam, AdamConfig};
        type Net = (
            builder::Conv2D<1, 4, 3, 1, 1>,
            Bias2D<4>,
            ReLU,
            AvgPoolGlobal,
            Linear<4, 2>,
        );
        let dev = Cpu::seed_from_u64(0);
        let mut net = dev.build_module::<Net, f32>();
        assert_eq!(net.num_trainable_params(), 4 * 9 + 4 + 4 * 2 + 2);
        let mut opt = Adam::new(
            &net,
            AdamConfig {
                lr: 3e-2,
                ..Default::default()
            },
        );
        // Bright images are class 1, dark ones class 0.
        let x: Tensor<Rank4<8, 1, 5, 5>, f32, _> = dev.tensor_from_vec(
            (0..200).map(|i| if i < 100 { 0.1 } else { 0.9 }).collect(),
            Default::default(),
        );
        let y: Tensor<Rank2<8, 2>, f32, _> = dev.tensor_from_vec(
            (0..8)
                .flat_map(|i| if i < 4 { [1.0, 0.0] } else { [0.0, 1.0] })
                .collect(),
            Default::default(),
        );
        let mut grads = net.alloc_grads();
        let mut losses = vec![];
        for _ in 0..60 {
            let logits = net.forward_mut(x.trace(grads));
            let loss = cross_entropy_with_logits_loss(logits, y.clone());
            losses.push(loss.array());
            grads = loss.backward();
            opt.update(&mut net, &grads).unwrap();
            net.zero_grads(&mut grads);
        }
        assert!(losses[59] < 0.1 * losses[0], "{losses:?}");

        let path = std::env::temp_dir().join(format!("conv2d-{}.safetensors", std::process::id()));
        net.save_safetensors(&path).unwrap();
        let mut loaded = dev.build_module::<Net, f32>();
        loaded.load_safetensors(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(loaded.0.weight.as_vec(), net.0.weight.as_vec());
    }
}
