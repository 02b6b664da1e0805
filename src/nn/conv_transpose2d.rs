//! Transposed convolution (Zeiler et al., 2010; "deconvolution"): the adjoint of a
//! convolution, which spreads each input pixel over a k×k patch of a larger output. It is
//! how decoders and generators grow images (notebooks 08 and 09). The same three products
//! as [`conv2d`](super::conv2d), in another order: its forward is a convolution's input
//! gradient, its input gradient a convolution's forward.

use super::conv::{record_with_kernels, reset_uniform, Conv};
use super::conv2d::{ConvSpec, Kernels};
use super::im2col::Plane;
use super::op::{layer_result, shape_error};
use super::Images;
use crate::Error;
use dfdx::prelude::*;
use dfdx::tensor::CpuError;

/// Transposed convolution of `x` (batch × channels × h × w) with kernels `w` (channels ×
/// out channels per group × k × k, PyTorch's layout), recorded on the tape. The output is
/// batch × groups·(out channels per group) × (h − 1)·s − 2p + d(k − 1) + 1 × (the same for w):
/// exactly the size a [`conv2d`](super::conv2d) with the same spec maps back to h × w.
pub fn conv_transpose2d<B: Dim, C: Dim, H: Dim, W: Dim, I: Dim, O: Dim, K: Dim, T, R>(
    x: Tensor<(B, C, H, W), f32, Cpu, T>,
    w: Tensor<(I, O, K, K), f32, Cpu, R>,
    spec: ConvSpec,
) -> Result<Images<B, usize, T>, Error>
where
    T: Tape<f32, Cpu> + Merge<R>,
    R: Tape<f32, Cpu>,
{
    let [batch, channels, height, width] = x.shape().concrete();
    let [in_channels, per_group, k, k2] = w.shape().concrete();
    let window = spec.window(k)?;
    if k != k2 {
        return Err(shape_error("the kernel", "square", format!("{k}×{k2}")));
    }
    if channels != in_channels || in_channels % spec.groups != 0 {
        return Err(shape_error(
            "the input channels",
            format!("{in_channels}, divisible by the {} groups", spec.groups),
            channels.to_string(),
        ));
    }
    let grown = |n: usize| {
        ((n as isize - 1) * spec.stride as isize - 2 * spec.padding as isize
            + (spec.dilation * (k - 1)) as isize
            + 1)
        .max(0) as usize
    };
    let (out_h, out_w) = (grown(height), grown(width));
    // The convolution this one transposes: from the output back to the input.
    let plane = Plane::new(per_group, out_h, out_w, window)
        .filter(|p| out_h > 0 && out_w > 0 && (p.out_h, p.out_w) == (height, width))
        .ok_or_else(|| {
            shape_error(
                "the image",
                format!(
                    "large enough that (h − 1)·{} + {} > 2·{}",
                    spec.stride,
                    spec.dilation * (k - 1) + 1,
                    spec.padding
                ),
                format!("{height}×{width}"),
            )
        })?;
    let conv = Conv {
        batch,
        groups: spec.groups,
        out_per_group: in_channels / spec.groups,
        plane,
    };
    record_with_kernels(
        x,
        w,
        (spec.groups * per_group, out_h, out_w),
        |x, w, out| conv.input_grad(w, x, out),
        move |dev, x, w, g, gx, gw| conv.forward_and_weight_grad(dev, g, w, gx, x, gw),
    )
}

/// The readable version of [`conv_transpose2d`]: its definition as plain loops, every
/// input pixel adding its value times its kernel to the output patch it spreads over,
/// `out[n, g·O + o, y·s + ky·d − p, x·s + kx·d − p] += x[n, c, y, x] · w[c, o, ky, kx]` for
/// channel `c` of group `g`. Notebook `04_convnets` §6 (the U-Net's decoder).
pub fn conv_transpose2d_reference(
    x: &Images<usize, usize, NoneTape>,
    w: &Kernels,
    spec: ConvSpec,
) -> Images<usize, usize, NoneTape> {
    let ((b, c, h, wd), (_, o_per, k, _)) = (*x.shape(), *w.shape());
    let ConvSpec {
        stride,
        padding,
        dilation,
        groups,
    } = spec;
    let size = |n: usize| (n - 1) * stride + dilation * (k - 1) + 1 - 2 * padding;
    let (oh, ow, o) = (size(h), size(wd), groups * o_per);
    let (xs, ws) = (x.as_vec(), w.as_vec());
    let mut out = vec![0.0f64; b * o * oh * ow];
    for (i, &pixel) in xs.iter().enumerate() {
        let (n, ic, y, xx) = (i / (c * h * wd), i / (h * wd) % c, i / wd % h, i % wd);
        let kernels = &ws[ic * o_per * k * k..][..o_per * k * k];
        for (t, &weight) in kernels.iter().enumerate() {
            let (oc, ky, kx) = (ic / (c / groups) * o_per + t / (k * k), t / k % k, t % k);
            let oy = (y * stride + ky * dilation)
                .checked_sub(padding)
                .filter(|&v| v < oh);
            let ox = (xx * stride + kx * dilation)
                .checked_sub(padding)
                .filter(|&v| v < ow);
            if let (Some(oy), Some(ox)) = (oy, ox) {
                out[((n * o + oc) * oh + oy) * ow + ox] += pixel as f64 * weight as f64;
            }
        }
    }
    let out = out.into_iter().map(|v| v as f32).collect();
    x.device().tensor_from_vec(out, (b, o, oh, ow))
}

