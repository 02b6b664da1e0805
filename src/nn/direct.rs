//! Direct convolution, for the narrow layers of notebook 04's deep stacks (8–16 channels of
//! 14×14). There, im2col copies every pixel nine times and the matrix products it feeds
//! are too small for gemm's blocking to pay off. Here a stride-1 convolution is
//! computed from a zero-padded copy of the image: with the rows laid end to end, every tap
//! is one fixed shift of the whole image, so a block of outputs is a sum of shifted
//! input vectors times broadcast weights, kept in vector registers.
//!
//! The input gradient is the same correlation, of the zero-padded output gradient with
//! the kernels flipped and their channel axes swapped; the weight gradient is a dot
//! product of the output gradient with each shifted input.

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

/// Output channels computed together, each in its own vector accumulators.
const BLOCK: usize = 8;

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

/// What the vector loops need, computed once per call.
struct Sizes {
    channels: usize,
    plane: usize,
    wide: usize,
    taps: Vec<usize>,
}

/// One block of `BLOCK` output channels at `V::LANES` consecutive wide positions: Σ over
/// channels and taps of the shifted input vector times each output's weight.
#[inline(always)]
fn forward<V: Lanes>(s: &Sizes, padded: &[f32], packed: &[f32], wide: &mut [f32]) {
    let per_block = s.channels * s.taps.len() * BLOCK;
    for (weights, wide) in packed
        .chunks_exact(per_block)
        .zip(wide.chunks_exact_mut(BLOCK * s.wide))
    {
        for at in (0..s.wide).step_by(V::LANES) {
            let mut acc = [V::zero(); BLOCK];
            let mut weights = weights.chunks_exact(BLOCK);
            for channel in 0..s.channels {
                let input = &padded[channel * s.plane + at..];
                for &tap in &s.taps {
                    let x = V::load(&input[tap..]);
                    for (acc, &w) in acc.iter_mut().zip(weights.next().unwrap()) {
                        *acc = x.mul_add(V::splat(w), *acc);
                    }
                }
            }
            for (out, acc) in wide.chunks_exact_mut(s.wide).zip(acc) {
                acc.store(&mut out[at..]);
            }
        }
    }
}

/// For each channel, tap and block of outputs: Σ over wide positions of the output
/// gradient times the shifted input, added lane by lane to `sums` (`V::LANES` lanes per
/// weight, summed across only once, in [`Correlation::unpack_grad`]).
#[inline(always)]
fn weight_grad<V: Lanes>(s: &Sizes, padded: &[f32], grads: &[f32], sums: &mut [f32]) {
    let per_block = s.channels * s.taps.len() * BLOCK * V::LANES;
    for (grads, sums) in grads
        .chunks_exact(BLOCK * s.wide)
        .zip(sums.chunks_exact_mut(per_block))
    {
        let mut sums = sums.chunks_exact_mut(BLOCK * V::LANES);
        for channel in 0..s.channels {
            let input = &padded[channel * s.plane..];
            for &tap in &s.taps {
                let mut acc = [V::zero(); BLOCK];
                let positions = input[tap..tap + s.wide].chunks_exact(V::LANES);
                for (x, g) in positions.zip(grads.chunks_exact(BLOCK * V::LANES)) {
                    let x = V::load(x);
                    for (acc, g) in acc.iter_mut().zip(g.chunks_exact(V::LANES)) {
                        *acc = x.mul_add(V::load(g), *acc);
                    }
                }
                let sums = sums.next().unwrap().chunks_exact_mut(V::LANES);
                for (sum, acc) in sums.zip(acc) {
                    V::load(sum).add(acc).store(sum);
                }
            }
        }
    }
}

/// A vector register of `LANES` floats and the operations the loops above need, as the
/// unit's own instructions. Written out rather than left to the compiler's vectorizer,
/// which turned the weight gradient's loop into gathers, 4× slower.
trait Lanes: Copy {
    const LANES: usize;
    fn zero() -> Self;
    fn splat(x: f32) -> Self;
    /// The first `LANES` values of `x`.
    fn load(x: &[f32]) -> Self;
    /// Writes the lanes to the first `LANES` values of `out`.
    fn store(self, out: &mut [f32]);
    /// `self · b + c`, rounded once.
    fn mul_add(self, b: Self, c: Self) -> Self;
    fn add(self, b: Self) -> Self;
}

/// The unit's intrinsics, each needing its target feature: they run only inside the
/// `#[target_feature]` functions `compiled_for_each_unit!` makes, after `Simd::detect`
/// found the unit, and the loads and stores check their slices' lengths first.
macro_rules! intrinsic_lanes {
    ($ty:ty, $lanes:literal, $zero:ident, $splat:ident, $load:ident, $store:ident, $fma:ident, $add:ident) => {
        #[cfg(target_arch = "x86_64")]
        impl Lanes for $ty {
            const LANES: usize = $lanes;
            #[inline(always)]
            fn zero() -> Self {
                // SAFETY: see the macro.
                unsafe { std::arch::x86_64::$zero() }
            }
            #[inline(always)]
            fn splat(x: f32) -> Self {
                // SAFETY: see the macro.
                unsafe { std::arch::x86_64::$splat(x) }
            }
            #[inline(always)]
            fn load(x: &[f32]) -> Self {
                // SAFETY: see the macro; `LANES` values are there to read.
                unsafe { std::arch::x86_64::$load(x[..$lanes].as_ptr()) }
            }
            #[inline(always)]
            fn store(self, out: &mut [f32]) {
                // SAFETY: see the macro; `LANES` values are there to write.
                unsafe { std::arch::x86_64::$store(out[..$lanes].as_mut_ptr(), self) }
            }
            #[inline(always)]
            fn mul_add(self, b: Self, c: Self) -> Self {
                // SAFETY: see the macro.
                unsafe { std::arch::x86_64::$fma(self, b, c) }
            }
            #[inline(always)]
            fn add(self, b: Self) -> Self {
                // SAFETY: see the macro.
                unsafe { std::arch::x86_64::$add(self, b) }
            }
        }
    };
}

