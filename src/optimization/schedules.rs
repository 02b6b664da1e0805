//! Notebook `02_optimization` §5: learning-rate schedules, which a [`Run`](super::Run)
//! follows step by step ([`Run::schedule`](super::Run::schedule)).

use crate::Error;
use std::f64::consts::PI;

/// How the learning rate moves over a run of `steps` steps (notebook §5).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    /// `lr` at every step.
    Constant { lr: f64 },
    /// Step decay, as in ResNet's training (He, Zhang, Ren & Sun, 2016): `lr`, multiplied
    /// by `factor` at half and again at three quarters of the run.
    Step { lr: f64, factor: f64 },
    /// A linear warm-up from 0 over the first `warmup` fraction of the steps (Goyal et al.,
    /// 2017), then half a cosine from `lr` down to 0 (Loshchilov & Hutter, 2017, SGDR
    /// without restarts).
    Cosine { lr: f64, warmup: f64 },
}

impl Schedule {
    pub fn name(&self) -> &'static str {
        match self {
            Schedule::Constant { .. } => "constant",
            Schedule::Step { .. } => "step decay",
            Schedule::Cosine { .. } => "cosine with warm-up",
        }
    }

    /// The largest learning rate it reaches.
    pub fn peak(&self) -> f64 {
        match *self {
            Schedule::Constant { lr } | Schedule::Step { lr, .. } | Schedule::Cosine { lr, .. } => {
                lr
            }
        }
    }

    /// The learning rate of each of `steps` steps.
    pub fn learning_rates(&self, steps: usize) -> Result<Vec<f64>, Error> {
        let (lr, valid) = match *self {
            Schedule::Constant { lr } => (lr, true),
            Schedule::Step { lr, factor } => (lr, (0.0..=1.0).contains(&factor)),
            Schedule::Cosine { lr, warmup } => (lr, (0.0..1.0).contains(&warmup)),
        };
        if !(valid && lr.is_finite() && lr >= 0.0 && steps > 0) {
            return Err(Error::InvalidArgument {
                what: "a learning-rate schedule",
                expected: "a learning rate ≥ 0, a step factor in [0, 1], a warm-up fraction in [0, 1), and at least one step",
                got: format!("{self:?} over {steps} steps"),
            });
        }
        let n = steps as f64;
        Ok((0..steps)
            .map(|step| {
                let t = step as f64;
                match *self {
                    Schedule::Constant { lr } => lr,
                    Schedule::Step { lr, factor } => {
                        let drops = usize::from(t >= 0.5 * n) + usize::from(t >= 0.75 * n);
                        lr * factor.powi(drops as i32)
                    }
                    Schedule::Cosine { lr, warmup } => {
                        let warm = (warmup * n).round();
                        if t < warm {
                            lr * (t + 1.0) / warm
                        } else {
                            let progress = (t - warm) / (n - warm).max(1.0);
                            lr * 0.5 * (1.0 + (PI * progress).cos())
                        }
                    }
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_constant_schedule_is_constant() {
        let lrs = Schedule::Constant { lr: 0.3 }.learning_rates(5).unwrap();
        assert_eq!(lrs, vec![0.3; 5]);
        assert_eq!(
            Schedule::Cosine {
                lr: 0.3,
                warmup: 0.1
            }
            .peak(),
            0.3
        );
    }

    #[test]
    fn step_decay_drops_at_half_and_three_quarters() {
        let lrs = Schedule::Step {
            lr: 1.0,
            factor: 0.1,
        }
        .learning_rates(8)
        .unwrap();
        let expected = [1.0, 1.0, 1.0, 1.0, 0.1, 0.1, 0.01, 0.01];
        assert!(
            lrs.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-12),
            "{lrs:?}"
        );
    }

    #[test]
    fn cosine_warms_up_linearly_then_falls_to_zero() {
        let lrs = Schedule::Cosine {
            lr: 1.0,
            warmup: 0.1,
        }
        .learning_rates(100)
        .unwrap();
        assert!(
            (lrs[0] - 0.1).abs() < 1e-12 && (lrs[9] - 1.0).abs() < 1e-12,
            "{:?}",
            &lrs[..10]
        );
        assert!((lrs[10] - 1.0).abs() < 1e-12);
        // Half-way through the cosine part (step 10 + 45), the rate is half.
        assert!((lrs[55] - 0.5).abs() < 1e-12, "{}", lrs[55]);
        assert!(lrs[99] < 1e-3 && lrs[10..].windows(2).all(|w| w[1] <= w[0]));
        let no_warmup = Schedule::Cosine {
            lr: 2.0,
            warmup: 0.0,
        }
        .learning_rates(3)
        .unwrap();
        assert_eq!(no_warmup[0], 2.0);
    }

    #[test]
    fn a_bad_schedule_is_an_error() {
        for bad in [
            Schedule::Constant { lr: -1.0 },
            Schedule::Step {
                lr: 1.0,
                factor: 2.0,
            },
            Schedule::Cosine {
                lr: 1.0,
                warmup: 1.0,
            },
        ] {
            assert!(bad.learning_rates(10).is_err(), "{bad:?}");
        }
        assert!(Schedule::Constant { lr: 1.0 }.learning_rates(0).is_err());
    }
}
