//! 2-D convolution (LeCun et al., 1989) as a dfdx op and layer, on stable Rust: im2col
//! turns every patch into a column, one matrix product per image and group filters them
//! all, and the backward pass is two more products plus the adjoint of im2col.
//! Taught in notebook 04 (convolutional networks).

use super::conv::{record_with_kernels, reset_uniform, Conv};
use super::im2col::{Plane, Window};
use super::op::{layer_result, shape_error, too_small};
use super::Images;
use crate::Error;
use dfdx::prelude::*;
use dfdx::tensor::CpuError;

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

/// 2-D convolution of images `x` (batch × channels × height × width) with kernels `w`
/// (out channels × channels per group × k × k, PyTorch's layout), recorded on the tape.
/// The output is batch × out channels × ⌊(h + 2p − d(k−1) − 1)/s⌋ + 1 × (the same for w).
/// A cross-correlation, as in every deep-learning library: the kernel is not flipped.
/// Notebook `04_convnets` §1 checks it against d2l's `corr2d` loop, values and gradients.
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
    let out_shape = (w.shape().0, plane.out_h, plane.out_w);
    record_with_kernels(
        x,
        w,
        out_shape,
        |x, w, out| conv.forward(x, w, out),
        move |dev, x, w, g, gx, gw| {
            conv.weight_grad(dev, x, g, gw);
            conv.input_grad(w, g, gx);
        },
    )
}

/// The readable version of [`conv2d`]: its definition as plain loops, each output
/// `out[n, o, y, x] = Σ w[o, i, ky, kx] · x[n, g·I + i, y·s + ky·d − p, x·s + kx·d − p]`
/// over the `I` channels of output `o`'s group `g` and the taps, pixels outside the image
/// counting as zero. Notebook `04_convnets` §2 teaches the arithmetic.
pub fn conv2d_reference(
    x: &Images<usize, usize, NoneTape>,
    w: &Kernels,
    spec: ConvSpec,
) -> Images<usize, usize, NoneTape> {
    let ((b, c, h, wd), (o, per_group, k, _)) = (*x.shape(), *w.shape());
    let ConvSpec {
        stride,
        padding,
        dilation,
        groups,
    } = spec;
    let size = |n: usize| (n + 2 * padding - dilation * (k - 1) - 1) / stride + 1;
    let (oh, ow) = (size(h), size(wd));
    let (xs, ws) = (x.as_vec(), w.as_vec());
    // The pixel of image n, channel ch at padded coordinates (y, x), or 0 in the padding.
    let pixel = |n: usize, ch: usize, y: usize, x: usize| match (
        y.checked_sub(padding),
        x.checked_sub(padding),
    ) {
        (Some(y), Some(x)) if y < h && x < wd => xs[((n * c + ch) * h + y) * wd + x] as f64,
        _ => 0.0,
    };
    let out = (0..b * o * oh * ow).map(|i| {
        let (n, oc, y, xx) = (i / (o * oh * ow), i / (oh * ow) % o, i / ow % oh, i % ow);
        let first = oc / (o / groups) * per_group;
        let taps = (0..per_group * k * k).map(|t| {
            let (ic, ky, kx) = (t / (k * k), t / k % k, t % k);
            let weight = ws[oc * per_group * k * k + t] as f64;
            weight
                * pixel(
                    n,
                    first + ic,
                    y * stride + ky * dilation,
                    xx * stride + kx * dilation,
                )
        });
        taps.sum::<f64>() as f32
    });
    x.device().tensor_from_vec(out.collect(), (b, o, oh, ow))
}

/// Kernels (out channels, channels per group, k, k), or images, with every size known
/// at run time.
pub type Kernels = Tensor<(usize, usize, usize, usize), f32, Cpu>;

