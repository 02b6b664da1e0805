//! Notebook `02_optimization` §4: weight decay and an L2 penalty, the same for SGD and not
//! for Adam (Loshchilov & Hutter, 2019). Both come from dfdx: `WeightDecay::L2(λ)` adds
//! `λ·p` (the gradient of the penalty `λ/2·‖p‖²`) to the gradient before the optimizer's
//! rule; `WeightDecay::Decoupled(λ)` subtracts `lr·λ·p` from the weights after it.

use super::{Run, Trained};
use crate::data::ImageSet;
use crate::Error;
use dfdx::optim::WeightDecay;

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
    use super::*;
    use crate::data::digits;
    use crate::optim::Method;

    fn split() -> (ImageSet, ImageSet) {
        digits().unwrap().split(0.2, 1).unwrap()
    }

    #[test]
    fn for_sgd_the_two_decays_are_one() {
        let (train, test) = split();
        let run = Run::new(Method::Sgd, 0.5).epochs(2);
        let (l2, decoupled) = l2_and_decoupled(&run, 0.01, &train, &test, 1).unwrap();
        let g = l2.gap(&decoupled).unwrap();
        assert!(g.loss < 1e-5 && g.weights < 1e-5, "{g:?}");
        // And the decay does something: without it the run differs.
        let g = l2.gap(&run.train(&train, &test, 1).unwrap()).unwrap();
        assert!(g.weights > 1e-2, "{g:?}");
    }

    #[test]
    fn for_adam_they_differ() {
        let (train, test) = split();
        let run = Run::new(Method::Adam, 0.01).epochs(2);
        let (l2, decoupled) = l2_and_decoupled(&run, 0.01, &train, &test, 1).unwrap();
        let g = l2.gap(&decoupled).unwrap();
        assert!(g.weights > 0.1, "{g:?}");
    }
}