builder!(ConvTranspose2D<I, O, K, S = 1, P = 0, L = 1>);

/// A transposed convolution layer without bias (pair it with dfdx's `Bias2D<O>`): `I`
/// channels in, `O` out, `K×K` kernels, stride `S`, padding `P`, dilation `L`; the weight
/// is `I × O × K × K` as in PyTorch's `ConvTranspose2d(I, O, K, S, P, dilation=L)`.
/// `ConvTranspose2D<_, _, 4, 2, 1>` exactly doubles height and width, the usual step of a
/// DCGAN generator (Radford et al., 2016) or a U-Net decoder.
///
/// Input `(batch, channels, h, w)`; output `(batch, Const<O>, (h−1)·S − 2P + L(K−1) + 1, …)`.
/// Initialised uniform in ±1/√(O·K·K), PyTorch's default for this layer.
#[derive(Debug, Clone)]
pub struct ConvTranspose2D<
    const I: usize,
    const O: usize,
    const K: usize,
    const S: usize,
    const P: usize,
    const L: usize,
    E: Dtype,
    D: Storage<E>,
> {
    pub weight: Tensor<Rank4<I, O, K, K>, E, D>,
}

impl<
        const I: usize,
        const O: usize,
        const K: usize,
        const S: usize,
        const P: usize,
        const L: usize,
        E: Dtype,
        D: Storage<E>,
    > NonMutableModule for ConvTranspose2D<I, O, K, S, P, L, E, D>
{
}