#[rustfmt::skip]
intrinsic_lanes!(std::arch::x86_64::__m512, 16, _mm512_setzero_ps, _mm512_set1_ps,
    _mm512_loadu_ps, _mm512_storeu_ps, _mm512_fmadd_ps, _mm512_add_ps);
#[rustfmt::skip]
intrinsic_lanes!(std::arch::x86_64::__m256, 8, _mm256_setzero_ps, _mm256_set1_ps,
    _mm256_loadu_ps, _mm256_storeu_ps, _mm256_fmadd_ps, _mm256_add_ps);

/// Two NEON registers, left to the compiler: every aarch64 CPU has them and fused
/// multiply-add.
#[cfg(target_arch = "aarch64")]
impl Lanes for [f32; 8] {
    const LANES: usize = 8;
    fn zero() -> Self {
        [0.0; 8]
    }
    fn splat(x: f32) -> Self {
        [x; 8]
    }
    fn load(x: &[f32]) -> Self {
        x[..8].try_into().unwrap()
    }
    fn store(self, out: &mut [f32]) {
        out[..8].copy_from_slice(&self)
    }
    fn mul_add(self, b: Self, c: Self) -> Self {
        std::array::from_fn(|l| self[l].mul_add(b[l], c[l]))
    }
    fn add(self, b: Self) -> Self {
        std::array::from_fn(|l| self[l] + b[l])
    }
}

/// The vector unit the loops above are compiled for, found at run time: `mul_add` is one
/// instruction there, and a slow library call on a machine without fused multiply-add.
#[derive(Clone, Copy, Debug)]
enum Simd {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "aarch64")]
    Neon,
}

impl Simd {
    fn detect() -> Option<Simd> {
        Simd::available().into_iter().next()
    }

    /// Every unit this machine has, fastest first.
    fn available() -> Vec<Simd> {
        let mut units = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") {
                units.push(Simd::Avx512);
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                units.push(Simd::Avx2);
            }
        }
        #[cfg(target_arch = "aarch64")]
        units.push(Simd::Neon);
        units
    }

    /// Floats per vector accumulator: one AVX-512 or AVX2 register, two NEON ones.
    fn lanes(self) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512 => 16,
            _ => 8,
        }
    }
}

/// Each vector loop behind a function that runs the version compiled for `simd`, the
/// vector unit `Simd::detect` found on this machine.
macro_rules! compiled_for_each_unit {
    ($(fn $name:ident = $kernel:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $name(simd: Simd, $($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f")]
            fn avx512($($arg: $ty),*) {
                $kernel::<std::arch::x86_64::__m512>($($arg),*)
            }

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            fn avx2($($arg: $ty),*) {
                $kernel::<std::arch::x86_64::__m256>($($arg),*)
            }

            match simd {
                // SAFETY: `Simd::detect` found the unit's features on this machine.
                #[cfg(target_arch = "x86_64")]
                Simd::Avx512 => unsafe { avx512($($arg),*) },
                #[cfg(target_arch = "x86_64")]
                Simd::Avx2 => unsafe { avx2($($arg),*) },
                // Fused multiply-add is part of every aarch64 CPU.
                #[cfg(target_arch = "aarch64")]
                Simd::Neon => $kernel::<[f32; 8]>($($arg),*),
            }
        }
    )*};
}

compiled_for_each_unit! {
    fn run_forward = forward(s: &Sizes, padded: &[f32], packed: &[f32], wide: &mut [f32]);
    fn run_weight_grad = weight_grad(s: &Sizes, padded: &[f32], grads: &[f32], sums: &mut [f32]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_close, noise};

    /// out[o, y, x] = Σ w[o, c, ky, kx] · image[c, y + ky − pad, x + kx − pad], in f64.
    fn naive(c: &Correlation, image: &[f32], w: &[f32], outs: usize) -> Vec<f64> {
        let (k, h, wd) = (c.kernel, c.height as isize, c.width as isize);
        let mut out = Vec::new();
        for o in 0..outs {
            for y in 0..c.out_h() {
                for x in 0..c.out_w() {
                    let mut sum = 0.0;
                    for ch in 0..c.channels {
                        for t in 0..k * k {
                            let iy = (y + t / k) as isize - c.pad as isize;
                            let ix = (x + t % k) as isize - c.pad as isize;
                            if (0..h).contains(&iy) && (0..wd).contains(&ix) {
                                let pixel =
                                    image[(ch * c.height + iy as usize) * c.width + ix as usize];
                                sum += pixel as f64 * w[(o * c.channels + ch) * k * k + t] as f64;
                            }
                        }
                    }
                    out.push(sum);
                }
            }
        }
        out
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
                assert_close(&what, &out, &naive(&c, &image, &w, outs), 1e-5);

                // ∂(Σ g · out)/∂w[o, ch, t] = Σ g[o] · shifted image: the naive correlation of
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
                        let shifted = naive(&c, &image, &one_hot, 1);
                        let g = &g[i / (channels * taps) * plane..][..plane];
                        shifted.iter().zip(g).map(|(s, &g)| s * g as f64).sum()
                    })
                    .collect();
                assert_close(&what, &grad, &expected, 1e-4);
            }
        }
    }
}
