//! Notebook `02_optimization` §3: Adam's update rule written out, to see what its bias
//! correction does to the first steps. The comparison of SGD, momentum, RMSprop and Adam
//! on the digits uses dfdx's optimizers ([`Run::sweep`](super::Run::sweep)).

use super::{digits_mlp, Run, Trained};
use crate::data::ImageSet;
use crate::optim::ScheduledOptimizer;
use crate::train::{flat_gradients, parameters, set_parameters};
use crate::Error;
use dfdx::optim::{Optimizer, OptimizerUpdateError};
use dfdx::prelude::*;
use dfdx::tensor::CpuError;

/// Adam (Kingma & Ba, 2015, Algorithm 1) written out on a flat vector of parameters, with
/// its bias correction optional. With it, it takes dfdx's `Adam` steps bit for bit (a test
/// checks); without it, the first steps are larger, by about [`uncorrected_step_ratio`].
#[derive(Clone, Debug, PartialEq)]
pub struct AdamByHand {
    pub lr: f64,
    pub betas: [f64; 2],
    pub eps: f64,
    pub bias_correction: bool,
    /// The number of steps taken.
    t: i32,
    /// Running means of the gradients and of their squares.
    m: Vec<f32>,
    v: Vec<f32>,
    /// The root-mean-square of each step's update in units of the learning rate,
    /// `√mean((Δp / lr)²)`: about 1 for a corrected step that follows steady gradients.
    pub step_sizes: Vec<f32>,
}

impl AdamByHand {
    /// Adam with dfdx's (and the paper's) defaults, β = (0.9, 0.999) and ε = 10⁻⁸.
    pub fn new(lr: f64, bias_correction: bool) -> AdamByHand {
        AdamByHand {
            lr,
            betas: [0.9, 0.999],
            eps: 1e-8,
            bias_correction,
            t: 0,
            m: Vec::new(),
            v: Vec::new(),
            step_sizes: Vec::new(),
        }
    }

    /// One step: moves `params` against `grads` (the two of equal length, the same length
    /// at every step).
    pub fn step(&mut self, params: &mut [f32], grads: &[f32]) -> Result<(), Error> {
        if self.t == 0 {
            self.m = vec![0.0; params.len()];
            self.v = vec![0.0; params.len()];
        }
        if grads.len() != params.len() || params.len() != self.m.len() {
            return Err(Error::ShapeMismatch {
                what: "the parameters and gradients of an Adam step",
                expected: format!("{} of each, as at the first step", self.m.len()),
                got: format!("{} parameters and {} gradients", params.len(), grads.len()),
            });
        }
        self.t += 1;
        // In f32 and in dfdx's order of operations, so the two agree to the last bit.
        let [b1, b2] = self.betas.map(|b| b as f32);
        let (lr, eps) = (self.lr as f32, self.eps as f32);
        let (c1, c2) = if self.bias_correction {
            (1.0 - b1.powi(self.t), 1.0 - b2.powi(self.t))
        } else {
            (1.0, 1.0)
        };
        let mut squares = 0.0;
        for (((p, &g), m), v) in params
            .iter_mut()
            .zip(grads)
            .zip(&mut self.m)
            .zip(&mut self.v)
        {
            *m = *m * b1 + g * (1.0 - b1);
            *v = *v * b2 + g.powi(2) * (1.0 - b2);
            let (m_hat, v_hat) = (*m * c1.recip(), *v * c2.recip());
            let update = lr * m_hat / (v_hat.sqrt() + eps);
            squares += (update / lr).powi(2);
            *p -= update;
        }
        self.step_sizes
            .push((squares / params.len().max(1) as f32).sqrt());
        Ok(())
    }
}

