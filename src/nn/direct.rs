//! Direct convolution, for the stride-1, 3×3 layers of 8 to 64 channels: notebook 04's deep
//! stacks (8–16 channels of 14×14) and the diffusion U-Nets of notebooks 09 and 10. There,
//! im2col copies every pixel nine times into matrix products too small for gemm's blocking
//! to pay off. Here a stride-1 convolution is
//! computed from a zero-padded copy of the image: with the rows laid end to end, every tap
//! is one fixed shift of the whole image, so a block of outputs is a sum of shifted
//! input vectors times broadcast weights, kept in vector registers.
//!
//! The input gradient is the same correlation, of the zero-padded output gradient with
//! the kernels flipped and their channel axes swapped; the weight gradient is a dot
//! product of the output gradient with each shifted input.
//!
//! The vector loops themselves, and every `unsafe` they need, are in [`super::simd`].

use super::simd::{run_forward, run_weight_grad, Simd, Sizes, BLOCK};

/// A *valid* 2-D correlation (stride 1, no dilation) of `channels` planes of
/// `height × width`, zero-padded by `pad` on each side, with `kernel × kernel` taps.
///
/// Its outputs are computed *wide*: one per padded column, `out_h × cols`, of which the
/// last `kernel − 1` columns of each row straddle two rows and are dropped. That keeps
/// every tap a single shift, `ky·cols + kx`, of one contiguous buffer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Correlation {
    channels: usize,
    height: usize,
    width: usize,
    pad: usize,
    kernel: usize,
    simd: Simd,
}

impl Correlation {
    /// `None` where this machine has no vector unit the kernels are compiled for.
    pub fn new(
        channels: usize,
        height: usize,
        width: usize,
        pad: usize,
        kernel: usize,
    ) -> Option<Correlation> {
        Some(Correlation {
            channels,
            height,
            width,
            pad,
            kernel,
            simd: Simd::detect()?,
        })
    }

    fn cols(&self) -> usize {
        self.width + 2 * self.pad
    }

    fn rows(&self) -> usize {
        self.height + 2 * self.pad
    }

    fn out_h(&self) -> usize {
        self.rows() + 1 - self.kernel
    }

    fn out_w(&self) -> usize {
        self.cols() + 1 - self.kernel
    }

    fn plane(&self) -> usize {
        self.rows() * self.cols()
    }

    /// Wide outputs per channel, rounded up to whole vectors.
    fn wide(&self) -> usize {
        (self.out_h() * self.cols()).next_multiple_of(self.simd.lanes())
    }

    /// The padded image, with room for the last vector's reads past the last plane.
    pub fn padded_len(&self) -> usize {
        self.channels * self.plane() + self.kernel + self.simd.lanes()
    }

    /// `outs` channels of wide outputs, rounded up to whole blocks.
    pub fn wide_len(&self, outs: usize) -> usize {
        outs.next_multiple_of(BLOCK) * self.wide()
    }

    fn taps(&self) -> Vec<usize> {
        let k = self.kernel;
        (0..k * k).map(|t| t / k * self.cols() + t % k).collect()
    }

    /// Copies `image` (`channels × height × width`) into `padded`, zeros around it.
    pub fn pad(&self, image: &[f32], padded: &mut [f32]) {
        let (cols, pad) = (self.cols(), self.pad);
        padded.fill(0.0);
        for (plane, image) in padded
            .chunks_exact_mut(self.plane())
            .zip(image.chunks_exact(self.height * self.width))
        {
            for (row, line) in plane[pad * cols..]
                .chunks_exact_mut(cols)
                .zip(image.chunks_exact(self.width))
            {
                row[pad..pad + self.width].copy_from_slice(line);
            }
        }
    }

