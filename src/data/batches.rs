//! From data to dfdx tensors: shuffled mini-batches, one-hot targets, and standardized
//! features, used by every notebook that trains a dfdx model.

use super::images::ImageSet;
use crate::Error;
use dfdx::prelude::*;
use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};

/// A mini-batch: `(batch, F)` features and the batch's labels.
pub type Batch<const F: usize> = (Tensor<(usize, Const<F>), f32, Cpu>, Vec<usize>);

/// Seeded shuffled mini-batches of a `(len, F)` row-major feature matrix.
///
/// Each epoch visits every example exactly once, in an order drawn from the seed and the
/// epoch number: the same run gives the same batches, and epochs differ from each other.
/// The data is owned, so the batcher can live in a notebook variable across cells.
#[derive(Clone, Debug)]
pub struct MiniBatches<const F: usize> {
    dev: Cpu,
    features: Vec<f32>,
    labels: Vec<usize>,
    batch_size: usize,
    seed: u64,
}

impl<const F: usize> MiniBatches<F> {
    /// Batches of `batch_size` rows of `features` (`labels.len()` rows of `F` values each).
    pub fn new(
        dev: &Cpu,
        features: Vec<f32>,
        labels: Vec<usize>,
        batch_size: usize,
        seed: u64,
    ) -> Result<MiniBatches<F>, Error> {
        if features.len() != labels.len() * F {
            return Err(Error::ShapeMismatch {
                what: "the feature matrix",
                expected: format!(
                    "{} labels × {F} features = {}",
                    labels.len(),
                    labels.len() * F
                ),
                got: format!("{} values", features.len()),
            });
        }
        if batch_size == 0 {
            return Err(Error::ShapeMismatch {
                what: "the batch size",
                expected: "at least 1".to_owned(),
                got: "0".to_owned(),
            });
        }
        if labels.is_empty() {
            // A loss and accuracy averaged over nothing would read as real measurements.
            return Err(Error::ShapeMismatch {
                what: "the number of examples",
                expected: "at least 1".to_owned(),
                got: "0".to_owned(),
            });
        }
        Ok(MiniBatches {
            dev: dev.clone(),
            features,
            labels,
            batch_size,
            seed,
        })
    }

    /// Batches of flattened images; `F` must be the image's `height × width`.
    pub fn from_images(
        dev: &Cpu,
        images: &ImageSet,
        batch_size: usize,
        seed: u64,
    ) -> Result<MiniBatches<F>, Error> {
        if images.pixels_per_image() != F {
            return Err(Error::ShapeMismatch {
                what: "the feature width F",
                expected: format!(
                    "{}×{} = {} pixels per image",
                    images.height,
                    images.width,
                    images.pixels_per_image()
                ),
                got: F.to_string(),
            });
        }
        let (pixels, labels) = (images.pixels.clone(), images.labels.clone());
        MiniBatches::new(dev, pixels, labels, batch_size, seed)
    }

    /// The number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Batches per epoch; the last one is smaller when the batch size does not divide the data.
    pub fn batches_per_epoch(&self) -> usize {
        self.len().div_ceil(self.batch_size)
    }

    /// The batches of epoch `epoch`.
    pub fn epoch(&self, epoch: usize) -> impl Iterator<Item = Batch<F>> + '_ {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.shuffle(&mut StdRng::seed_from_u64(epoch_seed(self.seed, epoch)));
        let chunks: Vec<Vec<usize>> = order
            .chunks(self.batch_size)
            .map(<[usize]>::to_vec)
            .collect();
        chunks.into_iter().map(move |rows| self.gather(&rows))
    }

    fn gather(&self, rows: &[usize]) -> Batch<F> {
        let mut x = Vec::with_capacity(rows.len() * F);
        for &r in rows {
            x.extend_from_slice(&self.features[r * F..(r + 1) * F]);
        }
        let y = rows.iter().map(|&r| self.labels[r]).collect();
        (self.dev.tensor_from_vec(x, (rows.len(), Const::<F>)), y)
    }
}

/// A seed for each epoch: the golden-ratio multiplier spreads nearby epochs far apart.
fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Labels as one-hot rows `(labels.len(), C)`: the targets of a cross-entropy loss.
pub fn one_hot<const C: usize>(
    dev: &Cpu,
    labels: &[usize],
) -> Result<Tensor<(usize, Const<C>), f32, Cpu>, Error> {
    if let Some(&bad) = labels.iter().find(|&&l| l >= C) {
        return Err(Error::ShapeMismatch {
            what: "every label",
            expected: format!("below the number of classes C = {C}"),
            got: bad.to_string(),
        });
    }
    let mut rows = vec![0.0; labels.len() * C];
    for (i, &l) in labels.iter().enumerate() {
        rows[i * C + l] = 1.0;
    }
    Ok(dev.tensor_from_vec(rows, (labels.len(), Const::<C>)))
}

