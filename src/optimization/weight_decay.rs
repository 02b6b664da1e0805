//! Notebook `02_optimization` §4: weight decay and an L2 penalty, the same for SGD and not
//! for Adam (Loshchilov & Hutter, 2019). Both come from dfdx: `WeightDecay::L2(λ)` adds
//! `λ·p` (the gradient of the penalty `λ/2·‖p‖²`) to the gradient before the optimizer's
//! rule; `WeightDecay::Decoupled(λ)` subtracts `lr·λ·p` from the weights after it.

use super::{Run, Trained};
use crate::data::ImageSet;
use crate::Error;
use dfdx::optim::WeightDecay;

/// How far apart two runs went.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gap {
    /// The largest difference between their training losses at the same step.
    pub loss: f64,
    /// The largest difference between their final weights, relative to the largest weight.
    pub weights: f64,
}

/// The [`Gap`] between two runs of the same length on the same model.
pub fn gap(a: &Trained, b: &Trained) -> Result<Gap, Error> {
    if a.history.steps.len() != b.history.steps.len() || a.weights.len() != b.weights.len() {
        return Err(Error::ShapeMismatch {
            what: "the second run",
            expected: format!(
                "{} steps and {} weights, as the first",
                a.history.steps.len(),
                a.weights.len()
            ),
            got: format!(
                "{} steps and {} weights",
                b.history.steps.len(),
                b.weights.len()
            ),
        });
    }
    let largest = |values: &mut dyn Iterator<Item = f64>| values.fold(0.0, f64::max);
    let loss = largest(
        &mut a
            .step_losses()
            .iter()
            .zip(b.step_losses())
            .map(|(x, y)| (x - y).abs()),
    );
    let scale = largest(&mut a.weights.iter().map(|w| f64::from(w.abs())));
    let moved = largest(
        &mut a
            .weights
            .iter()
            .zip(&b.weights)
            .map(|(x, y)| f64::from(x - y).abs()),
    );
    Ok(Gap {
        loss,
        weights: moved / scale.max(f64::MIN_POSITIVE),
    })
}

/// `run` twice from the same start, once with `WeightDecay::L2(λ)` and once with
/// `WeightDecay::Decoupled(λ)`: `(l2, decoupled)`.
pub fn l2_and_decoupled(
    run: &Run,
    lambda: f64,
    train: &ImageSet,
    test: &ImageSet,
    seed: u64,
) -> Result<(Trained, Trained), Error> {
    let l2 = run.clone().weight_decay(WeightDecay::L2(lambda));
    let decoupled = run.clone().weight_decay(WeightDecay::Decoupled(lambda));
    Ok((
        l2.train(train, test, seed)?,
        decoupled.train(train, test, seed)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::super::Method;
    use super::*;
    use crate::data::digits;

    fn split() -> (ImageSet, ImageSet) {
        digits().unwrap().split(0.2, 1).unwrap()
    }

    #[test]
    fn for_sgd_the_two_decays_are_one() {
        let (train, test) = split();
        let run = Run::new(Method::Sgd, 0.5).epochs(2);
        let (l2, decoupled) = l2_and_decoupled(&run, 0.01, &train, &test, 1).unwrap();
        let g = gap(&l2, &decoupled).unwrap();
        assert!(g.loss < 1e-5 && g.weights < 1e-5, "{g:?}");
        // And the decay does something: without it the run differs.
        let g = gap(&l2, &run.train(&train, &test, 1).unwrap()).unwrap();
        assert!(g.weights > 1e-2, "{g:?}");
    }

    #[test]
    fn for_adam_they_differ() {
        let (train, test) = split();
        let run = Run::new(Method::Adam, 0.01).epochs(2);
        let (l2, decoupled) = l2_and_decoupled(&run, 0.01, &train, &test, 1).unwrap();
        let g = gap(&l2, &decoupled).unwrap();
        assert!(g.weights > 0.1, "{g:?}");
    }

    #[test]
    fn runs_of_different_lengths_have_no_gap() {
        let (train, test) = split();
        let one = Run::new(Method::Sgd, 0.1)
            .epochs(1)
            .train(&train, &test, 0)
            .unwrap();
        let two = Run::new(Method::Sgd, 0.1)
            .epochs(2)
            .train(&train, &test, 0)
            .unwrap();
        assert!(gap(&one, &two).is_err());
        assert_eq!(
            gap(&one, &one).unwrap(),
            Gap {
                loss: 0.0,
                weights: 0.0
            }
        );
    }
}
