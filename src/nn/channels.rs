//! Per-channel arithmetic over a batch of images stored `(batch, channels, pixels)`: the
//! loops behind batch normalisation and the per-channel bias. dfdx builds these layers
//! from generic broadcasts and reductions, one pass over memory (and one buffer) per op;
//! here each forward and backward pass is one or two fused passes.

use super::op::chunks_per_task;
use rayon::prelude::*;

/// Independent partial sums per block, so the additions pipeline (and vectorise) instead of
/// waiting on each other.
const LANES: usize = 8;

/// The layout of one image: `channels` planes of `pixels` values each.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Channels {
    pub channels: usize,
    pub pixels: usize,
}

impl Channels {
    fn image_len(&self) -> usize {
        self.channels * self.pixels
    }

    /// For each image `n` and channel `c`, the sums of `term(n, c)(a[i], b[i])` over the
    /// pixels of channel `c` of image `n`; `a` and `b` are two buffers of this layout (pass
    /// one twice for a term of one). `term(n, c)` is asked once per plane, so what it reads
    /// per image or channel is read before the loop over pixels, which then vectorises.
    /// Images are summed in parallel.
    pub(crate) fn image_sums<const N: usize, T: Fn(f32, f32) -> [f32; N]>(
        &self,
        a: &[f32],
        b: &[f32],
        term: impl Fn(usize, usize) -> T + Sync,
    ) -> Vec<Vec<[f64; N]>> {
        assert_eq!(a.len(), b.len(), "two buffers of one layout");
        a.par_chunks(self.image_len())
            .zip(b.par_chunks(self.image_len()))
            .with_min_len(chunks_per_task(self.image_len()))
            .enumerate()
            .map(|(n, (a, b))| {
                let planes = a.chunks(self.pixels).zip(b.chunks(self.pixels));
                planes
                    .enumerate()
                    .map(|(c, (a, b))| plane_sum(a, b, term(n, c)))
                    .collect()
            })
            .collect()
    }

    /// Per image, [`Channels::image_sums`] added over its channels.
    pub(crate) fn example_sums<const N: usize, T: Fn(f32, f32) -> [f32; N]>(
        &self,
        a: &[f32],
        b: &[f32],
        term: impl Fn(usize, usize) -> T + Sync,
    ) -> Vec<[f64; N]> {
        let images = self.image_sums(a, b, term);
        images.iter().map(|channels| add_all(channels)).collect()
    }

    /// Per channel, [`Channels::image_sums`] added over the images, in order, so the result
    /// does not depend on the number of threads.
    pub(crate) fn sums<const N: usize, T: Fn(f32, f32) -> [f32; N]>(
        &self,
        a: &[f32],
        b: &[f32],
        term: impl Fn(usize, usize) -> T + Sync,
    ) -> Vec<[f64; N]> {
        let mut total = vec![[0.0; N]; self.channels];
        for image in self.image_sums(a, b, term) {
            for (t, s) in total.iter_mut().zip(image) {
                *t = add_all(&[*t, s]);
            }
        }
        total
    }

    /// `out[i] += f(n, c)(a[i], b[i])` for every value, `n` its image and `c` its channel;
    /// all three buffers in this layout. As for the sums, `f(n, c)` is asked once per plane.
    pub(crate) fn add_map<F: Fn(f32, f32) -> f32>(
        &self,
        a: &[f32],
        b: &[f32],
        out: &mut [f32],
        f: impl Fn(usize, usize) -> F + Sync,
    ) {
        assert!(
            a.len() == out.len() && b.len() == out.len(),
            "buffers of one layout"
        );
        let len = self.image_len();
        out.par_chunks_mut(len)
            .zip(a.par_chunks(len).zip(b.par_chunks(len)))
            .with_min_len(chunks_per_task(len))
            .enumerate()
            .for_each(|(n, (out, (a, b)))| {
                let planes = out.chunks_mut(self.pixels).zip(a.chunks(self.pixels));
                for (c, ((out, a), b)) in planes.zip(b.chunks(self.pixels)).enumerate() {
                    let f = f(n, c);
                    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                        *o += f(x, y);
                    }
                }
            });
    }
}

fn add_all<const N: usize>(sums: &[[f64; N]]) -> [f64; N] {
    let mut total = [0.0; N];
    for s in sums {
        total.iter_mut().zip(s).for_each(|(t, s)| *t += s);
    }
    total
}

/// The sums of `term(a[i], b[i])` over one plane, in `LANES` running sums.
fn plane_sum<const N: usize>(
    a: &[f32],
    b: &[f32],
    term: impl Fn(f32, f32) -> [f32; N],
) -> [f64; N] {
    let mut lanes = [[0.0f32; N]; LANES];
    let (a_blocks, b_blocks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let rest = a_blocks.remainder().iter().zip(b_blocks.remainder());
    for (a, b) in a_blocks.zip(b_blocks) {
        for (lane, (&x, &y)) in lanes.iter_mut().zip(a.iter().zip(b)) {
            lane.iter_mut().zip(term(x, y)).for_each(|(s, t)| *s += t);
        }
    }
    for (lane, (&x, &y)) in lanes.iter_mut().zip(rest) {
        lane.iter_mut().zip(term(x, y)).for_each(|(s, t)| *s += t);
    }
    let mut sum = [0.0f64; N];
    for lane in lanes {
        sum.iter_mut().zip(lane).for_each(|(s, l)| *s += l as f64);
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_and_maps_go_channel_by_channel() {
        // 3 images, 2 channels, 11 pixels (not a multiple of the lanes).
        let layout = Channels {
            channels: 2,
            pixels: 11,
        };
        let x: Vec<f32> = (0..66).map(|i| (i as f32 * 0.7).sin()).collect();
        let channel = |i: usize| (i / 11) % 2;
        let sums = layout.sums(&x, &x, |_, _| |v, _| [v, v * v]);
        for c in 0..2 {
            let of_c = x.iter().enumerate().filter(|(i, _)| channel(*i) == c);
            let (s, s2) = of_c.fold((0.0, 0.0), |(s, s2), (_, &v)| (s + v, s2 + v * v));
            assert!((sums[c][0] - s as f64).abs() < 1e-5, "{sums:?}");
            assert!((sums[c][1] - s2 as f64).abs() < 1e-5, "{sums:?}");
        }
        let mut out = vec![1.0; 66];
        layout.add_map(&x, &x, &mut out, |n, c| {
            move |v, w| (n * 100 + c * 10) as f32 + v * w
        });
        for (i, o) in out.iter().enumerate() {
            let expected = 1.0 + ((i / 22) * 100 + channel(i) * 10) as f32 + x[i] * x[i];
            assert!((o - expected).abs() < 1e-6);
        }
    }
}