impl<
        const I: usize,
        const O: usize,
        const K: usize,
        const S: usize,
        const P: usize,
        const L: usize,
        E: Dtype + num_traits::Float + rand_distr::uniform::SampleUniform,
        D: Device<E>,
    > TensorCollection<E, D> for ConvTranspose2D<I, O, K, S, P, L, E, D>
{
    type To<E2: Dtype, D2: Device<E2>> = ConvTranspose2D<I, O, K, S, P, L, E2, D2>;

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
            |weight| ConvTranspose2D { weight },
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
        B: Dim,
        C: Dim,
        H: Dim,
        W: Dim,
        T: Tape<f32, Cpu>,
    > Module<Tensor<(B, C, H, W), f32, Cpu, T>> for ConvTranspose2D<I, O, K, S, P, L, f32, Cpu>
{
    type Output = Tensor<(B, Const<O>, usize, usize), f32, Cpu, T>;
    type Error = CpuError;

    fn try_forward(&self, x: Tensor<(B, C, H, W), f32, Cpu, T>) -> Result<Self::Output, CpuError> {
        let spec = ConvSpec::default().stride(S).padding(P).dilation(L);
        let y = layer_result(
            "ConvTranspose2D",
            conv_transpose2d(x, self.weight.retaped::<T>(), spec),
        )?;
        let (batch, _, h, w) = *y.shape();
        y.try_reshape_like(&(batch, Const, h, w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::conv2d;
    use crate::testing::{
        arange, assert_matches_pytorch, assert_matches_reference, noise_images, weighted_sum,
        Tolerance,
    };

    /// (batch, in channels, h, w, out channels per group, kernel, spec)
    type Case = (usize, usize, usize, usize, usize, usize, ConvSpec);

    fn cases() -> Vec<Case> {
        let s = ConvSpec::default();
        vec![
            (2, 3, 4, 5, 2, 3, s),
            (1, 2, 5, 5, 3, 4, s.stride(2).padding(1)),
            (
                3,
                4,
                3,
                4,
                2,
                3,
                s.stride(2).padding(2).dilation(2).groups(2),
            ),
            (2, 2, 6, 3, 1, 2, s.stride(3)),
            (1, 6, 4, 4, 2, 3, s.stride(2).groups(3)),
        ]
    }

    /// The values are the reference's, and the gradients the reference's by central
    /// differences (exact, up to rounding: the op is linear in its image and its kernels).
    #[test]
    fn matches_the_reference_in_values_and_gradients() {
        let dev = Cpu::default();
        for (n, &(b, c, h, wd, o_per, k, spec)) in cases().iter().enumerate() {
            assert_matches_reference(
                &format!("case {n}"),
                [
                    noise_images(&dev, (b, c, h, wd), n as u64),
                    noise_images(&dev, (c, o_per, k, k), 50 + n as u64),
                ],
                |[x, w]| conv_transpose2d(x, w, spec).unwrap(),
                |[x, w]| conv_transpose2d_reference(x, w, spec),
                90 + n as u64,
                0.5,
                Tolerance {
                    values: 1e-5,
                    gradients: 1e-4,
                },
            );
        }
    }

    /// PyTorch's `F.conv_transpose2d` on two cases, its output and the gradients of the
    /// image and the kernels under the loss Σ out · arange/10. Produced by the script of
    /// `conv2d`'s `matches_pytorch` (torch 2.15.0) with:
    ///
    /// ```python
    /// run("strided", lambda x, w: F.conv_transpose2d(x, w, stride=2, padding=1), arange(1, 2, 3, 3), arange(2, 1, 3, 3))
    /// run("groups", lambda x, w: F.conv_transpose2d(x, w, dilation=2, groups=2), arange(1, 2, 2, 2), arange(2, 1, 2, 2))
    /// ```
    #[test]
    fn matches_pytorch() {
        #[rustfmt::skip]
        let cases = [
            ((1, 2, 3, 3), (2, 1, 3, 3), ConvSpec::default().stride(2).padding(1),
             vec![1.17, 2.49, 1.34, 2.83, 1.51, 2.67, 5.64, 3.01, 6.32, 3.35, 1.68, 3.51, 1.85, 3.85, 2.02, 3.69, 7.68, 4.03, 8.36, 4.37, 2.19, 4.53, 2.36, 4.87, 2.53],
             vec![0.88, 1.75, 1.36, 3.45, 5.28, 3.45, 2.32, 3.19, 1.84, 1.96, 4.18, 3.52, 9.12, 15.0, 10.74, 8.8, 13.72, 9.4],
             vec![3.2, 4.49, 2.72, 4.47, 6.24, 3.75, 1.76, 2.33, 1.28, 7.52, 10.97, 7.04, 10.95, 15.96, 10.23, 6.08, 8.81, 5.6]),
            ((1, 2, 2, 2), (2, 1, 2, 2), ConvSpec::default().dilation(2).groups(2),
             vec![0.0, 0.0, 0.0, 0.01, 0.0, 0.0, 0.02, 0.03, 0.0, 0.02, 0.0, 0.03, 0.04, 0.06, 0.06, 0.09, 0.16, 0.2, 0.2, 0.25, 0.24, 0.28, 0.3, 0.35, 0.24, 0.3, 0.28, 0.35, 0.36, 0.42, 0.42, 0.49],
             vec![0.48, 0.54, 0.72, 0.78, 4.8, 5.02, 5.68, 5.9],
             vec![0.24, 0.36, 0.72, 0.84, 4.16, 4.6, 5.92, 6.36]),
        ];
        let dev = Cpu::default();
        for (n, (x_shape, w_shape, spec, out, grad_x, grad_w)) in cases.into_iter().enumerate() {
            assert_matches_pytorch(
                &format!("case {n}"),
                [arange(&dev, x_shape), arange(&dev, w_shape)],
                |[x, w]| conv_transpose2d(x, w, spec).unwrap(),
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
    fn it_is_the_adjoint_of_the_convolution() {
        // <conv(x, w), y> = <x, conv_transpose(y, w)>: the same kernels map back.
        let dev = Cpu::default();
        let spec = ConvSpec::default().stride(2).padding(1);
        let x = noise_images(&dev, (2, 3, 7, 7), 1);
        let w = noise_images(&dev, (4, 3, 3, 3), 2);
        let y = conv2d(x.clone(), w.clone(), spec).unwrap();
        let r = noise_images(&dev, *y.shape(), 3);
        let back = conv_transpose2d(r.clone(), w, spec).unwrap();
        assert_eq!(*back.shape(), (2, 3, 7, 7), "7 → 4 → 7");
        let lhs = weighted_sum(&y.as_vec(), &r.as_vec());
        let rhs = weighted_sum(&x.as_vec(), &back.as_vec());
        assert!((lhs - rhs).abs() < 1e-3, "{lhs} vs {rhs}");
    }

    #[test]
    fn the_layer_doubles_the_size() {
        let dev = Cpu::seed_from_u64(0);
        let up = dev.build_module::<builder::ConvTranspose2D<3, 2, 4, 2, 1>, f32>();
        let x: Tensor<(usize, Const<3>, usize, usize), f32, _> = dev.zeros_like(&(5, Const, 7, 9));
        let y = up.forward(x);
        assert_eq!(*y.shape(), (5, Const::<2>, 14, 18));
        let e = conv_transpose2d(
            dev.zeros_like(&(1, 2, 3, 3)),
            dev.zeros_like(&(3, 1, 3, 3)),
            ConvSpec::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("input channels"), "{e}");
    }
}
