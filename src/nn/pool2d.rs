//! Max and average pooling: each output pixel summarises a k×k window of one channel.
//! Max pooling keeps the strongest response (and passes the gradient back to it alone);
//! average pooling spreads the gradient evenly. Taught in notebook 04.

use super::conv2d::ConvSpec;
use super::im2col::Plane;
use super::op::{chunks_per_task, layer_result, output_buffer, record, too_small, values};
use super::Images;
use crate::Error;
use dfdx::prelude::*;
use dfdx::tensor::CpuError;
use rayon::prelude::*;
use std::ops::Range;

/// Which summary of the window a pooling layer keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pool {
    Max,
    /// The window's sum divided by k·k, padding included (PyTorch's default,
    /// `count_include_pad=True`).
    Avg,
}

/// Pools each channel of `x` (batch × channels × h × w) over `kernel × kernel` windows
/// moved `stride` at a time, with `padding` on each side (at most half the kernel, as in
/// PyTorch, so every window sees a real pixel). Output: batch × channels ×
/// ⌊(h + 2p − k)/s⌋ + 1 × (the same for w).
pub fn pool2d<B: Dim, C: Dim, H: Dim, W: Dim, T: Tape<f32, Cpu>>(
    x: Tensor<(B, C, H, W), f32, Cpu, T>,
    kind: Pool,
    kernel: usize,
    stride: usize,
    padding: usize,
) -> Result<Images<B, C, T>, Error> {
    let [batch, channels, height, width] = x.shape().concrete();
    let window = ConvSpec::default()
        .stride(stride)
        .padding(padding)
        .window(kernel)?;
    if 2 * padding > kernel {
        return Err(Error::InvalidArgument {
            what: "the padding of a pooling window",
            expected: "at most half the kernel size",
            got: format!("padding {padding} for a {kernel}×{kernel} kernel"),
        });
    }
    let plane =
        Plane::new(1, height, width, window).ok_or_else(|| too_small(height, width, &window))?;
    let (x, tape) = x.try_contiguous()?.split_tape();
    let mut out = output_buffer(x.device(), batch * channels * plane.positions())?;
    let taken = pool_forward(&values(&x), &plane, kind, &mut out);
    let shape = (x.shape().0, x.shape().1, plane.out_h, plane.out_w);
    let out = record(&x, [], tape, out, shape, move |g, gx, []| {
        pool_backward(g, gx, &plane, kind, &taken)
    })?;
    Ok(out)
}

/// Writes every channel's pooled values to `out` and returns, for max pooling, the index
/// in `x` of each maximum.
fn pool_forward(x: &[f32], plane: &Plane, kind: Pool, out: &mut [f32]) -> Vec<usize> {
    let (positions, image) = (plane.positions(), plane.image_len());
    let channels = x.par_chunks(image).enumerate();
    match kind {
        Pool::Max => {
            let mut taken = vec![0; out.len()];
            out.par_chunks_mut(positions)
                .zip(taken.par_chunks_mut(positions))
                .zip(channels)
                .with_min_len(chunks_per_task(image))
                .for_each(|((out, taken), (p, x))| {
                    for_each_window(plane, |position, rows, columns| {
                        let mut best = rows.start * plane.width + columns.start;
                        let mut max = x[best];
                        for y in rows {
                            for i in columns.clone().map(|x| y * plane.width + x) {
                                // Selects, not branches: which pixel wins is data, and a
                                // mispredicted branch per pixel would cost more than the rest.
                                let higher = x[i] > max;
                                max = if higher { x[i] } else { max };
                                best = if higher { i } else { best };
                            }
                        }
                        (out[position], taken[position]) = (max, p * image + best);
                    })
                });
            taken
        }
        Pool::Avg => {
            let area = (plane.window.kernel * plane.window.kernel) as f32;
            out.par_chunks_mut(positions)
                .zip(channels)
                .with_min_len(chunks_per_task(image))
                .for_each(|(out, (_, x))| {
                    for_each_window(plane, |position, rows, columns| {
                        let sum: f32 = rows
                            .map(|y| x[y * plane.width..][columns.clone()].iter().sum::<f32>())
                            .sum();
                        out[position] = sum / area;
                    })
                });
            Vec::new()
        }
    }
}

