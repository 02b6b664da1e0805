//! The direct convolution's two vector loops ([`super::direct`]), compiled once per vector
//! unit, and the dispatch to the one this machine has. Every `unsafe` of the direct
//! convolution is here: the intrinsics are reachable only from the loops, the loops only
//! from functions compiled with the unit's features, and those only through a [`Simd`],
//! which only [`Simd::detect`] makes, after finding the unit on this CPU.

/// Output channels computed together, each in its own vector accumulators.
pub(super) const BLOCK: usize = 8;

/// Vectors of positions (forward) or taps (weight gradient) an AVX-512 loop step computes
/// together, `BLOCK` accumulators each: 24 of its 32 registers, which leaves room for the
/// inputs and one weight, and makes each weight (or output-gradient vector) loaded serve
/// three multiply-adds instead of one. AVX2 and NEON, with 16 registers, do one at a time.
const AVX512_VECTORS: usize = 3;

/// What the vector loops need, computed once per call.
pub(super) struct Sizes {
    pub channels: usize,
    pub plane: usize,
    pub wide: usize,
    pub taps: Vec<usize>,
}

/// One block of `BLOCK` output channels, over all wide positions: Σ over channels and taps
/// of the shifted input vector times each output's weight, `N` vectors of positions at a
/// time (then one at a time for the rest).
///
/// # Safety
/// This CPU has `V`'s vector unit.
#[inline(always)]
unsafe fn forward<V: Lanes, const N: usize>(
    s: &Sizes,
    padded: &[f32],
    packed: &[f32],
    wide: &mut [f32],
) {
    let per_block = s.channels * s.taps.len() * BLOCK;
    for (weights, wide) in packed
        .chunks_exact(per_block)
        .zip(wide.chunks_exact_mut(BLOCK * s.wide))
    {
        let whole = s.wide / (N * V::LANES) * (N * V::LANES);
        for at in (0..whole).step_by(N * V::LANES) {
            // SAFETY: this function's caller guarantees the vector unit.
            unsafe { forward_at::<V, N>(s, padded, weights, wide, at) };
        }
        for at in (whole..s.wide).step_by(V::LANES) {
            // SAFETY: as above.
            unsafe { forward_at::<V, 1>(s, padded, weights, wide, at) };
        }
    }
}

/// One block of `BLOCK` output channels at `N` vectors of wide positions from `at`.
///
/// # Safety
/// This CPU has `V`'s vector unit.
#[inline(always)]
unsafe fn forward_at<V: Lanes, const N: usize>(
    s: &Sizes,
    padded: &[f32],
    weights: &[f32],
    wide: &mut [f32],
    at: usize,
) {
    // SAFETY: `V`'s methods need only its vector unit, which this function's caller
    // guarantees; every load and store checks its slice's length.
    unsafe {
        let mut acc = [[V::zero(); BLOCK]; N];
        let mut weights = weights.chunks_exact(BLOCK);
        for channel in 0..s.channels {
            let input = &padded[channel * s.plane + at..];
            for &tap in &s.taps {
                let x: [V; N] = std::array::from_fn(|n| V::load(&input[tap + n * V::LANES..]));
                for (b, &w) in weights.next().unwrap().iter().enumerate() {
                    let w = V::splat(w);
                    for (acc, x) in acc.iter_mut().zip(x) {
                        acc[b] = x.mul_add(w, acc[b]);
                    }
                }
            }
        }
        for (n, acc) in acc.into_iter().enumerate() {
            for (out, acc) in wide.chunks_exact_mut(s.wide).zip(acc) {
                acc.store(&mut out[at + n * V::LANES..]);
            }
        }
    }
}

