//! §3–6: how good a frozen representation is, with few labels: a k-nearest-neighbour vote
//! and a linear probe (logistic regression) on the features of the labelled images, both
//! scored on the test images.

use crate::data::{MiniBatches, Points2d, Standardizer};
use crate::optim::Method;
use crate::runtime::device;
use crate::train::{evaluate, fit, Classification, Loss, TrainConfig};
use crate::Error;
use dfdx::optim::WeightDecay;
use dfdx::prelude::*;
use linfa::traits::{Fit, Predict};
use linfa::DatasetBase;
use linfa_reduction::Pca;
use ndarray::Array2;

/// One vector per image (row-major, `dim` wide), with the image's class: what notebook
/// `07_self_supervised` probes and maps.
#[derive(Clone, Debug, PartialEq)]
pub struct Features {
    pub values: Vec<f32>,
    pub dim: usize,
    pub labels: Vec<usize>,
}

impl Features {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }

    /// Every row minus `mean`.
    pub fn centered(&self, mean: &[f32]) -> Features {
        let values = self
            .values
            .chunks(self.dim)
            .flat_map(|row| row.iter().zip(mean).map(|(v, m)| v - m))
            .collect();
        Features {
            values,
            ..self.clone()
        }
    }

    /// Every row divided by its Euclidean norm.
    pub fn unit_rows(&self) -> Features {
        let values = (0..self.len())
            .flat_map(|i| {
                let row = self.row(i);
                let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                row.iter().map(move |v| v / norm)
            })
            .collect();
        Features {
            values,
            ..self.clone()
        }
    }
}

impl Features {
    /// The features projected on their first two principal components (linfa's PCA), each
    /// point labelled with its class: a map of the representation.
    pub fn pca_map(&self) -> Result<Points2d, Error> {
        let records =
            Array2::from_shape_fn((self.len(), self.dim), |(i, j)| f64::from(self.row(i)[j]));
        let pca = Pca::params(2)
            .fit(&DatasetBase::from(records.clone()))
            .map_err(|e| Error::InvalidArgument {
                what: "a PCA map",
                expected: "at least two distinct feature vectors",
                got: e.to_string(),
            })?;
        let projected: Array2<f64> = pca.predict(&records);
        Ok(Points2d {
            xy: projected.rows().into_iter().map(|r| [r[0], r[1]]).collect(),
            labels: self.labels.clone(),
        })
    }
}

/// The classes an image set has: MNIST's and Fashion-MNIST's ten.
pub const CLASSES: usize = 10;

/// Neighbours a k-NN vote counts, and the temperature of its weights: the protocol of
/// DINO's and InstDisc's evaluations (Wu et al., 2018), fixed rather than tuned.
pub const KNN_K: usize = 20;
pub const KNN_TEMPERATURE: f32 = 0.07;

/// Notebook `07_self_supervised` §3–6: the accuracy on `test` of a weighted k-NN vote among `train`'s labelled features: each
/// test vector's [`KNN_K`] most cosine-similar training vectors vote for their class with
/// weight `exp(similarity / 0.07)`.
pub fn knn_accuracy(train: &Features, test: &Features) -> Result<f32, Error> {
    check_widths(train, test)?;
    let mean: Vec<f32> = (0..train.dim)
        .map(|j| (0..train.len()).map(|i| train.row(i)[j]).sum::<f32>() / train.len() as f32)
        .collect();
    let (train, test) = (
        train.centered(&mean).unit_rows(),
        test.centered(&mean).unit_rows(),
    );
    let k = KNN_K.min(train.len());
    let correct = (0..test.len())
        .filter(|&i| {
            let query = test.row(i);
            let mut similar: Vec<(f32, usize)> = (0..train.len())
                .map(|j| (dot(query, train.row(j)), train.labels[j]))
                .collect();
            similar.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
            let mut votes = [0.0f32; CLASSES];
            for &(s, label) in &similar[..k] {
                votes[label] += (s / KNN_TEMPERATURE).exp();
            }
            crate::train::argmax(&votes) == test.labels[i]
        })
        .count();
    Ok(correct as f32 / test.len().max(1) as f32)
}

/// The weight decays (L2) the linear probe chooses among, on the validation images.
pub const PROBE_DECAYS: [f64; 3] = [1e-4, 1e-2, 1e-1];
/// The linear probe's training steps.
pub const PROBE_STEPS: usize = 300;