builder!(Conv2D<I, O, K, S = 1, P = 0, L = 1, G = 1>);

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
                TensorOptions::reset_with(reset_uniform),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::conv::DIRECT_MAX_CHANNELS;
    use crate::testing::{
        arange, assert_matches_pytorch, assert_matches_reference, noise_images, Tolerance,
    };

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
            // path at stride 1, past the direct path's kernel and channel limits.
            (2, 3, 9, 13, 11, 3, s.padding(1)),
            (2, 4, 6, 7, 6, 3, s.padding(1).groups(2)),
            (2, 4, 7, 9, 5, 3, s),
            (1, 4, 6, 6, 4, 5, s.padding(2)),
            (1, DIRECT_MAX_CHANNELS + 1, 4, 5, 4, 3, s.padding(1)),
        ]
    }

    /// On the direct path and on im2col's: the values are the reference's, and the
    /// gradients the reference's by central differences (exact, up to rounding, since a
    /// convolution is linear in its image and in its kernels).
    #[test]
    fn matches_the_reference_in_values_and_gradients() {
        let dev = Cpu::default();
        for (n, &(b, c, h, wd, o, k, spec)) in cases().iter().enumerate() {
            assert_matches_reference(
                &format!("case {n}"),
                [
                    noise_images(&dev, (b, c, h, wd), n as u64),
                    noise_images(&dev, (o, c / spec.groups, k, k), 100 + n as u64),
                ],
                |[x, w]| conv2d(x, w, spec).unwrap(),
                |[x, w]| conv2d_reference(x, w, spec),
                200 + n as u64,
                0.5,
                Tolerance {
                    values: 1e-5,
                    gradients: 1e-4,
                },
            );
        }
    }

    /// PyTorch's `F.conv2d` on two cases, its output and the gradients of the image and
    /// the kernels under the loss Σ out · arange/10. Produced by (torch 2.15.0, float64):
    ///
    /// ```python
    /// import torch
    /// import torch.nn.functional as F
    ///
    /// def arange(*shape):
    ///     n = torch.tensor(shape).prod().item()
    ///     return (torch.arange(n, dtype=torch.float64) / 10).reshape(shape).requires_grad_()
    ///
    /// def show(name, t):
    ///     print(f"{name}: {[round(v, 4) for v in t.detach().flatten().tolist()]}")
    ///
    /// def run(name, f, *inputs):
    ///     out = f(*inputs)
    ///     (out * arange(*out.shape).detach()).sum().backward()
    ///     show(name + " out", out)
    ///     for i, x in enumerate(inputs):
    ///         show(f"{name} grad{i}", x.grad)
    ///
    /// run("groups", lambda x, w: F.conv2d(x, w, padding=1, groups=2), arange(1, 2, 4, 4), arange(2, 1, 3, 3))
    /// run("strided", lambda x, w: F.conv2d(x, w, stride=2, padding=1, dilation=2), arange(1, 1, 5, 5), arange(2, 1, 2, 2))
    /// ```
    #[test]
    fn matches_pytorch() {
        #[rustfmt::skip]
        let cases = [
            ((1, 2, 4, 4), (2, 1, 3, 3), ConvSpec::default().padding(1).groups(2),
             vec![0.73, 1.21, 1.54, 1.03, 1.71, 2.58, 2.94, 1.86, 2.79, 4.02, 4.38, 2.7, 1.39, 1.87, 2.02, 1.13, 11.23, 16.75, 17.62, 11.61, 17.1, 25.35, 26.52, 17.37, 20.34, 30.03, 31.2, 20.37, 12.85, 18.85, 19.54, 12.67],
             vec![0.07, 0.23, 0.38, 0.41, 0.45, 1.02, 1.38, 1.26, 1.29, 2.46, 2.82, 2.34, 1.97, 3.41, 3.74, 2.87, 8.01, 12.89, 13.58, 9.71, 14.88, 23.79, 24.96, 17.73, 17.88, 28.47, 29.64, 20.97, 14.71, 23.27, 24.14, 16.97],
             vec![5.52, 7.7, 5.88, 9.2, 12.4, 9.2, 5.88, 7.7, 5.52, 50.16, 67.22, 50.52, 68.72, 91.76, 68.72, 50.52, 67.22, 50.16]),
            ((1, 1, 5, 5), (2, 1, 2, 2), ConvSpec::default().stride(2).padding(1).dilation(2),
             vec![0.18, 0.36, 0.16, 0.54, 0.94, 0.36, 0.16, 0.18, 0.0, 0.42, 0.92, 0.48, 1.42, 2.86, 1.4, 0.8, 1.54, 0.72],
             vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.4, 0.0, 2.68, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.24, 0.0, 3.52, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
             vec![3.2, 2.72, 1.76, 1.28, 7.52, 7.04, 6.08, 5.6]),
        ];
        let dev = Cpu::default();
        for (n, (x_shape, w_shape, spec, out, grad_x, grad_w)) in cases.into_iter().enumerate() {
            assert_matches_pytorch(
                &format!("case {n}"),
                [arange(&dev, x_shape), arange(&dev, w_shape)],
                |[x, w]| conv2d(x, w, spec).unwrap(),
                &out,
                [&grad_x, &grad_w],
                Tolerance {
                    values: 1e-5,
                    gradients: 1e-5,
                },
            );
        }
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
