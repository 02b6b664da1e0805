//! The scores of word2vec and GloVe as one op: each chosen row of one embedding table
//! against its chosen rows of another, one dot product each. dfdx gathers the rows into new
//! tensors, broadcasts, multiplies and sums, each a generic pass that computes an index per
//! value, and its gather's backward pass adds one value at a time: most of a skip-gram
//! step (BENCHMARKS.md). Here each score is a dot product read from the tables in place,
//! and the backward pass adds each row's gradient into the table's where the row came from.

use super::op::{output_buffer, param, record, shape_error, values};
use crate::Error;
use dfdx::prelude::*;

/// `scores[b][k] = a[rows[b]] · c[columns[b·K + k]]`, with `K = columns.len() / rows.len()`
/// rows of `c` for each row of `a`, recorded on `a`'s tape. The gradients are gather's:
/// `∂L/∂a[rows[b]] += Σₖ g[b][k] · c[columns[b·K + k]]` and
/// `∂L/∂c[columns[b·K + k]] += g[b][k] · a[rows[b]]`, so a row chosen twice gets both.
/// Notebook `06_embeddings` §4 (skip-gram) and §5 (GloVe, with `K = 1`).
pub fn embedding_dots<const W: usize, const D: usize, T: Tape<f32, Cpu>>(
    a: Tensor<Rank2<W, D>, f32, Cpu, T>,
    c: &Tensor<Rank2<W, D>, f32, Cpu>,
    rows: &[usize],
    columns: &[usize],
) -> Result<Tensor<(usize, usize), f32, Cpu, T>, Error> {
    let per_row = check_indices::<W>(rows, columns)?;
    let (a, tape) = a.split_tape();
    let (a_values, c_values) = (values(&a), values(c));
    let mut out = output_buffer(a.device(), columns.len())?;
    for ((&i, js), out) in rows
        .iter()
        .zip(columns.chunks_exact(per_row))
        .zip(out.chunks_exact_mut(per_row))
    {
        for (&j, out) in js.iter().zip(out) {
            *out = dot(row::<D>(&a_values, i), row::<D>(&c_values, j));
        }
    }
    let (rows, columns) = (rows.to_vec(), columns.to_vec());
    let shape = (rows.len(), per_row);
    Ok(record(
        &a,
        [param(c)],
        tape,
        out,
        shape,
        move |g, ga, [gc]| {
            for ((&i, js), g) in rows
                .iter()
                .zip(columns.chunks_exact(per_row))
                .zip(g.chunks_exact(per_row))
            {
                for (&j, &g) in js.iter().zip(g) {
                    add_scaled(&mut ga[i * D..(i + 1) * D], g, row::<D>(&c_values, j));
                    add_scaled(&mut gc[j * D..(j + 1) * D], g, row::<D>(&a_values, i));
                }
            }
        },
    )?)
}

/// The readable version of [`embedding_dots`]: dfdx's gathers of the rows, the product of
/// each row of `a` broadcast against its rows of `c`, and the sum over the features. The
/// tests hold [`embedding_dots`] to it; notebook `06_embeddings` §4 writes the skip-gram's
/// gradient out by hand against the crate's loss, which runs [`embedding_dots`].
pub fn embedding_dots_reference<const W: usize, const D: usize, T: Tape<f32, Cpu> + Merge<T>>(
    a: Tensor<Rank2<W, D>, f32, Cpu, T>,
    c: &Tensor<Rank2<W, D>, f32, Cpu>,
    rows: &[usize],
    columns: &[usize],
) -> Result<Tensor<(usize, usize), f32, Cpu, T>, Error> {
    let per_row = check_indices::<W>(rows, columns)?;
    let (b, dev) = (rows.len(), a.device().clone());
    let v = a.try_gather(dev.tensor_from_vec(rows.to_vec(), (b,)))?;
    let u = c
        .retaped::<T>()
        .try_gather(dev.tensor_from_vec(columns.to_vec(), (columns.len(),)))?
        .try_reshape_like(&(b, per_row, Const::<D>))?;
    Ok(
        (v.try_broadcast_like::<_, Axis<1>>(&(b, per_row, Const::<D>))? * u)
            .try_sum::<_, Axis<2>>()?,
    )
}