impl<M: TensorCollection<f32, Cpu>> Optimizer<M, Cpu, f32> for AdamByHand {
    fn update(
        &mut self,
        model: &mut M,
        gradients: &Gradients<f32, Cpu>,
    ) -> Result<(), OptimizerUpdateError<CpuError>> {
        let grads = flat_gradients(model, gradients).map_err(OptimizerUpdateError::DeviceError)?;
        let mut params = parameters(model);
        let wrong_size = |_| OptimizerUpdateError::DeviceError(CpuError::WrongNumElements);
        self.step(&mut params, &grads).map_err(wrong_size)?;
        set_parameters(model, &params).map_err(wrong_size)
    }
}

impl<M: TensorCollection<f32, Cpu>> ScheduledOptimizer<M, f32> for AdamByHand {
    fn learning_rate(&self) -> f64 {
        self.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.lr = lr;
    }
}

/// How much larger Adam's step `t` is without the bias correction, when the gradient has
/// been the same at every step: `(1 − β₁ᵗ) / √(1 − β₂ᵗ)` with β = (0.9, 0.999). About 3.2
/// at the first step and 6.6 at its peak near step 12; it only falls back to 1 after
/// thousands of steps.
pub fn uncorrected_step_ratio(t: usize) -> f64 {
    let t = t as i32;
    (1.0 - 0.9f64.powi(t)) / (1.0 - 0.999f64.powi(t)).sqrt()
}

/// The digits MLP trained by `run` (its method is unused) with [`AdamByHand`] at the
/// run's learning rate, with or without the bias correction: the run's measurements and
/// the size of every step.
pub fn train_with_adam_by_hand(
    run: &Run,
    bias_correction: bool,
    train: &ImageSet,
    test: &ImageSet,
    seed: u64,
) -> Result<(Trained, Vec<f32>), Error> {
    let mut adam = AdamByHand::new(run.optimizer.lr, bias_correction);
    let trained = run.train_with(digits_mlp(seed), &mut adam, train, test, seed)?;
    Ok((trained, adam.step_sizes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::digits;
    use crate::optim::Method;

    #[test]
    fn with_its_correction_it_is_dfdx_adam() {
        let (train, test) = digits().unwrap().split(0.2, 0).unwrap();
        let run = Run::new(Method::Adam, 0.01).epochs(2);
        let (ours, _) = train_with_adam_by_hand(&run, true, &train, &test, 0).unwrap();
        let theirs = run.train(&train, &test, 0).unwrap();
        assert_eq!(
            ours.weights, theirs.weights,
            "the same arithmetic, bit for bit"
        );
        assert_eq!(ours.history.steps.len(), 90);
    }

    #[test]
    fn without_it_the_first_step_is_larger_by_the_predicted_ratio() {
        let grads = [0.5, -2.0, 1e-3];
        let mut sizes = [0.0; 2];
        for (i, correct) in [true, false].into_iter().enumerate() {
            let mut adam = AdamByHand::new(0.1, correct);
            let mut params = [1.0, 1.0, 1.0];
            adam.step(&mut params, &grads).unwrap();
            sizes[i] = adam.step_sizes[0];
            // Corrected, the first step moves every coordinate by lr against its sign.
            if correct {
                for (p, g) in params.iter().zip(grads) {
                    assert!((p - (1.0 - 0.1 * g.signum())).abs() < 1e-5, "{params:?}");
                }
            }
        }
        let ratio = f64::from(sizes[1] / sizes[0]);
        assert!((ratio - uncorrected_step_ratio(1)).abs() < 1e-3, "{ratio}");
        assert!((uncorrected_step_ratio(1) - 0.1 / 0.001f64.sqrt()).abs() < 1e-12);
        assert!(uncorrected_step_ratio(12) > 6.5 && uncorrected_step_ratio(5000) < 1.01);
    }

    #[test]
    fn a_step_of_another_size_is_an_error() {
        let mut adam = AdamByHand::new(0.1, true);
        adam.step(&mut [1.0, 2.0], &[0.1, 0.1]).unwrap();
        assert!(adam.step(&mut [1.0, 2.0], &[0.1]).is_err());
        assert!(adam.step(&mut [1.0, 2.0, 3.0], &[0.1, 0.1, 0.1]).is_err());
    }
}