/// A linear probe's result: the weight decay the validation images chose and the test
/// accuracy with it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProbeResult {
    pub decay: f64,
    pub validation: f32,
    pub test: f32,
}

/// Notebook `07_self_supervised` §3–6: logistic regression on standardised features (statistics from `train`): Adam at 0.01,
/// [`PROBE_STEPS`] steps on batches of up to 100, trained once per weight decay in
/// [`PROBE_DECAYS`]; the decay with the best `validation` accuracy gives the reported
/// `test` accuracy.
pub fn linear_probe(
    train: &Features,
    validation: &Features,
    test: &Features,
    seed: u64,
) -> Result<ProbeResult, Error> {
    check_widths(train, validation)?;
    check_widths(train, test)?;
    match train.dim {
        64 => probe::<64>(train, validation, test, seed),
        128 => probe::<128>(train, validation, test, seed),
        784 => probe::<784>(train, validation, test, seed),
        other => Err(Error::ShapeMismatch {
            what: "the probe's feature width",
            expected: "64, 128 or 784 (the widths the course's encoders and images have)".into(),
            got: other.to_string(),
        }),
    }
}

fn probe<const D: usize>(
    train: &Features,
    validation: &Features,
    test: &Features,
    seed: u64,
) -> Result<ProbeResult, Error> {
    let scaler = Standardizer::fit(&train.values, D)?;
    let dev = device(seed);
    let batches = |f: &Features, batch: usize| -> Result<MiniBatches<D>, Error> {
        MiniBatches::new(
            &dev,
            scaler.transform(&f.values)?,
            f.labels.clone(),
            batch,
            seed,
        )
    };
    let (train_set, validation_set, test_set) = (
        batches(train, 100)?,
        batches(validation, 1000)?,
        batches(test, 1000)?,
    );
    let epochs = PROBE_STEPS.div_ceil(train_set.batches_per_epoch());
    let mut best: Option<ProbeResult> = None;
    for decay in PROBE_DECAYS {
        let mut model = dev.build_module::<Linear<D, CLASSES>, f32>();
        let mut adam = Method::Adam
            .at(0.01)
            .weight_decay(WeightDecay::L2(decay))
            .build(&model);
        let objective = Classification::<D, CLASSES> {
            test: None,
            loss: Loss::CrossEntropy,
        };
        fit(
            &mut model,
            adam.as_mut(),
            &train_set,
            objective,
            &TrainConfig::new(epochs).quiet(),
        )?;
        let (_, on_validation) = evaluate(&model, &validation_set, Loss::CrossEntropy)?;
        if best.is_none_or(|b| on_validation > b.validation) {
            let (_, on_test) = evaluate(&model, &test_set, Loss::CrossEntropy)?;
            best = Some(ProbeResult {
                decay,
                validation: on_validation,
                test: on_test,
            });
        }
    }
    best.ok_or(Error::InvalidArgument {
        what: "the probe's weight decays",
        expected: "at least one",
        got: "none".into(),
    })
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn check_widths(a: &Features, b: &Features) -> Result<(), Error> {
    if a.dim != b.dim || a.is_empty() || b.is_empty() {
        return Err(Error::ShapeMismatch {
            what: "the probe's features",
            expected: format!("non-empty sets of equal width ({} wide)", a.dim),
            got: format!("{} × {} and {} × {}", a.len(), a.dim, b.len(), b.dim),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two classes on two orthogonal directions, with a little jitter.
    fn clusters(n: usize, dim: usize) -> Features {
        let mut values = Vec::new();
        let labels: Vec<usize> = (0..n).map(|i| i % 2).collect();
        for (i, &label) in labels.iter().enumerate() {
            let mut row = vec![0.01 * (i % 7) as f32; dim];
            row[label] += 1.0;
            values.extend(row);
        }
        Features {
            values,
            dim,
            labels,
        }
    }

    #[test]
    fn knn_and_the_probe_separate_clusters() {
        let (train, test) = (clusters(40, 64), clusters(30, 64));
        assert_eq!(knn_accuracy(&train, &test).unwrap(), 1.0);
        let probe = linear_probe(&train, &test, &test, 0).unwrap();
        assert_eq!(probe.test, 1.0);
        assert!(linear_probe(&clusters(4, 3), &clusters(4, 3), &clusters(4, 3), 0).is_err());
    }
}
