//! §6 of notebook `03_generalization`: the lottery ticket hypothesis (Frankle and Carbin,
//! 2019). Train a dense network, remove the weights of smallest magnitude, rewind the
//! survivors to their initial values and train again; repeated, this finds sparse
//! subnetworks ("winning tickets") that train to the dense network's accuracy, while the
//! same sparse structure with fresh random weights does worse.

use super::{fit_mnist_with, Fitted, Recipe, PIXELS};
use crate::data::ImageSet;
use crate::nn::ReLU;
use crate::optim::{Method, ScheduledOptimizer};
use crate::train::{parameters, set_parameters};
use crate::Error;
use dfdx::optim::OptimizerUpdateError;
use dfdx::prelude::*;
use dfdx::tensor::CpuError;

/// LeNet-300-100 (LeCun et al., 1998), the MLP Frankle and Carbin prune on MNIST:
/// 784 → 300 ReLU → 100 ReLU → 10 logits. Notebook `03_generalization` §6.
pub type LeNet300100 = (
    (Linear<PIXELS, 300>, ReLU),
    (Linear<300, 100>, ReLU),
    Linear<100, 10>,
);

/// [`LeNet300100`] built on the CPU with `f32` weights.
pub type Lenet = <LeNet300100 as BuildOnDevice<Cpu, f32>>::Built;

/// Each layer's `(inputs, outputs)`: in [`parameters`] order a layer is its weight
/// matrix (`outputs × inputs`) then its bias (`outputs`).
const LAYERS: [(usize, usize); 3] = [(PIXELS, 300), (300, 100), (100, 10)];

/// Whether each number of [`parameters`] of a [`Lenet`] is a weight (prunable) rather
/// than a bias (never pruned, as in Frankle and Carbin).
pub fn prunable() -> Vec<bool> {
    LAYERS
        .iter()
        .flat_map(|&(inputs, outputs)| {
            let weights = std::iter::repeat_n(true, inputs * outputs);
            weights.chain(std::iter::repeat_n(false, outputs))
        })
        .collect()
}

/// A mask over a [`Lenet`]'s [`parameters`]: `true` keeps the number, `false` holds it at 0.
pub type Mask = Vec<bool>;

/// `mask` with a further `fraction` of its surviving weights removed: those whose
/// magnitude in `trained` is smallest, compared across all layers (global pruning; the
/// paper prunes each layer by the same rate). Biases are never removed (§6).
pub fn prune(mask: &[bool], trained: &[f32], fraction: f64) -> Result<Mask, Error> {
    let can_prune = prunable();
    if mask.len() != can_prune.len() || trained.len() != can_prune.len() {
        return Err(Error::ShapeMismatch {
            what: "a mask and trained weights",
            expected: format!(
                "{} numbers each, one per parameter of LeNet-300-100",
                can_prune.len()
            ),
            got: format!("{} and {}", mask.len(), trained.len()),
        });
    }
    if !(0.0..=1.0).contains(&fraction) {
        return Err(Error::InvalidArgument {
            what: "the fraction of weights to prune",
            expected: "between 0 and 1, such as 0.2",
            got: fraction.to_string(),
        });
    }
    let mut alive: Vec<usize> = (0..mask.len())
        .filter(|&i| mask[i] && can_prune[i])
        .collect();
    alive.sort_by(|&a, &b| trained[a].abs().total_cmp(&trained[b].abs()));
    let remove = (fraction * alive.len() as f64).round() as usize;
    let mut pruned = mask.to_vec();
    for &i in &alive[..remove] {
        pruned[i] = false;
    }
    Ok(pruned)
}

/// The fraction of a mask's prunable weights still kept.
pub fn remaining(mask: &[bool]) -> f64 {
    let can_prune = prunable();
    let kept = mask
        .iter()
        .zip(&can_prune)
        .filter(|(&m, &p)| m && p)
        .count();
    kept as f64 / can_prune.iter().filter(|&&p| p).count().max(1) as f64
}