/// How many rows of the second table each row of the first is scored against; an error
/// for an index outside the tables or a count of columns that is not a multiple.
fn check_indices<const W: usize>(rows: &[usize], columns: &[usize]) -> Result<usize, Error> {
    if rows.is_empty() || !columns.len().is_multiple_of(rows.len()) {
        return Err(shape_error(
            "embedding_dots: columns",
            format!("a multiple of the {} rows, at least one", rows.len()),
            columns.len().to_string(),
        ));
    }
    if let Some(&i) = rows.iter().chain(columns).find(|&&i| i >= W) {
        return Err(shape_error(
            "embedding_dots: index",
            format!("< {W}"),
            i.to_string(),
        ));
    }
    Ok(columns.len() / rows.len())
}

/// Row `i` of a table of `D` columns.
fn row<const D: usize>(table: &[f32], i: usize) -> &[f32] {
    &table[i * D..(i + 1) * D]
}

/// `x · y`, summed in 8 interleaved partial sums that the compiler keeps in one vector
/// register (one running sum would wait on each addition in turn).
fn dot(x: &[f32], y: &[f32]) -> f32 {
    let mut sums = [0.0f32; 8];
    let (xs, ys) = (x.chunks_exact(8), y.chunks_exact(8));
    let tail: f32 = xs
        .remainder()
        .iter()
        .zip(ys.remainder())
        .map(|(a, b)| a * b)
        .sum();
    for (x, y) in xs.zip(ys) {
        for ((s, a), b) in sums.iter_mut().zip(x).zip(y) {
            *s += a * b;
        }
    }
    sums.iter().sum::<f32>() + tail
}

/// `out += g · x`.
fn add_scaled(out: &mut [f32], g: f32, x: &[f32]) {
    out.iter_mut().zip(x).for_each(|(o, x)| *o += g * x);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::assert_close_f32;

    /// Values and both tables' gradients against dfdx's gathers, with repeated rows (whose
    /// gradients add up) and a feature count that is not a multiple of 8.
    #[test]
    fn matches_the_reference_in_values_and_gradients() {
        let dev = Cpu::seed_from_u64(0);
        let a: Tensor<Rank2<7, 13>, f32, Cpu> = dev.sample_normal();
        let c: Tensor<Rank2<7, 13>, f32, Cpu> = dev.sample_normal();
        let (rows, columns) = ([3, 0, 3, 6], [1, 2, 2, 0, 6, 6, 3, 3, 5, 4, 1, 0]);
        let weights: Tensor<(usize, usize), f32, Cpu> = dev.sample_normal_like(&(4, 3));
        let ours = embedding_dots(a.leaky_trace(), &c, &rows, &columns).unwrap();
        let theirs = embedding_dots_reference(a.leaky_trace(), &c, &rows, &columns).unwrap();
        assert_close_f32("scores", &ours.as_vec(), &theirs.as_vec(), 1e-5);
        let ours = (ours * weights.clone()).sum().backward();
        let theirs = (theirs * weights).sum().backward();
        assert_close_f32(
            "∂/∂a",
            &ours.get(&a).as_vec(),
            &theirs.get(&a).as_vec(),
            1e-5,
        );
        assert_close_f32(
            "∂/∂c",
            &ours.get(&c).as_vec(),
            &theirs.get(&c).as_vec(),
            1e-5,
        );
    }

    #[test]
    fn names_an_index_outside_the_tables_and_a_ragged_batch() {
        let dev = Cpu::seed_from_u64(0);
        let a: Tensor<Rank2<4, 8>, f32, Cpu> = dev.sample_normal();
        let outside = embedding_dots(a.clone(), &a, &[0, 4], &[1, 2]).unwrap_err();
        assert!(outside.to_string().contains("< 4"), "{outside}");
        let ragged = embedding_dots(a.clone(), &a, &[0, 1], &[1, 2, 3]).unwrap_err();
        assert!(ragged.to_string().contains("multiple"), "{ragged}");
    }
}
