//! §4 of notebook `03_generalization`: double descent (Belkin, Hsu, Ma and Mandal, 2019;
//! Nakkiran et al., 2019). Least squares on random ReLU features of MNIST images: as the
//! number of features grows towards the number of training images, the test error rises
//! to a peak where the model can first fit every (noisy) label exactly; past it, the
//! minimum-norm fit gets better again.

use super::min_norm_least_squares;
use super::random_labels::corrupt_labels;
use crate::data::ImageSet;
use crate::train::accuracy;
use crate::Error;
use ndarray::{s, Array2};
use rand::{rngs::StdRng, SeedableRng};
use rand_distr::{Distribution, Normal};

/// A fixed random first layer: `count` ReLU units `max(0, w·x)` with weights drawn from
/// `N(0, 1/inputs)`. A model with `p` features uses the first `p` units, so smaller
/// models are nested in larger ones. Belkin et al. (2019) §3 use random ReLU features
/// too (as well as random Fourier features). Notebook `03_generalization` §4.
#[derive(Clone, Debug, PartialEq)]
pub struct RandomReluFeatures {
    /// `(count, inputs)`: one row of weights per unit.
    pub weights: Array2<f64>,
}

impl RandomReluFeatures {
    /// `count` units reading `inputs` numbers, drawn with `seed`.
    pub fn new(inputs: usize, count: usize, seed: u64) -> Result<RandomReluFeatures, Error> {
        if inputs == 0 || count == 0 {
            return Err(Error::InvalidArgument {
                what: "random features",
                expected: "at least one input and one unit",
                got: format!("{inputs} inputs, {count} units"),
            });
        }
        let normal = Normal::new(0.0, (1.0 / inputs as f64).sqrt()).expect("positive scale");
        let mut rng = StdRng::seed_from_u64(seed);
        let weights = Array2::from_shape_simple_fn((count, inputs), || normal.sample(&mut rng));
        Ok(RandomReluFeatures { weights })
    }

    /// The first `p` features of each image: `(images, p)`.
    pub fn features(&self, images: &ImageSet, p: usize) -> Result<Array2<f64>, Error> {
        let (count, inputs) = self.weights.dim();
        if p == 0 || p > count || images.pixels_per_image() != inputs {
            return Err(Error::ShapeMismatch {
                what: "a request for random features",
                expected: format!("between 1 and {count} features of images of {inputs} pixels"),
                got: format!(
                    "{p} features of images of {} pixels",
                    images.pixels_per_image()
                ),
            });
        }
        let pixels = images.pixels.iter().map(|&v| f64::from(v)).collect();
        let x = Array2::from_shape_vec((images.len(), inputs), pixels).map_err(|e| {
            Error::InvalidArgument {
                what: "the images",
                expected: "one row of pixels per label",
                got: e.to_string(),
            }
        })?;
        Ok(x.dot(&self.weights.slice(s![..p, ..]).t())
            .mapv(|v| v.max(0.0)))
    }
}

/// The feature counts §4 sweeps for 200 training images: dense around the interpolation
/// threshold (200), out to 20× past it.
pub const NOTEBOOK_FEATURES: [usize; 14] = [
    20, 50, 100, 150, 180, 200, 220, 250, 300, 400, 600, 1000, 2000, 4000,
];

/// The minimum-norm least-squares fit of one-hot labels on `features` random features
/// (§4), and its errors: the fraction of images misclassified (largest output taken as
/// the class) and the mean squared error of the outputs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FeatureFit {
    pub features: usize,
    pub train_error: f64,
    pub test_error: f64,
    pub test_squared_error: f64,
}

/// Fits a model for each count of `feature_counts` to `train` with `label_noise` of its
/// labels corrupted ([`corrupt_labels`]), and measures it on `test`'s true labels (§4).
pub fn feature_sweep(
    train: &ImageSet,
    test: &ImageSet,
    feature_counts: &[usize],
    label_noise: f64,
    seed: u64,
) -> Result<Vec<FeatureFit>, Error> {
    let most = feature_counts.iter().copied().max().unwrap_or(0);
    let units = RandomReluFeatures::new(train.pixels_per_image(), most, seed)?;
    let noisy = corrupt_labels(train, label_noise, seed)?;
    let classes = train.class_names.len();
    let one_hot = |labels: &[usize]| {
        Array2::from_shape_fn((labels.len(), classes), |(i, c)| f64::from(labels[i] == c))
    };
    let (train_targets, test_targets) = (one_hot(&noisy.labels), one_hot(&test.labels));
    let error = |outputs: &Array2<f64>, labels: &[usize]| {
        let logits: Vec<f32> = outputs.iter().map(|&v| v as f32).collect();
        1.0 - f64::from(accuracy(&logits, labels, classes))
    };
    feature_counts
        .iter()
        .map(|&p| {
            let train_features = units.features(train, p)?;
            let w = min_norm_least_squares(&train_features, &train_targets)?;
            let train_outputs = train_features.dot(&w);
            let test_outputs = units.features(test, p)?.dot(&w);
            Ok(FeatureFit {
                features: p,
                train_error: error(&train_outputs, &noisy.labels),
                test_error: error(&test_outputs, &test.labels),
                test_squared_error: super::mean_squared_error(&test_outputs, &test_targets)
                    * classes as f64,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generalization::mnist_subsets;

    #[test]
    fn test_error_peaks_at_the_interpolation_threshold_and_falls_beyond() {
        let (train, test) = mnist_subsets(200, 1000, 0).unwrap();
        let fits = feature_sweep(&train, &test, &NOTEBOOK_FEATURES, 0.2, 0).unwrap();
        let peak = fits
            .iter()
            .max_by(|a, b| a.test_error.total_cmp(&b.test_error))
            .unwrap();
        assert!((160..=240).contains(&peak.features), "{fits:?}");
        let widest = fits.last().unwrap();
        assert!(widest.test_error < peak.test_error - 0.2, "{fits:?}");
        assert_eq!(
            widest.train_error, 0.0,
            "past the threshold every label is fitted"
        );
    }

    #[test]
    fn features_are_nested_and_bad_requests_are_errors() {
        let (train, _) = mnist_subsets(5, 1, 0).unwrap();
        let units = RandomReluFeatures::new(784, 30, 0).unwrap();
        let (small, large) = (
            units.features(&train, 10).unwrap(),
            units.features(&train, 30).unwrap(),
        );
        assert_eq!(small, large.slice(s![.., ..10]));
        assert!(small.iter().all(|&v| v >= 0.0));
        assert!(units.features(&train, 31).is_err());
        assert!(units.features(&train, 0).is_err());
        assert!(RandomReluFeatures::new(0, 3, 0).is_err());
        let digits = crate::data::digits().unwrap();
        assert!(units.features(&digits, 10).is_err());
    }
}
