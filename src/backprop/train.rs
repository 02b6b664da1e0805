//! Training the [`Mlp`] on two moons with plain gradient descent, as in micrograd's demo.

use super::{Mlp, Value};
use crate::data::Points2d;

/// The micrograd demo's objective: the mean hinge loss `max(0, 1 - y·score)` with labels
/// y = ±1 (a support-vector-machine margin), plus `alpha · Σ p²` (L2 regularisation).
/// Returns the loss node, ready for `backward()`, and the accuracy of the signs.
pub fn hinge_loss(mlp: &Mlp, data: &Points2d, alpha: f64) -> (Value, f64) {
    let mut correct = 0;
    let mut total = Value::new(0.0);
    for (xy, &label) in data.xy.iter().zip(&data.labels) {
        let y = if label == 1 { 1.0 } else { -1.0 };
        let score = &mlp.forward(&[Value::new(xy[0]), Value::new(xy[1])])[0];
        correct += usize::from((score.data() > 0.0) == (y > 0.0));
        total = total + (1.0 - score * y).relu();
    }
    let data_loss = total / data.len() as f64;
    let l2 = mlp
        .parameters()
        .iter()
        .fold(Value::new(0.0), |sum, p| sum + p * p);
    (data_loss + l2 * alpha, correct as f64 / data.len() as f64)
}

/// What one step of training measured, before its update.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    pub loss: f64,
    pub accuracy: f64,
}

/// One step of gradient descent: zero the gradients, forward, backward, update.
pub fn sgd_step(mlp: &Mlp, data: &Points2d, alpha: f64, learning_rate: f64) -> Step {
    mlp.zero_grad();
    let (loss, accuracy) = hinge_loss(mlp, data, alpha);
    loss.backward();
    for p in mlp.parameters() {
        p.set_data(p.data() - learning_rate * p.grad());
    }
    Step {
        loss: loss.data(),
        accuracy,
    }
}

/// Full-batch gradient descent for `steps` steps with micrograd's schedule: the learning
/// rate falls linearly from 1.0 towards 0.1 (step k uses 1 - 0.9·k/steps). Returns what
/// every step measured.
pub fn train(mlp: &Mlp, data: &Points2d, steps: usize, alpha: f64) -> Vec<Step> {
    (0..steps)
        .map(|k| {
            let learning_rate = 1.0 - 0.9 * k as f64 / steps as f64;
            sgd_step(mlp, data, alpha, learning_rate)
        })
        .collect()
}

/// The trained model's score for one point: positive means class 1.
pub fn score(mlp: &Mlp, xy: [f64; 2]) -> f64 {
    mlp.forward(&[Value::new(xy[0]), Value::new(xy[1])])[0].data()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::two_moons;
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn an_mlp_learns_the_moons() {
        let data = two_moons(100, 0.1, 3).unwrap();
        let mlp = Mlp::new(&[2, 16, 16, 1], &mut StdRng::seed_from_u64(3)).unwrap();
        let history = train(&mlp, &data, 100, 1e-4);
        let (first, last) = (history[0], history[history.len() - 1]);
        assert!(last.loss < first.loss / 10.0, "{first:?} -> {last:?}");
        assert!(last.accuracy >= 0.97, "{last:?}");
    }

    #[test]
    fn a_step_moves_every_parameter_against_its_own_fresh_gradient() {
        let data = two_moons(10, 0.1, 0).unwrap();
        let mlp = Mlp::new(&[2, 4, 1], &mut StdRng::seed_from_u64(0)).unwrap();
        sgd_step(&mlp, &data, 0.0, 0.0); // fills the gradients, moves nothing
        let before: Vec<(f64, f64)> = mlp
            .parameters()
            .iter()
            .map(|p| (p.data(), p.grad()))
            .collect();
        sgd_step(&mlp, &data, 0.0, 0.5);
        for ((data, grad), p) in before.iter().zip(mlp.parameters()) {
            // Same weights, so the same fresh gradient: without zero_grad it would double.
            assert_eq!(p.grad(), *grad);
            assert!((p.data() - (data - 0.5 * grad)).abs() < 1e-15);
        }
    }
}