    /// Writes `outs` channels of `out_h × out_w` (an output gradient) in the order
    /// [`Correlation::weight_grad`] reads them: wide layout, and per block of outputs, the
    /// block's `BLOCK` vectors at each wide position side by side; zeros in the dropped
    /// columns and in the rows that round `outs` up to a block.
    pub fn interleave(&self, out: &[f32], outs: usize, grads: &mut [f32]) {
        grads.fill(0.0);
        let (cols, out_w, lanes) = (self.cols(), self.out_w(), self.simd.lanes());
        for (o, out) in out
            .chunks_exact(self.out_h() * out_w)
            .take(outs)
            .enumerate()
        {
            let block = &mut grads[o / BLOCK * BLOCK * self.wide()..][..BLOCK * self.wide()];
            for (y, line) in out.chunks_exact(out_w).enumerate() {
                // A row's values, split where they cross from one vector into the next.
                let mut x = 0;
                while x < out_w {
                    let at = y * cols + x;
                    let n = (lanes - at % lanes).min(out_w - x);
                    let start = (at / lanes * BLOCK + o % BLOCK) * lanes + at % lanes;
                    block[start..start + n].copy_from_slice(&line[x..x + n]);
                    x += n;
                }
            }
        }
    }

    /// Adds the kept columns of `outs` channels of wide outputs to `out`.
    pub fn add_narrow(&self, wide: &[f32], outs: usize, out: &mut [f32]) {
        let (cols, out_w) = (self.cols(), self.out_w());
        for (wide, out) in wide
            .chunks_exact(self.wide())
            .zip(out.chunks_exact_mut(self.out_h() * out_w).take(outs))
        {
            for (row, line) in wide.chunks_exact(cols).zip(out.chunks_exact_mut(out_w)) {
                line.iter_mut().zip(row).for_each(|(o, w)| *o += w);
            }
        }
    }

    /// Packs kernels, `weight(out, channel, tap)` for `outs` output channels, in the order
    /// the vector loop reads them: per block of outputs, per channel and tap, the block's
    /// `BLOCK` weights side by side (zeros past `outs`).
    pub fn pack(&self, outs: usize, weight: impl Fn(usize, usize, usize) -> f32) -> Vec<f32> {
        let mut packed =
            vec![0.0; outs.next_multiple_of(BLOCK) * self.channels * self.kernel.pow(2)];
        for (i, p) in packed.iter_mut().enumerate() {
            if let Some((out, channel, tap)) = self.packed_weight(i, outs) {
                *p = weight(out, channel, tap);
            }
        }
        packed
    }

    /// Values of the sums [`Correlation::weight_grad`] adds to, for `outs` outputs.
    pub fn grad_len(&self, outs: usize) -> usize {
        outs.next_multiple_of(BLOCK) * self.channels * self.kernel.pow(2) * self.simd.lanes()
    }

    /// Adds the weight gradient in `sums` to `add(out, channel, tap, value)`.
    pub fn unpack_grad(
        &self,
        outs: usize,
        sums: &[f32],
        mut add: impl FnMut(usize, usize, usize, f32),
    ) {
        for (i, lanes) in sums.chunks_exact(self.simd.lanes()).enumerate() {
            if let Some((out, channel, tap)) = self.packed_weight(i, outs) {
                add(out, channel, tap, lanes.iter().sum());
            }
        }
    }

    /// The output, channel and tap of the `i`th packed weight; `None` for block padding.
    fn packed_weight(&self, i: usize, outs: usize) -> Option<(usize, usize, usize)> {
        let taps = self.kernel * self.kernel;
        let per_block = self.channels * taps * BLOCK;
        let (block, rest) = (i / per_block, i % per_block);
        let out = block * BLOCK + rest % BLOCK;
        (out < outs).then_some((out, rest / (taps * BLOCK), rest / BLOCK % taps))
    }

    /// `wide` (`wide_len(outs)`) = the correlation of `padded` with `packed` kernels.
    pub fn forward(&self, padded: &[f32], packed: &[f32], wide: &mut [f32]) {
        run_forward(self.simd, &self.sizes(padded, wide), padded, packed, wide);
    }