fn pool_backward(g: &[f32], gx: &mut [f32], plane: &Plane, kind: Pool, taken: &[usize]) {
    match kind {
        Pool::Max => taken.iter().zip(g).for_each(|(&i, &g)| gx[i] += g),
        Pool::Avg => {
            let area = (plane.window.kernel * plane.window.kernel) as f32;
            gx.par_chunks_mut(plane.image_len())
                .zip(g.par_chunks(plane.positions()))
                .with_min_len(chunks_per_task(plane.image_len()))
                .for_each(|(gx, g)| {
                    for_each_window(plane, |position, rows, columns| {
                        for y in rows {
                            let line = &mut gx[y * plane.width..][columns.clone()];
                            line.iter_mut().for_each(|v| *v += g[position] / area);
                        }
                    })
                });
        }
    }
}

/// Calls `f(position, rows, columns)` for each output position of one channel, with the
/// rows and columns of real pixels (not padding) its window covers.
fn for_each_window(plane: &Plane, mut f: impl FnMut(usize, Range<usize>, Range<usize>)) {
    let w = plane.window;
    for oy in 0..plane.out_h {
        for ox in 0..plane.out_w {
            let position = oy * plane.out_w + ox;
            f(position, w.span(oy, plane.height), w.span(ox, plane.width));
        }
    }
}

/// The readable version of [`pool2d`]: its definition as plain loops, each output the
/// largest of its window's real pixels (padding never wins) or their sum over k·k (padding
/// counts as zero). Notebook `04_convnets` §1 writes max pooling out as a loop.
pub fn pool2d_reference(
    x: &Images<usize, usize, NoneTape>,
    kind: Pool,
    kernel: usize,
    stride: usize,
    padding: usize,
) -> Images<usize, usize, NoneTape> {
    let (b, c, h, w) = *x.shape();
    let size = |n: usize| (n + 2 * padding - kernel) / stride + 1;
    let (oh, ow) = (size(h), size(w));
    let xs = x.as_vec();
    let out = (0..b * c * oh * ow).map(|i| {
        let (plane, oy, ox) = (i / (oh * ow), i / ow % oh, i % ow);
        let window = (0..kernel * kernel).filter_map(|t| {
            let y = (oy * stride + t / kernel)
                .checked_sub(padding)
                .filter(|&y| y < h)?;
            let x = (ox * stride + t % kernel)
                .checked_sub(padding)
                .filter(|&x| x < w)?;
            Some(xs[(plane * h + y) * w + x])
        });
        match kind {
            Pool::Max => window.fold(f32::NEG_INFINITY, f32::max),
            Pool::Avg => window.sum::<f32>() / (kernel * kernel) as f32,
        }
    });
    x.device().tensor_from_vec(out.collect(), (b, c, oh, ow))
}