/// An optimizer that keeps a [`Lenet`]'s pruned weights at zero: after each step of the
/// wrapped optimizer, it multiplies the parameters by the mask (§6).
pub struct Masked {
    inner: Box<dyn ScheduledOptimizer<Lenet, f32>>,
    mask: Mask,
}

impl Masked {
    /// Adam at `lr` on `model`, under `mask`; fails unless the mask has one entry per
    /// parameter.
    pub fn adam(model: &Lenet, mask: Mask, lr: f64) -> Result<Masked, Error> {
        if mask.len() != model.num_trainable_params() {
            return Err(Error::ShapeMismatch {
                what: "a mask",
                expected: format!(
                    "{} entries, one per parameter",
                    model.num_trainable_params()
                ),
                got: mask.len().to_string(),
            });
        }
        let inner = Method::Adam.at(lr).build(model);
        Ok(Masked { inner, mask })
    }

    /// Zeroes the pruned numbers of `model`.
    fn apply(&self, model: &mut Lenet) -> Result<(), Error> {
        let masked: Vec<f32> = parameters(model)
            .iter()
            .zip(&self.mask)
            .map(|(&w, &keep)| if keep { w } else { 0.0 })
            .collect();
        set_parameters(model, &masked)
    }
}

impl Optimizer<Lenet, Cpu, f32> for Masked {
    fn update(
        &mut self,
        module: &mut Lenet,
        gradients: &Gradients<f32, Cpu>,
    ) -> Result<(), OptimizerUpdateError<CpuError>> {
        self.inner.update(module, gradients)?;
        // The mask's length was checked against the model when it was made.
        self.apply(module)
            .map_err(|_| OptimizerUpdateError::DeviceError(CpuError::WrongNumElements))
    }
}

impl ScheduledOptimizer<Lenet, f32> for Masked {
    fn learning_rate(&self) -> f64 {
        self.inner.learning_rate()
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.inner.set_learning_rate(lr);
    }
}

/// Trains the [`Lenet`] whose initial weights are `init`, under `mask` (§6).
pub fn train_masked(
    init: &[f32],
    mask: &[bool],
    train: &ImageSet,
    test: &ImageSet,
    recipe: Recipe,
    seed: u64,
) -> Result<(Fitted, Vec<f32>), Error> {
    let mut model = Cpu::default().build_module::<LeNet300100, f32>();
    set_parameters(&mut model, init)?;
    let mut optimizer = Masked::adam(&model, mask.to_vec(), recipe.lr)?;
    optimizer.apply(&mut model)?;
    let fitted = fit_mnist_with(&mut model, &mut optimizer, train, test, recipe, seed)?;
    Ok((fitted, parameters(&model)))
}

/// The recipe §6 trains every network with: Adam at 1.2e-3 (the paper's rate),
/// batches of 60 (the paper's), 8 epochs.
pub const NOTEBOOK_RECIPE: Recipe = Recipe {
    lr: 1.2e-3,
    batch_size: 60,
    epochs: 8,
    until_train_loss: None,
    test_every_epoch: false,
};

/// One round of §6's iterative pruning: how much was left, and the test accuracy of the
/// ticket (rewound to the original initial weights) and of the same mask with fresh
/// random weights.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PruningRound {
    pub remaining: f64,
    pub ticket_accuracy: f32,
    pub random_init_accuracy: f32,
}

