//! The losses of self-supervised learning, from the pairwise ones to the batch-wise ones.
//!
//! - §1: the contrastive pair loss (Hadsell, Chopra & LeCun, 2006) and the triplet loss
//!   (Schroff, Kalenichenko & Philbin, 2015), on distances, as plain functions.
//! - §2–3: InfoNCE (van den Oord, Li & Vinyals, 2018) over a matrix of critic scores, and
//!   SimCLR's NT-Xent (Chen et al., 2020), InfoNCE over the cosine similarities of two views
//!   per image; each as a dfdx op on the tape, with a plain-loop reference beside it.

use crate::Error;
use dfdx::prelude::*;

/// The contrastive loss of a pair at distance `distance`: `d²/2` when the pair is similar
/// (the two are pulled together), `max(0, margin − d)²/2` when it is not (pushed apart,
/// until they are `margin` apart: beyond it a dissimilar pair costs nothing). Notebook
/// `07_self_supervised` §1.
pub fn contrastive_pair(distance: f32, similar: bool, margin: f32) -> f32 {
    if similar {
        distance * distance / 2.0
    } else {
        (margin - distance).max(0.0).powi(2) / 2.0
    }
}

/// The triplet loss `max(0, d(a, p)² − d(a, n)² + margin)` from the anchor's distances to
/// its positive and its negative: zero once the negative is farther than the positive by
/// the margin (in squared distance). Notebook `07_self_supervised` §1; notebook
/// `02_optimization` §2 trains an embedding with it.
pub fn triplet(to_positive: f32, to_negative: f32, margin: f32) -> f32 {
    (to_positive.powi(2) - to_negative.powi(2) + margin).max(0.0)
}

/// Rows of scores, each row one anchor against `N` candidates.
pub type Scores<T> = Tensor<(usize, usize), f32, Cpu, T>;

/// InfoNCE: the mean over rows `i` of `−ln softmax(scores[i])[positive[i]]`, the
/// cross-entropy of picking each row's positive among its candidates. With `N` candidates
/// per row, `ln N − InfoNCE` is a lower bound on the mutual information between anchors and
/// positives (van den Oord et al., 2018). Notebook `07_self_supervised` §2.
pub fn info_nce<T: Tape<f32, Cpu>>(
    scores: Scores<T>,
    positive: &[usize],
) -> Result<Tensor<Rank0, f32, Cpu, T>, Error> {
    let (rows, columns) = *scores.shape();
    if positive.len() != rows || positive.iter().any(|&p| p >= columns) || rows == 0 {
        return Err(Error::ShapeMismatch {
            what: "InfoNCE's positives",
            expected: format!("one index below {columns} for each of the {rows} rows"),
            got: format!("{positive:?}"),
        });
    }
    let targets = one_hot_rows(scores.device(), positive, columns);
    let log_p = scores.log_softmax::<Axis<1>>();
    Ok((log_p * targets).sum::<Rank0, _>().negate() / rows as f32)
}

/// [`info_nce`] as plain loops: what the op computes, to read and to test it against.
pub fn info_nce_reference(scores: &[Vec<f32>], positive: &[usize]) -> f32 {
    let losses = scores.iter().zip(positive).map(|(row, &p)| {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let log_sum: f32 = row.iter().map(|s| (s - max).exp()).sum::<f32>().ln() + max;
        log_sum - row[p]
    });
    losses.sum::<f32>() / positive.len() as f32
}

/// Each row of `z` divided by its Euclidean norm (plus 1e-8), on the tape.
pub fn normalize_rows<const D: usize, T: Tape<f32, Cpu>>(
    z: Tensor<(usize, Const<D>), f32, Cpu, T>,
) -> Tensor<(usize, Const<D>), f32, Cpu, T> {
    let shape = *z.shape();
    let norms = z
        .with_empty_tape()
        .square()
        .sum::<(usize,), Axis<1>>()
        .sqrt()
        + 1e-8;
    z / norms.broadcast_like(&shape)
}

/// NT-Xent, SimCLR's loss: rows `i` and `i + B` of `z` (`2B` rows) are two views of one
/// image. Cosine similarities divided by `temperature`, a row's similarity with itself
/// removed (it would be the largest score, and the loss would teach nothing), then InfoNCE
/// with the other view as the positive and the `2B − 2` other rows as negatives, averaged
/// over all `2B` rows. Notebook `07_self_supervised` §3.
pub fn nt_xent<const D: usize, T: Tape<f32, Cpu>>(
    z: Tensor<(usize, Const<D>), f32, Cpu, T>,
    temperature: f32,
) -> Result<Tensor<Rank0, f32, Cpu, T>, Error> {
    let rows = z.shape().0;
    check_pairs(rows, temperature)?;
    let z = normalize_rows(z);
    // dfdx's product needs two distinct tensors: `× 1` makes the transposed side a copy.
    let zt = (z.with_empty_tape() * 1.0).permute::<_, Axes2<1, 0>>();
    let similarity = z.matmul(zt) / temperature;
    let self_mask = diagonal(similarity.device(), rows, -1e9);
    let scores = similarity + self_mask;
    info_nce(scores, &other_views(rows))
}

