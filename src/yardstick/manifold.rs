//! Precision and recall of a generative model (Kynkäänniemi et al., 2019): each set of
//! features stands for its manifold, the union of balls around its points reaching each
//! point's k-th nearest neighbour. Precision asks how many generated samples land on the
//! real manifold (are they realistic?); recall, how many real samples land on the
//! generated one (is the variety there?).

use super::frechet::check_features;
use crate::Error;
use ndarray::{s, Array1, Array2, ArrayView2, Axis};
use rayon::prelude::*;

/// Rows of query points per block of distances: a block is `ROWS × n` values, so memory
/// stays a few megabytes whatever the sizes, and blocks run in parallel.
const ROWS: usize = 256;

/// A set of points and, for each, the distance to its `k`-th nearest other point: the
/// union of those balls approximates the manifold the points were drawn from
/// (Kynkäänniemi et al., 2019). Notebook `08_vae_gan` §5 writes precision out on 2-D sets.
#[derive(Clone, Debug, PartialEq)]
pub struct Manifold {
    /// The points, `(n, d)`.
    pub points: Array2<f64>,
    /// `radii[i]`: Euclidean distance from point `i` to its `k`-th nearest neighbour among
    /// the other points, `(n,)`.
    pub radii: Array1<f64>,
    /// The neighbour that sets the radii.
    pub k: usize,
}