/// Iterative magnitude pruning with rewinding (Frankle and Carbin's Algorithm): trains a
/// dense [`Lenet`] from `seed`'s initial weights, then `rounds` times removes `rate` of
/// the surviving weights by magnitude, rewinds the survivors to their initial values and
/// retrains; each round's mask is also trained from a fresh initialisation (seed
/// `seed + 1`). The first round is the dense network (§6).
pub fn iterative_pruning(
    train: &ImageSet,
    test: &ImageSet,
    rounds: usize,
    rate: f64,
    recipe: Recipe,
    seed: u64,
) -> Result<Vec<PruningRound>, Error> {
    let init = parameters(&Cpu::seed_from_u64(seed).build_module::<LeNet300100, f32>());
    let fresh = parameters(&Cpu::seed_from_u64(seed + 1).build_module::<LeNet300100, f32>());
    let mut mask: Mask = vec![true; init.len()];
    let (dense, mut trained) = train_masked(&init, &mask, train, test, recipe, seed)?;
    let mut history = vec![PruningRound {
        remaining: 1.0,
        ticket_accuracy: dense.test_accuracy,
        random_init_accuracy: dense.test_accuracy,
    }];
    for _ in 0..rounds {
        mask = prune(&mask, &trained, rate)?;
        let (ticket, weights) = train_masked(&init, &mask, train, test, recipe, seed)?;
        let (random, _) = train_masked(&fresh, &mask, train, test, recipe, seed)?;
        trained = weights;
        history.push(PruningRound {
            remaining: remaining(&mask),
            ticket_accuracy: ticket.test_accuracy,
            random_init_accuracy: random.test_accuracy,
        });
    }
    Ok(history)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generalization::mnist_subsets;

    #[test]
    fn pruning_removes_the_smallest_weights_and_never_a_bias() {
        let n = prunable().len();
        assert_eq!(
            n,
            Cpu::default()
                .build_module::<LeNet300100, f32>()
                .num_trainable_params()
        );
        let trained: Vec<f32> = (0..n).map(|i| i as f32 - 1000.0).collect();
        let mask = prune(&vec![true; n], &trained, 0.5).unwrap();
        assert!((remaining(&mask) - 0.5).abs() < 1e-5);
        // The smallest magnitudes sit around index 1000, at the start of the first layer.
        assert!(!mask[1000] && mask[n - 300]);
        assert!(
            mask.iter().zip(prunable()).all(|(&m, p)| m || p),
            "biases are kept"
        );
        let again = prune(&mask, &trained, 0.5).unwrap();
        assert!((remaining(&again) - 0.25).abs() < 1e-5);
        assert!(prune(&mask, &trained[1..], 0.5).is_err());
        assert!(prune(&mask, &trained, 1.5).is_err());
    }

    #[test]
    fn masked_training_keeps_pruned_weights_at_zero() {
        let (train, test) = mnist_subsets(200, 100, 0).unwrap();
        let init = parameters(&Cpu::seed_from_u64(0).build_module::<LeNet300100, f32>());
        let mask = prune(&vec![true; init.len()], &init, 0.9).unwrap();
        let recipe = Recipe {
            lr: 1e-3,
            batch_size: 50,
            epochs: 2,
            until_train_loss: None,
            test_every_epoch: false,
        };
        let (fitted, weights) = train_masked(&init, &mask, &train, &test, recipe, 0).unwrap();
        assert!(
            fitted.train_loss < fitted.history.steps[0].loss,
            "{fitted:?}"
        );
        assert!(weights.iter().zip(&mask).all(|(&w, &m)| m || w == 0.0));
        assert!(weights
            .iter()
            .zip(&init)
            .zip(&mask)
            .any(|((w, i), &m)| m && w != i));
        let model = Cpu::default().build_module::<LeNet300100, f32>();
        assert!(Masked::adam(&model, vec![true; 3], 1e-3).is_err());
    }

    #[test]
    fn the_ticket_matches_the_dense_net_and_a_random_reinit_does_worse() {
        let (train, test) = mnist_subsets(4000, 6000, 0).unwrap();
        let rounds = iterative_pruning(&train, &test, 4, 0.4, NOTEBOOK_RECIPE, 0).unwrap();
        let (dense, last) = (rounds[0], rounds[4]);
        assert!((0.1..=0.2).contains(&last.remaining), "{last:?}");
        assert!(
            last.ticket_accuracy >= dense.ticket_accuracy - 0.015,
            "{rounds:?}"
        );
        assert!(
            last.random_init_accuracy < last.ticket_accuracy,
            "{rounds:?}"
        );
    }
}
