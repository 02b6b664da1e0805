//! Notebook `03_generalization`: why a model that fits its training data can still fail on
//! new data, and why very large models often do not.
//!
//! One module per section: [`capacity`] (§1, under- and overfitting as polynomial degree
//! grows), [`dropout`](mod@dropout) (§2, Srivastava et al. 2014), [`random_labels`] (§3, Zhang et al.
//! 2017), [`double_descent`] (§4, Belkin et al. 2019; Nakkiran et al. 2019), [`width`]
//! (§5, overparameterization), [`lottery`] (§6, Frankle & Carbin 2019).
//!
//! Here, what the sections share: minimum-norm least squares ([`min_norm_least_squares`]),
//! solved with linfa's SVD (§1 and §4); small MNIST subsets
//! ([`mnist_subsets`]) and one way to train an MLP on them ([`fit_mnist`]) for the
//! sections that train networks.

pub mod capacity;
pub mod double_descent;
pub mod dropout;
pub mod lottery;
pub mod random_labels;
pub mod width;

use crate::data::{mnist, ImageSet, MiniBatches};
use crate::nn::ReLU;
use crate::optim::{Method, ScheduledOptimizer};
use crate::train::{evaluate, fit, Classification, Classifier, History, Loss, TrainConfig};
use crate::Error;
use dfdx::prelude::*;
use linfa_linalg::svd::SVD;
use ndarray::{Array1, Array2};

/// MNIST pixels per image, the input width of the networks here.
pub const PIXELS: usize = 28 * 28;

/// A LeNet-300-100-style MLP on MNIST with `H` units in each of its two hidden layers:
/// 784 → H ReLU → H ReLU → 10 logits (LeCun et al. 1998 used H = 300, 100).
pub type MnistMlp<const H: usize> = (
    (Linear<PIXELS, H>, ReLU),
    (Linear<H, H>, ReLU),
    Linear<H, 10>,
);

/// `n_train` and `n_test` distinct images of the MNIST file ([`mnist`]), drawn with
/// `seed`: the small training sets on which notebook `03_generalization` can overfit.
pub fn mnist_subsets(
    n_train: usize,
    n_test: usize,
    seed: u64,
) -> Result<(ImageSet, ImageSet), Error> {
    let all = mnist()?;
    if n_train == 0 || n_test == 0 || n_train + n_test > all.len() {
        return Err(Error::InvalidArgument {
            what: "the sizes of MNIST subsets",
            expected: "at least one image each, and together at most the 10,000 MNIST images",
            got: format!("{n_train} training and {n_test} test images"),
        });
    }
    let (rest, picked) = all.split((n_train + n_test) as f64 / all.len() as f64, seed)?;
    drop(rest);
    let train: Vec<usize> = (0..n_train).collect();
    let test: Vec<usize> = (n_train..n_train + n_test).collect();
    Ok((picked.subset(&train), picked.subset(&test)))
}

/// How a network here is trained: Adam at `lr`, batches of `batch_size`, `epochs` epochs.
/// Every section that trains networks sets one ([`dropout::NOTEBOOK_RECIPE`] and others).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Recipe {
    pub lr: f64,
    pub batch_size: usize,
    /// The number of epochs, or the most of them when `until_train_loss` is set.
    pub epochs: usize,
    /// Stop after the first epoch whose mean training loss falls below this: §5 compares
    /// widths trained to the same loss.
    pub until_train_loss: Option<f32>,
    /// Measure the test set after every epoch, for a curve (§2's figure); otherwise only
    /// once, at the end, which is all a check needs.
    pub test_every_epoch: bool,
}

/// A trained network's history and its final accuracy and loss on the whole training and
/// test sets, both measured without a tape (so with dropout off).
#[derive(Clone, Debug, PartialEq)]
pub struct Fitted {
    pub history: History,
    pub train_loss: f32,
    pub train_accuracy: f32,
    pub test_loss: f32,
    pub test_accuracy: f32,
    /// How many test images the accuracy was measured on: its standard error is
    /// `sqrt(a·(1 − a)/test_images)`.
    pub test_images: usize,
}

impl Fitted {
    /// How many epochs it trained for (fewer than the recipe's when it reached
    /// [`Recipe::until_train_loss`]).
    pub fn epochs(&self) -> usize {
        self.history.epochs.len()
    }

    /// The standard error of the test accuracy, as a binomial proportion over the test
    /// images: how far another test set of the same size would move it.
    pub fn test_standard_error(&self) -> f32 {
        let a = self.test_accuracy;
        (a * (1.0 - a) / self.test_images.max(1) as f32).sqrt()
    }

    /// Training accuracy minus test accuracy: how much the network overfits.
    pub fn gap(&self) -> f32 {
        self.train_accuracy - self.test_accuracy
    }
}

