//! Transposed convolution (Zeiler et al., 2010; "deconvolution"): the adjoint of a
//! convolution, which spreads each input pixel over a k×k patch of a larger output. It is
//! how decoders and generators grow images (notebooks 08 and 09). The same three products
//! as [`conv2d`](super::conv2d), in another order: its forward is a convolution's input
//! gradient, its input gradient a convolution's forward.

use super::conv::Conv;
use super::conv2d::ConvSpec;
use super::im2col::Plane;
use super::op::{layer_result, output_buffer, param, record, shape_error, values};
use super::Images;
use crate::Error;
use dfdx::prelude::*;
use dfdx::tensor::CpuError;
use rand_distr::Uniform;

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
    let (x, tape) = x.try_contiguous()?.split_tape();
    let (w, w_tape) = w.try_contiguous()?.split_tape();
    let (x_values, w_values) = (values(&x), values(&w));
    let mut out = output_buffer(x.device(), batch * spec.groups * plane.image_len())?;
    conv.input_grad(&w_values, &x_values, &mut out);
    let shape = (x.shape().0, spec.groups * per_group, out_h, out_w);
    let out = record(
        &x,
        [param(&w)],
        tape.merge(w_tape),
        out,
        shape,
        move |g, gx, [gw]| conv.forward_and_weight_grad(g, &w_values, gx, &x_values, gw),
    )?;
    Ok(out)
}

pub mod builder {
    /// Builds a [`super::ConvTranspose2D`]; see there for the parameters.
    #[derive(Debug, Clone, Copy)]
    pub struct ConvTranspose2D<
        const I: usize,
        const O: usize,
        const K: usize,
        const S: usize = 1,
        const P: usize = 0,
        const L: usize = 1,
    >;
}

impl<
        const I: usize,
        const O: usize,
        const K: usize,
        const S: usize,
        const P: usize,
        const L: usize,
        E: Dtype,
        D: Device<E>,
    > BuildOnDevice<D, E> for builder::ConvTranspose2D<I, O, K, S, P, L>
where
    ConvTranspose2D<I, O, K, S, P, L, E, D>: BuildModule<D, E>,
{
    type Built = ConvTranspose2D<I, O, K, S, P, L, E, D>;
    fn try_build_on_device(device: &D) -> Result<Self::Built, D::Err> {
        Self::Built::try_build(device)
    }
}

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
                TensorOptions::reset_with(|t| {
                    let bound = E::ONE / E::from_usize(O * K * K).unwrap().sqrt();
                    t.try_fill_with_distr(Uniform::new(-bound, bound))
                }),
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
    use crate::testing::{assert_close, finite_differences, noise, weighted_sum};

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

    /// The definition: every input pixel adds its value times the kernel to the output
    /// patch it spreads over.
    fn naive(case: &Case, x: &[f32], w: &[f32]) -> Vec<f64> {
        let &(b, c, h, wd, o_per, k, spec) = case;
        let (g, i_per) = (spec.groups, c / spec.groups);
        let grown =
            |n: usize| (n - 1) * spec.stride + spec.dilation * (k - 1) + 1 - 2 * spec.padding;
        let (oh, ow) = (grown(h), grown(wd));
        let o = g * o_per;
        let mut out = vec![0.0; b * o * oh * ow];
        for n in 0..b {
            for ic in 0..c {
                for y in 0..h {
                    for xx in 0..wd {
                        let pixel = x[((n * c + ic) * h + y) * wd + xx] as f64;
                        for oc in 0..o_per {
                            for ky in 0..k {
                                for kx in 0..k {
                                    let oy = (y * spec.stride + ky * spec.dilation) as isize
                                        - spec.padding as isize;
                                    let ox = (xx * spec.stride + kx * spec.dilation) as isize
                                        - spec.padding as isize;
                                    if oy < 0 || ox < 0 || oy >= oh as isize || ox >= ow as isize {
                                        continue;
                                    }
                                    let channel = ic / i_per * o_per + oc;
                                    let kernel = w[((ic * o_per + oc) * k + ky) * k + kx] as f64;
                                    out[((n * o + channel) * oh + oy as usize) * ow
                                        + ox as usize] += pixel * kernel;
                                }
                            }
                        }
                    }
                }
            }
        }
        out
    }

    fn forward(case: &Case, x: &[f32], w: &[f32]) -> Vec<f32> {
        let &(b, c, h, wd, o_per, k, spec) = case;
        let dev = Cpu::default();
        let x = dev.tensor_from_vec(x.to_vec(), (b, c, h, wd));
        let w = dev.tensor_from_vec(w.to_vec(), (c, o_per, k, k));
        conv_transpose2d(x, w, spec).unwrap().as_vec()
    }

    fn inputs(n: usize, case: &Case) -> (Vec<f32>, Vec<f32>) {
        let &(b, c, h, wd, o_per, k, _) = case;
        (
            noise(b * c * h * wd, n as u64),
            noise(c * o_per * k * k, 50 + n as u64),
        )
    }

    #[test]
    fn forward_matches_the_definition() {
        for (n, case) in cases().iter().enumerate() {
            let (x, w) = inputs(n, case);
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
            let &(b, c, h, wd, o_per, k, spec) = case;
            let (x, w) = inputs(n, case);
            let r = noise(forward(case, &x, &w).len(), 90 + n as u64);
            let xt = dev.tensor_from_vec(x.clone(), (b, c, h, wd));
            let wt = dev.tensor_from_vec(w.clone(), (c, o_per, k, k));
            let out =
                conv_transpose2d(xt.clone().leaky_trace(), wt.clone().leaky_trace(), spec).unwrap();
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
    fn it_is_the_adjoint_of_the_convolution() {
        // <conv(x, w), y> = <x, conv_transpose(y, w)>: the same kernels map back.
        let dev = Cpu::default();
        let spec = ConvSpec::default().stride(2).padding(1);
        let x = dev.tensor_from_vec(noise(2 * 3 * 7 * 7, 1), (2, 3, 7, 7));
        let w = dev.tensor_from_vec(noise(4 * 3 * 3 * 3, 2), (4, 3, 3, 3));
        let y = conv2d(x.clone(), w.clone(), spec).unwrap();
        let r = dev.tensor_from_vec(noise(y.shape().num_elements(), 3), *y.shape());
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