/// For each channel, tap and block of outputs: Σ over wide positions of the output
/// gradient times the shifted input, added lane by lane to `sums` (`V::LANES` lanes per
/// weight, summed across only once, in `Correlation::unpack_grad`); `N` taps at a time,
/// which share each load of the output gradient.
///
/// # Safety
/// This CPU has `V`'s vector unit.
#[inline(always)]
unsafe fn weight_grad<V: Lanes, const N: usize>(
    s: &Sizes,
    padded: &[f32],
    grads: &[f32],
    sums: &mut [f32],
) {
    let per_block = s.channels * s.taps.len() * BLOCK * V::LANES;
    for (grads, sums) in grads
        .chunks_exact(BLOCK * s.wide)
        .zip(sums.chunks_exact_mut(per_block))
    {
        let mut sums = sums.chunks_exact_mut(BLOCK * V::LANES);
        for channel in 0..s.channels {
            let input = &padded[channel * s.plane..];
            let mut taps = s.taps.chunks_exact(N);
            for taps in &mut taps {
                let taps: &[usize; N] = taps.try_into().unwrap();
                // SAFETY: this function's caller guarantees the vector unit.
                unsafe { weight_grad_taps::<V, N>(input, grads, taps, &mut sums) };
            }
            for tap in taps.remainder() {
                // SAFETY: as above.
                unsafe { weight_grad_taps::<V, 1>(input, grads, &[*tap], &mut sums) };
            }
        }
    }
}

/// One channel's `N` taps of [`weight_grad`], for one block of outputs (`grads`, that
/// block's interleaved output gradient).
///
/// # Safety
/// This CPU has `V`'s vector unit.
#[inline(always)]
unsafe fn weight_grad_taps<'a, V: Lanes, const N: usize>(
    input: &[f32],
    grads: &[f32],
    taps: &[usize; N],
    sums: &mut impl Iterator<Item = &'a mut [f32]>,
) {
    // SAFETY: `V`'s methods need only its vector unit, which this function's caller
    // guarantees; every load and store checks its slice's length.
    unsafe {
        let mut acc = [[V::zero(); BLOCK]; N];
        let positions = grads.chunks_exact(BLOCK * V::LANES);
        for (p, g) in positions.enumerate() {
            let x: [V; N] = std::array::from_fn(|n| V::load(&input[taps[n] + p * V::LANES..]));
            for (b, g) in g.chunks_exact(V::LANES).enumerate() {
                let g = V::load(g);
                for (acc, x) in acc.iter_mut().zip(x) {
                    acc[b] = x.mul_add(g, acc[b]);
                }
            }
        }
        for acc in acc {
            let sums = sums.next().unwrap().chunks_exact_mut(V::LANES);
            for (sum, acc) in sums.zip(acc) {
                V::load(sum).add(acc).store(sum);
            }
        }
    }
}

/// A vector register of `LANES` floats and the operations the loops above need, as the
/// unit's own instructions. Written out rather than left to the compiler's vectorizer,
/// which turned the weight gradient's loop into gathers.
///
/// # Safety
/// Every method needs this CPU to have the vector unit `Self` belongs to (AVX-512 for
/// `__m512`, AVX2 and FMA for `__m256`); `load` and `store` check their slices' lengths.
trait Lanes: Copy {
    const LANES: usize;
    unsafe fn zero() -> Self;
    unsafe fn splat(x: f32) -> Self;
    /// The first `LANES` values of `x`.
    unsafe fn load(x: &[f32]) -> Self;
    /// Writes the lanes to the first `LANES` values of `out`.
    unsafe fn store(self, out: &mut [f32]);
    /// `self · b + c`, rounded once.
    unsafe fn mul_add(self, b: Self, c: Self) -> Self;
    unsafe fn add(self, b: Self) -> Self;
}