    /// Adds to `sums` (`grad_len(outs)`) the products of the output gradient `grads`
    /// ([`Correlation::interleave`]d) with each tap's shifted `padded` input.
    pub fn weight_grad(&self, padded: &[f32], grads: &[f32], sums: &mut [f32]) {
        run_weight_grad(self.simd, &self.sizes(padded, grads), padded, grads, sums);
    }

    fn sizes(&self, padded: &[f32], wide: &[f32]) -> Sizes {
        assert_eq!(padded.len(), self.padded_len(), "a padded image");
        assert_eq!(
            wide.len() % (BLOCK * self.wide()),
            0,
            "blocks of wide outputs"
        );
        Sizes {
            channels: self.channels,
            plane: self.plane(),
            wide: self.wide(),
            taps: self.taps(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{conv2d_reference, ConvSpec};
    use crate::testing::{assert_close, noise};
    use dfdx::prelude::*;

    /// `conv2d`'s reference on one image: the correlation of `image` with `w` (`outs`
    /// kernels), zero-padded by the correlation's pad.
    fn reference(c: &Correlation, image: &[f32], w: &[f32], outs: usize) -> Vec<f64> {
        let dev = Cpu::default();
        let image = dev.tensor_from_vec(image.to_vec(), (1, c.channels, c.height, c.width));
        let w = dev.tensor_from_vec(w.to_vec(), (outs, c.channels, c.kernel, c.kernel));
        let out = conv2d_reference(&image, &w, ConvSpec::default().padding(c.pad));
        out.as_vec().into_iter().map(f64::from).collect()
    }

    #[test]
    fn every_vector_unit_computes_the_correlation_and_its_weight_gradient() {
        let (channels, outs) = (5, 11);
        for unit in Simd::available() {
            for (height, width, pad, kernel) in [(6, 7, 1, 3), (5, 9, 0, 3), (4, 4, 2, 5)] {
                let c = Correlation {
                    channels,
                    height,
                    width,
                    pad,
                    kernel,
                    simd: unit,
                };
                let what = format!("{unit:?}, {height}×{width}, pad {pad}, {kernel}×{kernel}");
                let image = noise(channels * height * width, 1);
                let w = noise(outs * channels * kernel * kernel, 2);
                let mut padded = vec![0.0; c.padded_len()];
                c.pad(&image, &mut padded);
                let taps = kernel * kernel;
                let packed = c.pack(outs, |o, ch, t| w[(o * channels + ch) * taps + t]);
                let mut wide = vec![f32::NAN; c.wide_len(outs)];
                c.forward(&padded, &packed, &mut wide);
                let mut out = vec![0.0; outs * c.out_h() * c.out_w()];
                c.add_narrow(&wide, outs, &mut out);
                assert_close(&what, &out, &reference(&c, &image, &w, outs), 1e-5);

                // ∂(Σ g · out)/∂w[o, ch, t] = Σ g[o] · shifted image: the reference correlation of
                // the image with a one-hot kernel at (ch, t), for each output's gradient.
                let g = noise(out.len(), 3);
                c.interleave(&g, outs, &mut wide);
                let mut sums = vec![0.0; c.grad_len(outs)];
                c.weight_grad(&padded, &wide, &mut sums);
                let mut grad = vec![0.0; w.len()];
                c.unpack_grad(outs, &sums, |o, ch, t, v| {
                    grad[(o * channels + ch) * taps + t] += v
                });
                let plane = c.out_h() * c.out_w();
                let expected: Vec<f64> = (0..w.len())
                    .map(|i| {
                        let mut one_hot = vec![0.0; channels * taps];
                        one_hot[i % (channels * taps)] = 1.0;
                        let shifted = reference(&c, &image, &one_hot, 1);
                        let g = &g[i / (channels * taps) * plane..][..plane];
                        shifted.iter().zip(g).map(|(s, &g)| s * g as f64).sum()
                    })
                    .collect();
                assert_close(&what, &grad, &expected, 1e-4);
            }
        }
    }
}