/// Trains `model` on MNIST images `train` following `recipe` (batches shuffled with
/// `seed`), then measures it on all of `train` and `test` in evaluation mode. Every
/// network of notebook `03_generalization` trains with it.
pub fn fit_mnist<M>(
    model: &mut M,
    train: &ImageSet,
    test: &ImageSet,
    recipe: Recipe,
    seed: u64,
) -> Result<Fitted, Error>
where
    M: Classifier<PIXELS, 10> + 'static,
{
    let mut adam = Method::Adam.at(recipe.lr).build(model);
    fit_mnist_with(model, adam.as_mut(), train, test, recipe, seed)
}

/// [`fit_mnist`] with an optimizer of one's own, such as §6's masked one
/// ([`lottery::Masked`]); the recipe's learning rate is set on it.
pub fn fit_mnist_with<M>(
    model: &mut M,
    optimizer: &mut dyn ScheduledOptimizer<M, f32>,
    train: &ImageSet,
    test: &ImageSet,
    recipe: Recipe,
    seed: u64,
) -> Result<Fitted, Error>
where
    M: Classifier<PIXELS, 10>,
{
    let target_ok = recipe
        .until_train_loss
        .is_none_or(|l| l.is_finite() && l > 0.0);
    if !(recipe.lr.is_finite() && recipe.lr > 0.0 && recipe.epochs > 0 && target_ok) {
        return Err(Error::InvalidArgument {
            what: "a training recipe",
            expected: "a finite learning rate > 0, at least one epoch, a target loss > 0",
            got: format!("{recipe:?}"),
        });
    }
    let dev = Cpu::seed_from_u64(seed);
    let batches = MiniBatches::<PIXELS>::from_images(&dev, train, recipe.batch_size, seed)?;
    let train_all = MiniBatches::<PIXELS>::from_images(&dev, train, 1000, seed)?;
    let test_all = MiniBatches::<PIXELS>::from_images(&dev, test, 1000, seed)?;
    optimizer.set_learning_rate(recipe.lr);
    let mut config = TrainConfig::new(recipe.epochs).quiet();
    if let Some(target) = recipe.until_train_loss {
        config = config.stop_when(move |e| e.train_loss < target);
    }
    let objective = Classification::<PIXELS, 10> {
        test: recipe.test_every_epoch.then_some(&test_all),
        loss: Loss::CrossEntropy,
    };
    let history = fit(model, optimizer, &batches, objective, &config)?;
    let (train_loss, train_accuracy) = evaluate(model, &train_all, Loss::CrossEntropy)?;
    let (test_loss, test_accuracy) = evaluate(model, &test_all, Loss::CrossEntropy)?;
    Ok(Fitted {
        history,
        train_loss,
        train_accuracy,
        test_loss,
        test_accuracy,
        test_images: test.len(),
    })
}

/// The minimum-norm solution `w` of `min ‖a·w − b‖²`: `w = V Σ⁺ Uᵀ b` from linfa-linalg's
/// SVD of `a` (rows: examples, columns: features; `b`: one column per target). Singular
/// values below `1e-10 ×` the largest count as zero, so an underdetermined system
/// (more features than examples) gets the interpolating `w` of least norm. Notebook
/// `03_generalization` fits polynomials (§1) and random features (§4) with it.
pub fn min_norm_least_squares(a: &Array2<f64>, b: &Array2<f64>) -> Result<Array2<f64>, Error> {
    if a.nrows() == 0 || a.ncols() == 0 || b.nrows() != a.nrows() {
        return Err(Error::ShapeMismatch {
            what: "a least-squares problem",
            expected: "a non-empty matrix and targets with one row per matrix row".to_owned(),
            got: format!("{:?} matrix, {:?} targets", a.dim(), b.dim()),
        });
    }
    if a.iter().chain(b.iter()).any(|v| !v.is_finite()) {
        return Err(Error::InvalidArgument {
            what: "a least-squares problem",
            expected: "finite numbers only",
            got: "NaN or infinity".to_owned(),
        });
    }
    let (u, sigma, vt) = a.svd(true, true).map_err(|e| Error::InvalidArgument {
        what: "the SVD of a least-squares matrix",
        expected: "to converge",
        got: e.to_string(),
    })?;
    let (u, vt) = (u.expect("asked for U"), vt.expect("asked for Vᵀ"));
    let cutoff = sigma.iter().fold(0.0_f64, |m, &s| m.max(s)) * 1e-10;
    let inverse: Array1<f64> = sigma.mapv(|s| if s > cutoff { 1.0 / s } else { 0.0 });
    // Uᵀb: (rank, targets), scaled row by row by Σ⁺, then back through V: (features, targets).
    let projected = u.t().dot(b) * &inverse.insert_axis(ndarray::Axis(1));
    Ok(vt.t().dot(&projected))
}