/// The unit's intrinsics: each needs its target feature, which the methods' callers
/// guarantee ([`Lanes`]' contract); the pointer ones get slices of at least `LANES` values.
macro_rules! intrinsic_lanes {
    ($ty:ty, $lanes:literal, $zero:ident, $splat:ident, $load:ident, $store:ident, $fma:ident, $add:ident) => {
        #[cfg(target_arch = "x86_64")]
        impl Lanes for $ty {
            const LANES: usize = $lanes;
            #[inline(always)]
            unsafe fn zero() -> Self {
                // SAFETY: the caller guarantees the unit's features (Lanes' contract).
                unsafe { std::arch::x86_64::$zero() }
            }
            #[inline(always)]
            unsafe fn splat(x: f32) -> Self {
                // SAFETY: the caller guarantees the unit's features (Lanes' contract).
                unsafe { std::arch::x86_64::$splat(x) }
            }
            #[inline(always)]
            unsafe fn load(x: &[f32]) -> Self {
                // SAFETY: the unit's features as above; the slice holds `LANES` values.
                unsafe { std::arch::x86_64::$load(x[..$lanes].as_ptr()) }
            }
            #[inline(always)]
            unsafe fn store(self, out: &mut [f32]) {
                // SAFETY: the unit's features as above; the slice holds `LANES` values.
                unsafe { std::arch::x86_64::$store(out[..$lanes].as_mut_ptr(), self) }
            }
            #[inline(always)]
            unsafe fn mul_add(self, b: Self, c: Self) -> Self {
                // SAFETY: the caller guarantees the unit's features (Lanes' contract).
                unsafe { std::arch::x86_64::$fma(self, b, c) }
            }
            #[inline(always)]
            unsafe fn add(self, b: Self) -> Self {
                // SAFETY: the caller guarantees the unit's features (Lanes' contract).
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
/// multiply-add, so these need nothing of their callers.
#[cfg(target_arch = "aarch64")]
impl Lanes for [f32; 8] {
    const LANES: usize = 8;
    unsafe fn zero() -> Self {
        [0.0; 8]
    }
    unsafe fn splat(x: f32) -> Self {
        [x; 8]
    }
    unsafe fn load(x: &[f32]) -> Self {
        x[..8].try_into().unwrap()
    }
    unsafe fn store(self, out: &mut [f32]) {
        out[..8].copy_from_slice(&self)
    }
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        std::array::from_fn(|l| self[l].mul_add(b[l], c[l]))
    }
    unsafe fn add(self, b: Self) -> Self {
        std::array::from_fn(|l| self[l] + b[l])
    }
}

/// A vector unit this CPU has, which the loops above are compiled for: `mul_add` is one
/// instruction there, and a slow library call on a machine without fused multiply-add.
/// Only [`Simd::detect`] and [`Simd::available`] make one (the field is private to this
/// module), so holding one proves the unit is there.
#[derive(Clone, Copy, Debug)]
pub(super) struct Simd(Unit);

#[derive(Clone, Copy, Debug)]
enum Unit {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "aarch64")]
    Neon,
}

impl Simd {
    /// The fastest unit this machine has; `None` where it has none the loops are compiled for.
    pub fn detect() -> Option<Simd> {
        Simd::available().into_iter().next()
    }

    /// Every unit this machine has, fastest first.
    pub fn available() -> Vec<Simd> {
        let mut units = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") {
                units.push(Simd(Unit::Avx512));
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                units.push(Simd(Unit::Avx2));
            }
        }
        #[cfg(target_arch = "aarch64")]
        units.push(Simd(Unit::Neon));
        units
    }

    /// Floats per vector accumulator: one AVX-512 or AVX2 register, two NEON ones.
    pub fn lanes(self) -> usize {
        match self.0 {
            #[cfg(target_arch = "x86_64")]
            Unit::Avx512 => 16,
            _ => 8,
        }
    }
}

/// Each vector loop behind a function that runs the version compiled for `simd`'s unit.
macro_rules! compiled_for_each_unit {
    ($(fn $name:ident = $kernel:ident($($arg:ident: $ty:ty),*);)*) => {$(
        pub(super) fn $name(simd: Simd, $($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f")]
            fn avx512($($arg: $ty),*) {
                // SAFETY: code compiled with `avx512f` runs only where the CPU has it (the
                // call below is `unsafe` for that reason), which is all the loop needs.
                unsafe { $kernel::<std::arch::x86_64::__m512, AVX512_VECTORS>($($arg),*) }
            }

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            fn avx2($($arg: $ty),*) {
                // SAFETY: as above, with `avx2` and `fma`.
                unsafe { $kernel::<std::arch::x86_64::__m256, 1>($($arg),*) }
            }

            match simd.0 {
                // SAFETY: a `Simd` holds a unit only where `Simd::available` found its
                // features on this CPU.
                #[cfg(target_arch = "x86_64")]
                Unit::Avx512 => unsafe { avx512($($arg),*) },
                // SAFETY: as above.
                #[cfg(target_arch = "x86_64")]
                Unit::Avx2 => unsafe { avx2($($arg),*) },
                // SAFETY: every aarch64 CPU has NEON and fused multiply-add.
                #[cfg(target_arch = "aarch64")]
                Unit::Neon => unsafe { $kernel::<[f32; 8], 1>($($arg),*) },
            }
        }
    )*};
}

compiled_for_each_unit! {
    fn run_forward = forward(s: &Sizes, padded: &[f32], packed: &[f32], wide: &mut [f32]);
    fn run_weight_grad = weight_grad(s: &Sizes, padded: &[f32], grads: &[f32], sums: &mut [f32]);
}