/// Per-feature standardization, `(x - mean) / std`, fit on the training split only so the
/// test split stays unseen, then applied to every split.
///
/// A feature that never varies (an MNIST corner pixel) gets `std = 1`: it becomes 0
/// instead of NaN.
#[derive(Clone, Debug, PartialEq)]
pub struct Standardizer {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Standardizer {
    /// The mean and (population) standard deviation of each of the `width` columns of a
    /// row-major feature matrix.
    pub fn fit(features: &[f32], width: usize) -> Result<Standardizer, Error> {
        if width == 0 || features.is_empty() || !features.len().is_multiple_of(width) {
            return Err(Error::ShapeMismatch {
                what: "the training features",
                expected: format!("one or more whole rows of {width} values"),
                got: format!("{} values", features.len()),
            });
        }
        let rows = (features.len() / width) as f64;
        let mut mean = vec![0.0f64; width];
        let mut var = vec![0.0f64; width];
        for row in features.chunks(width) {
            row.iter()
                .zip(&mut mean)
                .for_each(|(&x, m)| *m += f64::from(x) / rows);
        }
        for row in features.chunks(width) {
            for ((&x, m), v) in row.iter().zip(&mean).zip(&mut var) {
                *v += (f64::from(x) - m).powi(2) / rows;
            }
        }
        let std = var
            .iter()
            .zip(&mean)
            .map(|(v, m)| {
                let s = v.sqrt();
                if s > 1e-7 * (1.0 + m.abs()) {
                    s as f32
                } else {
                    1.0
                }
            })
            .collect();
        let mean = mean.iter().map(|&m| m as f32).collect();
        Ok(Standardizer { mean, std })
    }

    /// The number of features it was fit on.
    pub fn width(&self) -> usize {
        self.mean.len()
    }

    /// `features` (whole rows of [`Standardizer::width`] values) standardized.
    pub fn transform(&self, features: &[f32]) -> Result<Vec<f32>, Error> {
        let width = self.width();
        if !features.len().is_multiple_of(width) {
            return Err(Error::ShapeMismatch {
                what: "the features to standardize",
                expected: format!("whole rows of {width} values"),
                got: format!("{} values", features.len()),
            });
        }
        Ok(features
            .chunks(width)
            .flat_map(|row| {
                row.iter()
                    .zip(&self.mean)
                    .zip(&self.std)
                    .map(|((x, m), s)| (x - m) / s)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// 10 examples of 3 features: row `i` is `[i, 10 i, 7]`, label `i % 3`.
    fn toy() -> (Vec<f32>, Vec<usize>) {
        let x = (0..10)
            .flat_map(|i| [i as f32, 10.0 * i as f32, 7.0])
            .collect();
        (x, (0..10).map(|i| i % 3).collect())
    }

    fn first_column(batch: &Batch<3>) -> Vec<usize> {
        batch.0.as_vec().chunks(3).map(|r| r[0] as usize).collect()
    }

    #[test]
    fn an_epoch_covers_every_example_once_with_its_label() {
        let (x, y) = toy();
        let batches = MiniBatches::<3>::new(&Cpu::default(), x, y, 4, 1).unwrap();
        assert_eq!(batches.batches_per_epoch(), 3);
        let epoch: Vec<Batch<3>> = batches.epoch(0).collect();
        assert_eq!(
            epoch.iter().map(|b| b.1.len()).collect::<Vec<_>>(),
            [4, 4, 2]
        );
        let mut seen = Vec::new();
        for batch in &epoch {
            let rows = first_column(batch);
            assert!(rows.iter().zip(&batch.1).all(|(r, l)| r % 3 == *l));
            seen.extend(rows);
        }
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn epochs_differ_but_repeat_for_the_same_seed() {
        let (x, y) = toy();
        let batches = MiniBatches::<3>::new(&Cpu::default(), x, y, 10, 1).unwrap();
        let order = |e: usize| first_column(&batches.epoch(e).next().unwrap());
        let orders: HashSet<Vec<usize>> = (0..5).map(order).collect();
        assert_eq!(orders.len(), 5);
        assert_eq!(order(3), order(3));
    }

    #[test]
    fn a_wrong_feature_width_is_an_error() {
        let (x, y) = toy();
        assert!(MiniBatches::<4>::new(&Cpu::default(), x, y, 4, 1).is_err());
        let images = ImageSet {
            pixels: vec![0.0; 2 * 6],
            labels: vec![0, 1],
            height: 2,
            width: 3,
            class_names: vec!["a".into(), "b".into()],
        };
        assert!(MiniBatches::<6>::from_images(&Cpu::default(), &images, 1, 0).is_ok());
        let err = MiniBatches::<4>::from_images(&Cpu::default(), &images, 1, 0).unwrap_err();
        assert!(err.to_string().contains("2×3 = 6"), "{err}");
    }

    #[test]
    fn one_hot_puts_a_single_one_per_row() {
        let dev = Cpu::default();
        let t = one_hot::<3>(&dev, &[2, 0]).unwrap();
        assert_eq!(t.as_vec(), [0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
        assert!(one_hot::<3>(&dev, &[3]).is_err());
    }

    #[test]
    fn standardized_features_have_mean_0_and_std_1_and_constants_become_0() {
        let (x, _) = toy();
        let scaler = Standardizer::fit(&x, 3).unwrap();
        assert_eq!(scaler.std[2], 1.0);
        let z = scaler.transform(&x).unwrap();
        for j in 0..3 {
            let column: Vec<f32> = z.iter().skip(j).step_by(3).copied().collect();
            let mean = column.iter().sum::<f32>() / 10.0;
            let var = column.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 10.0;
            assert!(mean.abs() < 1e-6, "{j}: {mean}");
            let expected = if j == 2 { 0.0 } else { 1.0 };
            assert!((var.sqrt() - expected).abs() < 1e-5, "{j}: {var}");
        }
        assert!(z.iter().all(|v| v.is_finite()));
        assert!(scaler.transform(&[1.0, 2.0]).is_err());
        assert!(Standardizer::fit(&[], 3).is_err());
    }
}