impl Manifold {
    /// The manifold of `points` (`(n, d)`, finite, `n > k ≥ 1`).
    pub fn new(points: Array2<f64>, k: usize) -> Result<Manifold, Error> {
        if k == 0 {
            return Err(Error::InvalidArgument {
                what: "the neighbour k of a manifold",
                expected: "at least 1 (3 is the usual choice)",
                got: k.to_string(),
            });
        }
        check_features("the points of a manifold", &points, k + 1)?;
        let norms = squared_norms(points.view());
        let radii: Vec<f64> = blocks(points.nrows())
            .flat_map_iter(|start| {
                let rows = points.slice(s![start..(start + ROWS).min(points.nrows()), ..]);
                let distances = squared_distances(rows, points.view(), &norms);
                distances
                    .rows()
                    .into_iter()
                    .enumerate()
                    .map(|(i, row)| {
                        // The matrix product may lay its rows out in any order in memory:
                        // each row is copied out to be partly sorted.
                        let mut row = row.to_vec();
                        // A point is not its own neighbour.
                        row[start + i] = f64::INFINITY;
                        let (_, kth, _) = row.select_nth_unstable_by(k - 1, f64::total_cmp);
                        kth.sqrt()
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        Ok(Manifold {
            points,
            radii: Array1::from_vec(radii),
            k,
        })
    }

    /// The share of `queries`' rows (`(m, d)`) that lie inside at least one of the
    /// manifold's balls: precision when the manifold is the real samples' and the
    /// queries are generated, recall the other way round.
    pub fn coverage(&self, queries: &Array2<f64>) -> Result<f64, Error> {
        check_features("the points tested against a manifold", queries, 1)?;
        if queries.ncols() != self.points.ncols() {
            return Err(Error::ShapeMismatch {
                what: "the points tested against a manifold",
                expected: format!("{} features each, as the manifold's", self.points.ncols()),
                got: queries.ncols().to_string(),
            });
        }
        let norms = squared_norms(self.points.view());
        let squared_radii = self.radii.mapv(|r| r * r);
        let inside: usize = blocks(queries.nrows())
            .map(|start| {
                let rows = queries.slice(s![start..(start + ROWS).min(queries.nrows()), ..]);
                let distances = squared_distances(rows, self.points.view(), &norms);
                distances
                    .axis_iter(Axis(0))
                    .filter(|row| row.iter().zip(&squared_radii).any(|(d, r)| d <= r))
                    .count()
            })
            .sum();
        Ok(inside as f64 / queries.nrows() as f64)
    }
}

/// Precision and recall of generated samples against real ones (Kynkäänniemi et al.,
/// 2019). Notebook `08_vae_gan` §5.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PrecisionRecall {
    /// The share of generated samples inside the real manifold.
    pub precision: f64,
    /// The share of real samples inside the generated manifold.
    pub recall: f64,
}

/// Precision and recall of `generated` against `real` features (`(n, d)` each, more than
/// `k` rows), each manifold built from its `k`-th nearest neighbours (the paper uses 3).
/// Notebook `08_vae_gan` §5.
pub fn precision_recall(
    real: &Array2<f64>,
    generated: &Array2<f64>,
    k: usize,
) -> Result<PrecisionRecall, Error> {
    let real_manifold = Manifold::new(real.clone(), k)?;
    let generated_manifold = Manifold::new(generated.clone(), k)?;
    Ok(PrecisionRecall {
        precision: real_manifold.coverage(generated)?,
        recall: generated_manifold.coverage(real)?,
    })
}

/// The first row of each block of `n` rows, as a parallel iterator.
fn blocks(n: usize) -> rayon::iter::StepBy<rayon::range::Iter<usize>> {
    (0..n).into_par_iter().step_by(ROWS)
}

fn squared_norms(points: ArrayView2<f64>) -> Array1<f64> {
    points.map_axis(Axis(1), |row| row.dot(&row))
}

/// `‖a_i − b_j‖²` for every row `i` of `a` and `j` of `b`, as `‖a_i‖² + ‖b_j‖² − 2 a_i·b_j`:
/// one matrix product instead of a loop over pairs. Rounding can make a zero distance
/// slightly negative; it is clamped at 0.
fn squared_distances(a: ArrayView2<f64>, b: ArrayView2<f64>, b_norms: &Array1<f64>) -> Array2<f64> {
    let a_norms = squared_norms(a);
    let mut distances = a.dot(&b.t()) * -2.0;
    for (mut row, a_norm) in distances.axis_iter_mut(Axis(0)).zip(&a_norms) {
        for (d, b_norm) in row.iter_mut().zip(b_norms) {
            *d = (*d + a_norm + b_norm).max(0.0);
        }
    }
    distances
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array;
    use rand::{rngs::StdRng, SeedableRng};
    use rand_distr::{Distribution, Normal};

    /// `per_cluster` points around each of four centres 100 apart, spread 1.
    fn clusters(per_cluster: usize, centres: &[f64], seed: u64) -> Array2<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        let normal = Normal::new(0.0, 1.0).unwrap();
        Array::from_shape_fn((per_cluster * centres.len(), 3), |(i, _)| {
            centres[i / per_cluster] + normal.sample(&mut rng)
        })
    }

    #[test]
    fn a_subset_of_the_real_points_has_full_precision() {
        let real = clusters(50, &[0.0, 100.0, 200.0, 300.0], 0);
        let subset = real.slice(s![..120, ..]).to_owned();
        let pr = precision_recall(&real, &subset, 3).unwrap();
        assert_eq!(pr.precision, 1.0);
    }

    #[test]
    fn samples_collapsed_onto_one_cluster_are_precise_but_recall_little() {
        let real = clusters(50, &[0.0, 100.0, 200.0, 300.0], 1);
        let collapsed = clusters(200, &[100.0], 2);
        let pr = precision_recall(&real, &collapsed, 3).unwrap();
        assert!(pr.precision > 0.9, "{pr:?}");
        assert!(pr.recall <= 0.25, "one cluster of four: {pr:?}");
    }

    #[test]
    fn far_away_samples_have_no_precision_and_no_recall() {
        let real = clusters(50, &[0.0, 100.0], 3);
        let far = clusters(50, &[1000.0], 4);
        let pr = precision_recall(&real, &far, 3).unwrap();
        assert_eq!(
            pr,
            PrecisionRecall {
                precision: 0.0,
                recall: 0.0
            }
        );
    }

    #[test]
    fn the_radius_reaches_the_kth_nearest_other_point() {
        // Points on a line at 0, 1, 3, 6, 10: the second-nearest neighbours are at
        // distances 3, 2, 3, 4, 7.
        let points = Array::from_shape_vec((5, 1), vec![0.0, 1.0, 3.0, 6.0, 10.0]).unwrap();
        let manifold = Manifold::new(points, 2).unwrap();
        assert_eq!(manifold.radii.to_vec(), [3.0, 2.0, 3.0, 4.0, 7.0]);
        let queries = Array::from_shape_vec((3, 1), vec![-3.0, 17.0, 17.5]).unwrap();
        assert_eq!(manifold.coverage(&queries).unwrap(), 2.0 / 3.0);
    }

    #[test]
    fn too_few_points_for_k_is_an_error() {
        let real = clusters(3, &[0.0], 5);
        let message = Manifold::new(real, 3).unwrap_err().to_string();
        assert!(message.contains("at least 4 rows"), "{message}");
    }
}
