//! §5 of notebook `03_generalization`: overparameterization. MLPs of growing width, each
//! trained until it fits its training set (to the same training loss), generalize better
//! the wider they are, against the classical expectation of §1 that more capacity means
//! more overfitting (Neyshabur, Tomioka and Srebro, 2015; Neyshabur et al., 2019). Wider
//! networks also get there in fewer epochs.

use super::{fit_mnist, Fitted, MnistMlp, Recipe};
use crate::data::ImageSet;
use crate::Error;
use dfdx::prelude::*;

/// The hidden widths §5 compares, narrowest first; the widest has 100× the weights of
/// the narrowest.
pub const WIDTHS: [usize; 4] = [8, 32, 128, 512];

/// One network of §5's sweep: its hidden width, its number of weights, and how it did.
#[derive(Clone, Debug, PartialEq)]
pub struct WidthRun {
    pub width: usize,
    pub parameters: usize,
    pub fitted: Fitted,
}

/// An [`MnistMlp`] of each width in [`WIDTHS`], each trained with the same `recipe` and
/// `seed` on `train` (until the recipe's training loss, for a comparison at equal loss)
/// and measured on `train` and `test` (§5).
pub fn width_sweep(
    train: &ImageSet,
    test: &ImageSet,
    recipe: Recipe,
    seed: u64,
) -> Result<Vec<WidthRun>, Error> {
    Ok(vec![
        width_run::<8>(train, test, recipe, seed)?,
        width_run::<32>(train, test, recipe, seed)?,
        width_run::<128>(train, test, recipe, seed)?,
        width_run::<512>(train, test, recipe, seed)?,
    ])
}

fn width_run<const H: usize>(
    train: &ImageSet,
    test: &ImageSet,
    recipe: Recipe,
    seed: u64,
) -> Result<WidthRun, Error> {
    let mut model = Cpu::seed_from_u64(seed).build_module::<MnistMlp<H>, f32>();
    let parameters = model.num_trainable_params();
    let fitted = fit_mnist(&mut model, train, test, recipe, seed)?;
    Ok(WidthRun {
        width: H,
        parameters,
        fitted,
    })
}

/// The recipe §5 trains every width with: Adam at 1e-3, batches of 50, until the mean
/// training loss of an epoch falls below 0.01 (every training image then classified
/// correctly, or all but one), for at most 300 epochs; the narrowest width needs about 180.
pub const NOTEBOOK_RECIPE: Recipe = Recipe {
    lr: 1e-3,
    batch_size: 50,
    epochs: 300,
    until_train_loss: Some(0.01),
    test_every_epoch: false,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generalization::mnist_subsets;

    #[test]
    fn at_equal_training_loss_wider_tests_better_and_gets_there_sooner() {
        let (train, test) = mnist_subsets(1000, 8000, 0).unwrap();
        let runs = width_sweep(&train, &test, NOTEBOOK_RECIPE, 0).unwrap();
        assert_eq!(runs.iter().map(|r| r.width).collect::<Vec<_>>(), WIDTHS);
        assert_eq!(runs[0].parameters, 784 * 8 + 8 + 8 * 8 + 8 + 8 * 10 + 10);
        for r in &runs {
            let last = r.fitted.history.epochs.last().unwrap();
            assert!(last.train_loss < 0.01 && r.fitted.epochs() < 300, "{r:?}");
        }
        for pair in runs.windows(2) {
            let (narrow, wide) = (&pair[0].fitted, &pair[1].fitted);
            assert!(wide.epochs() < narrow.epochs(), "{pair:?}");
            assert!(
                wide.test_accuracy >= narrow.test_accuracy - 0.01,
                "{pair:?}"
            );
        }
        let (narrowest, widest) = (&runs[0].fitted, &runs[3].fitted);
        assert!(
            widest.test_accuracy > narrowest.test_accuracy + 0.03,
            "{runs:?}"
        );
    }
}