/// [`nt_xent`] as plain loops over the rows of `z` (`2B` rows of `D` values).
pub fn nt_xent_reference(z: &[Vec<f32>], temperature: f32) -> f32 {
    let unit: Vec<Vec<f32>> = z
        .iter()
        .map(|row| {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt() + 1e-8;
            row.iter().map(|v| v / norm).collect()
        })
        .collect();
    let cosine = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    let scores: Vec<Vec<f32>> = (0..unit.len())
        .map(|i| {
            (0..unit.len())
                .map(|j| match i == j {
                    true => -1e9,
                    false => cosine(&unit[i], &unit[j]) / temperature,
                })
                .collect()
        })
        .collect();
    info_nce_reference(&scores, &other_views(unit.len()))
}

/// For `2B` rows, the index of each row's other view: `i + B` for the first half, `i − B`
/// for the second.
pub fn other_views(rows: usize) -> Vec<usize> {
    let half = rows / 2;
    (0..rows).map(|i| (i + half) % rows).collect()
}

fn check_pairs(rows: usize, temperature: f32) -> Result<(), Error> {
    if rows < 4 || rows % 2 == 1 || temperature.is_nan() || temperature <= 0.0 {
        return Err(Error::InvalidArgument {
            what: "NT-Xent's batch",
            expected: "two views of at least two images (2B ≥ 4 rows) and a temperature > 0",
            got: format!("{rows} rows, temperature {temperature}"),
        });
    }
    Ok(())
}

/// A `rows × columns` matrix with a one in each row `i` at column `positive[i]`.
fn one_hot_rows(dev: &Cpu, positive: &[usize], columns: usize) -> Tensor<(usize, usize), f32, Cpu> {
    let mut values = vec![0.0; positive.len() * columns];
    positive
        .iter()
        .enumerate()
        .for_each(|(i, &p)| values[i * columns + p] = 1.0);
    dev.tensor_from_vec(values, (positive.len(), columns))
}

/// A `rows × rows` matrix with `value` on its diagonal and zeros elsewhere.
fn diagonal(dev: &Cpu, rows: usize, value: f32) -> Tensor<(usize, usize), f32, Cpu> {
    let mut values = vec![0.0; rows * rows];
    (0..rows).for_each(|i| values[i * rows + i] = value);
    dev.tensor_from_vec(values, (rows, rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::assert_close_f32;

    fn rows(values: &[f32], width: usize) -> Vec<Vec<f32>> {
        values.chunks(width).map(<[f32]>::to_vec).collect()
    }

    #[test]
    fn nt_xent_equals_the_loops_in_value_and_gradient() {
        let dev = Cpu::seed_from_u64(0);
        let z: Tensor<(usize, Const<5>), f32, Cpu> = dev.sample_normal_like(&(8, Const));
        let loss = nt_xent(z.leaky_trace(), 0.5).unwrap();
        assert!((loss.array() - nt_xent_reference(&rows(&z.as_vec(), 5), 0.5)).abs() < 1e-5);
        let grads = loss.backward();
        // The gradient by central differences on the reference.
        let base = z.as_vec();
        let numeric: Vec<f32> = (0..base.len())
            .map(|i| {
                let at = |d: f32| {
                    let mut v = base.clone();
                    v[i] += d;
                    nt_xent_reference(&rows(&v, 5), 0.5)
                };
                (at(1e-2) - at(-1e-2)) / 2e-2
            })
            .collect();
        assert_close_f32("the gradient", &grads.get(&z).as_vec(), &numeric, 2e-3);
    }

    #[test]
    fn info_nce_equals_the_loops_and_rejects_bad_positives() {
        let dev = Cpu::seed_from_u64(1);
        let s: Tensor<(usize, usize), f32, Cpu> = dev.sample_normal_like(&(3, 4));
        let positive = [2, 0, 3];
        let ours = info_nce(s.clone(), &positive).unwrap().array();
        assert!((ours - info_nce_reference(&rows(&s.as_vec(), 4), &positive)).abs() < 1e-5);
        assert!(info_nce(s, &[0, 4, 1]).is_err());
    }

    #[test]
    fn the_margin_bounds_what_a_dissimilar_pair_costs() {
        assert_eq!(contrastive_pair(3.0, false, 2.0), 0.0);
        assert!((contrastive_pair(1.0, false, 2.0) - 0.5).abs() < 1e-6);
        assert!((contrastive_pair(1.0, true, 2.0) - 0.5).abs() < 1e-6);
        assert_eq!(triplet(1.0, 2.0, 1.0), 0.0);
        assert!((triplet(1.0, 1.0, 1.0) - 1.0).abs() < 1e-6);
    }
}