macro_rules! pool_layer {
    ($(#[$doc:meta])* $name:ident, $kind:expr) => {
        $(#[$doc])*
        #[derive(Debug, Default, Clone, Copy)]
        pub struct $name<const K: usize, const S: usize = K, const P: usize = 0>;

        impl<const K: usize, const S: usize, const P: usize> ZeroSizedModule for $name<K, S, P> {}
        impl<const K: usize, const S: usize, const P: usize> NonMutableModule for $name<K, S, P> {}

        impl<const K: usize, const S: usize, const P: usize, B: Dim, C: Dim, H: Dim, W: Dim, T>
            Module<Tensor<(B, C, H, W), f32, Cpu, T>> for $name<K, S, P>
        where
            T: Tape<f32, Cpu>,
        {
            type Output = Tensor<(B, C, usize, usize), f32, Cpu, T>;
            type Error = CpuError;

            fn try_forward(
                &self,
                x: Tensor<(B, C, H, W), f32, Cpu, T>,
            ) -> Result<Self::Output, CpuError> {
                layer_result(stringify!($name), pool2d(x, $kind, K, S, P))
            }
        }
    };
}

pool_layer!(
    /// Max pooling over `K×K` windows, stride `S` (default `K`: windows side by side, as
    /// in PyTorch's `MaxPool2d(K)`), padding `P`. Keeps each window's largest value.
    MaxPool2D,
    Pool::Max
);
pool_layer!(
    /// Average pooling over `K×K` windows, stride `S` (default `K`), padding `P`, as
    /// PyTorch's `AvgPool2d(K, S, P)`.
    AvgPool2D,
    Pool::Avg
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_matches_pytorch, assert_matches_reference, Tolerance};

    /// (batch, channels, h, w, kernel, stride, padding)
    const CASES: [(usize, usize, usize, usize, usize, usize, usize); 6] = [
        (2, 3, 6, 6, 2, 2, 0),
        (1, 2, 7, 5, 3, 2, 1),
        (3, 1, 9, 9, 3, 1, 1),
        (2, 2, 8, 7, 4, 3, 2),
        (1, 1, 5, 5, 5, 1, 0),
        (4, 3, 4, 4, 1, 1, 0),
    ];

    /// `n` values in [-1, 1), 2/n apart, in a seeded order: no two pixels tie.
    fn distinct(n: usize, seed: u64) -> Vec<f32> {
        use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};
        let mut x: Vec<f32> = (0..n).map(|i| 2.0 * i as f32 / n as f32 - 1.0).collect();
        x.shuffle(&mut StdRng::seed_from_u64(seed));
        x
    }

    /// The values are the reference's, and the gradients the reference's by central
    /// differences.
    #[test]
    fn matches_the_reference_in_values_and_gradients() {
        let dev = Cpu::default();
        for kind in [Pool::Max, Pool::Avg] {
            for (n, &(b, c, h, w, k, s, p)) in CASES.iter().enumerate() {
                let x = distinct(b * c * h * w, n as u64);
                // Max pooling is linear between ties: a step under half the spacing of the
                // values keeps every maximum in place.
                let step = if kind == Pool::Max { 2e-4 } else { 0.5 };
                assert_matches_reference(
                    &format!("{kind:?} case {n}"),
                    [dev.tensor_from_vec(x, (b, c, h, w))],
                    |[x]| pool2d(x, kind, k, s, p).unwrap(),
                    |[x]| pool2d_reference(x, kind, k, s, p),
                    10 + n as u64,
                    step,
                    Tolerance {
                        values: 1e-6,
                        gradients: 2e-3,
                    },
                );
            }
        }
    }

    /// PyTorch's `F.max_pool2d` and `F.avg_pool2d` (3×3, stride 2, padding 1) on a 5×5
    /// image of distinct values, the output and the image's gradient under the loss
    /// Σ out · arange/10. Produced by the script of `conv2d`'s `matches_pytorch` (torch
    /// 2.15.0), with `arange` taking `mod=True` to permute the values, `v = v * 7 % n`
    /// before `v / 10`, and:
    ///
    /// ```python
    /// run("max", lambda x: F.max_pool2d(x, 3, stride=2, padding=1), arange(1, 1, 5, 5, mod=True))
    /// run("avg", lambda x: F.avg_pool2d(x, 3, stride=2, padding=1), arange(1, 1, 5, 5, mod=True))
    /// ```
    #[test]
    fn matches_pytorch() {
        #[rustfmt::skip]
        let cases = [
            (Pool::Max,
             vec![1.7, 2.4, 2.1, 2.0, 2.4, 2.3, 2.2, 2.2, 1.8],
             vec![0.0, 0.0, 0.0, 0.2, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0, 0.3, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.3, 0.0, 0.0, 0.8]),
            (Pool::Avg,
             vec![0.3778, 0.9889, 0.4778, 0.7333, 1.1778, 0.7444, 0.6, 0.7667, 0.4222],
             vec![0.0, 0.0111, 0.0111, 0.0333, 0.0222, 0.0333, 0.0889, 0.0556, 0.1333, 0.0778, 0.0333, 0.0778, 0.0444, 0.1, 0.0556, 0.1, 0.2222, 0.1222, 0.2667, 0.1444, 0.0667, 0.1444, 0.0778, 0.1667, 0.0889]),
        ];
        let dev = Cpu::default();
        let x = dev.tensor_from_vec(
            (0..25).map(|i| (i * 7 % 25) as f32 / 10.0).collect(),
            (1, 1, 5, 5),
        );
        for (kind, out, grad) in cases {
            assert_matches_pytorch(
                &format!("{kind:?}"),
                [x.clone()],
                |[x]| pool2d(x, kind, 3, 2, 1).unwrap(),
                &out,
                [&grad],
                Tolerance {
                    values: 1e-4,
                    gradients: 1e-3,
                },
            );
        }
    }

    #[test]
    fn layers_pool_side_by_side_by_default() {
        let dev = Cpu::default();
        let x: Tensor<Rank4<2, 3, 28, 28>, f32, _> = dev.sample_normal();
        let y = MaxPool2D::<2>.forward(x.clone());
        assert_eq!(*y.shape(), (Const::<2>, Const::<3>, 14, 14));
        let y = AvgPool2D::<3, 2, 1>.forward(x);
        assert_eq!(*y.shape(), (Const::<2>, Const::<3>, 14, 14));
        let e = pool2d(dev.zeros_like(&(1, 1, 4, 4)), Pool::Max, 2, 2, 2).unwrap_err();
        assert!(e.to_string().contains("at most half"), "{e}");
    }
}