/// The mean squared error between two equally shaped arrays (every entry counts).
pub fn mean_squared_error(predicted: &Array2<f64>, target: &Array2<f64>) -> f64 {
    let diff = predicted - target;
    diff.iter().map(|d| d * d).sum::<f64>() / diff.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn least_squares_solves_a_square_system_and_fits_an_overdetermined_one() {
        let a = array![[2.0, 1.0], [1.0, 3.0]];
        let b = array![[5.0], [10.0]];
        let w = min_norm_least_squares(&a, &b).unwrap();
        assert!(
            (w[[0, 0]] - 1.0).abs() < 1e-9 && (w[[1, 0]] - 3.0).abs() < 1e-9,
            "{w}"
        );
        // A line through three points that are not collinear: the normal equations' answer.
        let a = array![[1.0, 0.0], [1.0, 1.0], [1.0, 2.0]];
        let b = array![[0.0], [1.0], [3.0]];
        let w = min_norm_least_squares(&a, &b).unwrap();
        let normal = array![[-1.0 / 6.0], [1.5]];
        assert!(mean_squared_error(&w, &normal) < 1e-18, "{w}");
    }

    #[test]
    fn an_underdetermined_system_gets_the_interpolant_of_least_norm() {
        // One equation, two unknowns: x + y = 2 → the least-norm answer is (1, 1).
        let w = min_norm_least_squares(&array![[1.0, 1.0]], &array![[2.0]]).unwrap();
        assert!(mean_squared_error(&w, &array![[1.0], [1.0]]) < 1e-18, "{w}");
        // A repeated column: rank-deficient, still the least-norm split.
        let a = array![[1.0, 1.0], [2.0, 2.0]];
        let w = min_norm_least_squares(&a, &array![[2.0], [4.0]]).unwrap();
        assert!(mean_squared_error(&w, &array![[1.0], [1.0]]) < 1e-18, "{w}");
    }

    #[test]
    fn bad_least_squares_problems_are_errors() {
        let empty = Array2::<f64>::zeros((0, 2));
        assert!(min_norm_least_squares(&empty, &Array2::zeros((0, 1))).is_err());
        assert!(min_norm_least_squares(&array![[1.0]], &array![[1.0], [2.0]]).is_err());
        assert!(min_norm_least_squares(&array![[f64::NAN]], &array![[1.0]]).is_err());
    }

    #[test]
    fn mnist_subsets_are_disjoint_and_bad_sizes_are_errors() {
        let (train, test) = mnist_subsets(30, 20, 0).unwrap();
        assert_eq!((train.len(), test.len()), (30, 20));
        assert!((0..20).all(|j| (0..30).all(|i| train.image(i) != test.image(j))));
        assert_eq!(mnist_subsets(30, 20, 0).unwrap().0, train);
        assert!(mnist_subsets(0, 20, 0).is_err());
        assert!(mnist_subsets(9_000, 1_001, 0).is_err());
    }

    #[test]
    fn fit_mnist_stops_at_the_target_loss_and_measures_test_only_when_asked() {
        let (train, test) = mnist_subsets(200, 200, 0).unwrap();
        let recipe = Recipe {
            lr: 3e-3,
            batch_size: 20,
            epochs: 50,
            until_train_loss: Some(0.05),
            test_every_epoch: false,
        };
        let mut model = Cpu::seed_from_u64(0).build_module::<MnistMlp<32>, f32>();
        let fitted = fit_mnist(&mut model, &train, &test, recipe, 0).unwrap();
        let losses: Vec<f32> = fitted.history.epochs.iter().map(|e| e.train_loss).collect();
        let (last, before) = losses.split_last().unwrap();
        assert!(
            *last < 0.05 && before.iter().all(|&l| l >= 0.05),
            "{losses:?}"
        );
        assert!(fitted.epochs() < 50, "{losses:?}");
        assert!(fitted
            .history
            .epochs
            .iter()
            .all(|e| e.test_accuracy.is_nan()));
        assert!(fitted.test_accuracy > 0.5, "{fitted:?}");
    }

    #[test]
    fn fit_mnist_learns_and_refuses_a_bad_schedule() {
        let (train, test) = mnist_subsets(200, 200, 0).unwrap();
        let recipe = Recipe {
            lr: 3e-3,
            batch_size: 20,
            epochs: 5,
            until_train_loss: None,
            test_every_epoch: true,
        };
        let mut model = Cpu::seed_from_u64(0).build_module::<MnistMlp<32>, f32>();
        let fitted = fit_mnist(&mut model, &train, &test, recipe, 0).unwrap();
        assert!(fitted.test_accuracy > 0.5, "{fitted:?}");
        assert_eq!(fitted.epochs(), 5);
        assert_eq!(fitted.history.epochs[4].test_accuracy, fitted.test_accuracy);
        let a = fitted.test_accuracy;
        let se = (a * (1.0 - a) / 200.0).sqrt();
        assert_eq!(
            (fitted.test_images, fitted.test_standard_error()),
            (200, se)
        );
        for bad in [
            Recipe { lr: 0.0, ..recipe },
            Recipe {
                epochs: 0,
                ..recipe
            },
            Recipe {
                batch_size: 0,
                ..recipe
            },
            Recipe {
                until_train_loss: Some(f32::NAN),
                ..recipe
            },
        ] {
            assert!(
                fit_mnist(&mut model, &train, &test, bad, 0).is_err(),
                "{bad:?}"
            );
        }
    }
}
