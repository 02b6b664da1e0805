//! §3 of notebook `03_generalization`: "Understanding deep learning requires rethinking
//! generalization" (Zhang, Bengio, Hardt, Recht and Vinyals, 2017). The same network that
//! learns MNIST also memorizes MNIST with its labels replaced by random ones: fitting the
//! training set says nothing, by itself, about the test set.

use super::{fit_mnist, Fitted, MnistMlp, Recipe};
use crate::data::ImageSet;
use crate::Error;
use dfdx::prelude::*;
use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};

/// `images` with the labels of `fraction` of them (chosen with `seed`, rounded) replaced by
/// classes drawn uniformly at random, independently of the images, as Zhang et al. (2017)
/// corrupt labels (a random class equals the true one a tenth of the time, as it equals
/// each other class: it carries no information). Notebook `03_generalization` §3.
pub fn corrupt_labels(images: &ImageSet, fraction: f64, seed: u64) -> Result<ImageSet, Error> {
    let classes = images.class_names.len();
    if !(0.0..=1.0).contains(&fraction) || classes == 0 {
        return Err(Error::InvalidArgument {
            what: "the fraction of labels to corrupt",
            expected: "between 0 and 1, of images with at least one class",
            got: format!("{fraction} of images with {classes} classes"),
        });
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut order: Vec<usize> = (0..images.len()).collect();
    order.shuffle(&mut rng);
    let n = (fraction * images.len() as f64).round() as usize;
    let mut corrupted = images.clone();
    for &i in &order[..n] {
        corrupted.labels[i] = rng.gen_range(0..classes);
    }
    Ok(corrupted)
}

/// One network of §3's sweep: the fraction of its training labels that were random, and
/// how it did.
#[derive(Clone, Debug, PartialEq)]
pub struct CorruptedRun {
    pub fraction: f64,
    pub fitted: Fitted,
}

impl CorruptedRun {
    /// The first epoch whose mean training accuracy reached `level`, if any did: how long
    /// memorizing took (Zhang et al.'s Figure 1b).
    pub fn epochs_to(&self, level: f32) -> Option<usize> {
        let epochs = &self.fitted.history.epochs;
        epochs
            .iter()
            .find(|e| e.train_accuracy >= level)
            .map(|e| e.epoch)
    }
}

/// The hidden width of §3's network: 784 → 512 → 512 → 10, enough to memorize 500 labels.
pub const HIDDEN: usize = 512;

/// Trains a fresh [`MnistMlp`]`<`[`HIDDEN`]`>` (the same initial weights each time) on
/// `train` with each fraction of `fractions` of its labels corrupted, testing on `test`'s
/// true labels (§3). Not generic, so a notebook cell compiles none of the training code.
pub fn corruption_sweep(
    train: &ImageSet,
    test: &ImageSet,
    fractions: &[f64],
    recipe: Recipe,
    seed: u64,
) -> Result<Vec<CorruptedRun>, Error> {
    fractions
        .iter()
        .map(|&fraction| {
            let labels = corrupt_labels(train, fraction, seed)?;
            let mut model = Cpu::seed_from_u64(seed).build_module::<MnistMlp<HIDDEN>, f32>();
            let fitted = fit_mnist(&mut model, &labels, test, recipe, seed)?;
            Ok(CorruptedRun { fraction, fitted })
        })
        .collect()
}

/// The recipe §3 trains with: Adam at 1e-3, batches of 50, 25 epochs; 500 random labels
/// are memorized in about 15.
pub const NOTEBOOK_RECIPE: Recipe = Recipe {
    lr: 1e-3,
    batch_size: 50,
    epochs: 25,
    until_train_loss: None,
    test_every_epoch: false,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generalization::mnist_subsets;

    #[test]
    fn corruption_changes_about_the_stated_fraction_of_labels() {
        let (train, _) = mnist_subsets(1000, 1, 0).unwrap();
        let changed = |f| {
            let c = corrupt_labels(&train, f, 0).unwrap();
            let n = c.labels.iter().zip(&train.labels).filter(|(a, b)| a != b);
            n.count() as f64 / 1000.0
        };
        assert_eq!(changed(0.0), 0.0);
        // A random class equals the true one a tenth of the time.
        assert!((changed(1.0) - 0.9).abs() < 0.04, "{}", changed(1.0));
        assert!((changed(0.5) - 0.45).abs() < 0.04, "{}", changed(0.5));
        assert_eq!(corrupt_labels(&train, 1.0, 0).unwrap().pixels, train.pixels);
        assert!(corrupt_labels(&train, 1.5, 0).is_err());
        assert!(corrupt_labels(&train, f64::NAN, 0).is_err());
    }

    #[test]
    fn the_network_memorizes_random_labels_but_learns_nothing_from_them() {
        let (train, test) = mnist_subsets(500, 8000, 0).unwrap();
        let runs = corruption_sweep(&train, &test, &[0.0, 1.0], NOTEBOOK_RECIPE, 0);
        let [clean, random] = <[CorruptedRun; 2]>::try_from(runs.unwrap()).unwrap();
        assert!(
            clean.fitted.test_accuracy > 0.8,
            "{:?}",
            clean.fitted.test_accuracy
        );
        assert!(random.fitted.train_accuracy >= 0.95, "{:?}", random.fitted);
        assert!(
            (random.fitted.test_accuracy - 0.1).abs() < 0.06,
            "{:?}",
            random.fitted
        );
        assert!(random.epochs_to(0.95).unwrap() > clean.epochs_to(0.95).unwrap());
    }
}
