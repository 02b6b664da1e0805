//! Swapping the two middle axes of a 4-d tensor, (b, x, y, d) → (b, y, x, d), as one op
//! that moves whole rows of `d` values: how multi-head attention splits and merges its
//! heads (notebook `05_attention` §3).

use super::op::{output_buffer, record, values};
use crate::Error;
use dfdx::prelude::*;

type Rank4Dyn<T = NoneTape> = Tensor<(usize, usize, usize, usize), f32, Cpu, T>;

/// (b, x, y, d) → (b, y, x, d), copied into a new contiguous tensor, on the tape: what
/// [`swap_middle_axes_reference`] (dfdx's `permute` and `contiguous`) computes, one row of
/// `d` values at a time rather than one value at a time through a strided index.
/// Notebook `05_attention` §3 splits and merges heads with it.
pub fn swap_middle_axes<T: Tape<f32, Cpu>>(x: Rank4Dyn<T>) -> Result<Rank4Dyn<T>, Error> {
    let (b, rows, cols, d) = *x.shape();
    let (x, tape) = x.try_contiguous()?.split_tape();
    let mut out = output_buffer(x.device(), b * rows * cols * d)?;
    swap_rows(&values(&x), (rows, cols, d), &mut out, |o, x| {
        o.copy_from_slice(x)
    });
    let out = record(&x, [], tape, out, (b, cols, rows, d), move |g, gx, []| {
        swap_rows(g, (cols, rows, d), gx, |gx, g| {
            gx.iter_mut().zip(g).for_each(|(gx, g)| *gx += g)
        });
    })?;
    Ok(out)
}

/// The readable version of [`swap_middle_axes`]: dfdx's permutation of the axes, then a
/// contiguous copy. Notebook `05_attention` §3.
pub fn swap_middle_axes_reference<T: Tape<f32, Cpu>>(x: Rank4Dyn<T>) -> Rank4Dyn<T> {
    x.permute::<_, Axes4<0, 2, 1, 3>>().contiguous()
}

/// Applies `f(out row, x row)` to each `d`-long row of `x`, (batch, rows, cols, d), and the
/// row of `out`, (batch, cols, rows, d), it moves to.
fn swap_rows(
    x: &[f32],
    (rows, cols, d): (usize, usize, usize),
    out: &mut [f32],
    f: impl Fn(&mut [f32], &[f32]),
) {
    for (i, x) in x.chunks_exact(d).enumerate() {
        let (batch, row, col) = (i / (rows * cols), i / cols % rows, i % cols);
        f(&mut out[((batch * cols + col) * rows + row) * d..][..d], x);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_in_values_and_gradients_to_the_bit() {
        let dev = Cpu::seed_from_u64(0);
        let x: Rank4Dyn = dev.sample_normal_like(&(2, 3, 4, 5));
        let r: Rank4Dyn = dev.sample_normal_like(&(2, 4, 3, 5));
        let ours = swap_middle_axes(x.leaky_trace()).unwrap();
        let theirs = swap_middle_axes_reference(x.leaky_trace());
        assert_eq!(ours.as_vec(), theirs.as_vec());
        let ours = (ours * r.clone()).sum().backward();
        let theirs = (theirs * r).sum().backward();
        assert_eq!(ours.get(&x).as_vec(), theirs.get(&x).as_vec());
    }
}
