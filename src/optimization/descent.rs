//! Notebook `02_optimization` §1: gradient descent and its variants on surfaces of two
//! variables, where every step can be drawn.
//!
//! The point being optimized is a dfdx tensor of two numbers, and the optimizers are
//! dfdx's own ([`Method`]): the same objects that train the networks of later sections,
//! here on a "model" with two parameters. With the exact gradient of the surface, SGD is
//! plain gradient descent. The steps are taken here rather than by the training loop
//! ([`crate::train::fit`]): there are no batches, and a run that diverges is a result to
//! draw, not an error to stop at.

use crate::optim::{Method, ScheduledOptimizer};
use crate::Error;
use dfdx::prelude::*;
use rand::{rngs::StdRng, Rng, SeedableRng};

/// A point of the plane as a dfdx "model": two trainable numbers.
type Point = Tensor<Rank1<2>, f64, Cpu>;

/// A run stops early once its loss passes this: it has diverged.
const DIVERGED: f64 = 1e6;

/// A loss surface of two variables (notebook `02_optimization` §1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Surface {
    /// `f(x, y) = (x² + κ·y²) / 2`: curvature 1 along x and κ along y, so κ (`condition`)
    /// is the condition number of its Hessian. Minimum 0 at the origin.
    Quadratic { condition: f64 },
    /// Rosenbrock's function (Rosenbrock, 1960), `(1 − x)² + 100·(y − x²)²`: minimum 0 at
    /// (1, 1), at the bottom of a long, curved, flat-floored valley.
    Rosenbrock,
}

impl Surface {
    /// The loss at `p`, recorded on `p`'s tape.
    fn loss<T: Tape<f64, Cpu>>(
        &self,
        p: Tensor<Rank1<2>, f64, Cpu, T>,
    ) -> Tensor<Rank0, f64, Cpu, T> {
        let dev = p.device().clone();
        match *self {
            Surface::Quadratic { condition } => {
                let curvature = dev.tensor([0.5, 0.5 * condition]);
                (p.square() * curvature).sum()
            }
            Surface::Rosenbrock => {
                let x = (p.with_empty_tape() * dev.tensor([1.0, 0.0])).sum();
                let y = (p * dev.tensor([0.0, 1.0])).sum();
                let valley = (y - x.with_empty_tape().square()).square() * 100.0;
                (x.negate() + 1.0).square() + valley
            }
        }
    }

    /// The loss at `p`.
    pub fn value(&self, p: [f64; 2]) -> f64 {
        self.loss(Cpu::default().tensor(p)).array()
    }

    /// The gradient of the loss at `p`, by dfdx's autodiff: exactly the gradient that
    /// [`descend`]'s optimizers are given, so an update rule written out by hand and fed
    /// this gradient can be checked against them bit for bit.
    pub fn gradient(&self, p: [f64; 2]) -> [f64; 2] {
        let point: Point = Cpu::default().tensor(p);
        self.loss(point.leaky_trace())
            .backward()
            .get(&point)
            .array()
    }

    /// Where the loss is smallest.
    pub fn minimum(&self) -> [f64; 2] {
        match self {
            Surface::Quadratic { .. } => [0.0, 0.0],
            Surface::Rosenbrock => [1.0, 1.0],
        }
    }

    /// A starting point drawn from `seed`: for the quadratic, x in [−2, −1.5] and y in
    /// [0.5, 1] (both directions matter); for Rosenbrock's function, across the valley from
    /// its minimum, x in [−1.6, −1.2] and y in [1.5, 2].
    pub fn start(&self, seed: u64) -> [f64; 2] {
        let mut rng = StdRng::seed_from_u64(seed);
        let ([x0, x1], [y0, y1]) = match self {
            Surface::Quadratic { .. } => ([-2.0, -1.5], [0.5, 1.0]),
            Surface::Rosenbrock => ([-1.6, -1.2], [1.5, 2.0]),
        };
        [rng.gen_range(x0..x1), rng.gen_range(y0..y1)]
    }
}

/// One run of an optimizer across a surface.
#[derive(Clone, Debug, PartialEq)]
pub struct Path {
    pub method: Method,
    pub lr: f64,
    /// The start, then the point after each step; a diverging run stops early.
    pub points: Vec<[f64; 2]>,
    /// The loss at each point.
    pub losses: Vec<f64>,
}

impl Path {
    /// The number of steps after which the loss is first below `threshold`, if it ever is.
    pub fn steps_to(&self, threshold: f64) -> Option<usize> {
        self.losses.iter().position(|&l| l < threshold)
    }

    /// The points up to the first whose loss is below `threshold`, or all of them.
    pub fn points_until(&self, threshold: f64) -> &[[f64; 2]] {
        let end = self
            .steps_to(threshold)
            .map_or(self.points.len(), |s| s + 1);
        &self.points[..end]
    }
}

/// Runs `method` with learning rate `lr` for `steps` steps from `start` on `surface`,
/// stopping early if the loss passes 10⁶ or stops being finite.
pub fn descend(
    surface: Surface,
    method: Method,
    lr: f64,
    start: [f64; 2],
    steps: usize,
) -> Result<Path, Error> {
    if !(lr.is_finite() && lr > 0.0) {
        return Err(Error::InvalidArgument {
            what: "the learning rate",
            expected: "a positive number",
            got: lr.to_string(),
        });
    }
    let point: Point = Cpu::default().tensor(start);
    let optimizer = method.at(lr).build(&point);
    let (points, losses) = walk(surface, point, optimizer, steps)?;
    Ok(Path {
        method,
        lr,
        points,
        losses,
    })
}

/// The points visited and their losses, for `steps` updates of `optimizer`.
fn walk(
    surface: Surface,
    mut point: Point,
    mut optimizer: Box<dyn ScheduledOptimizer<Point, f64>>,
    steps: usize,
) -> Result<(Vec<[f64; 2]>, Vec<f64>), Error> {
    let (mut points, mut losses) = (Vec::with_capacity(steps + 1), Vec::with_capacity(steps + 1));
    for step in 0..=steps {
        let loss = surface.loss(point.leaky_trace());
        points.push(point.array());
        losses.push(loss.array());
        let diverged = loss.array().is_nan() || loss.array().abs() >= DIVERGED;
        if step == steps || diverged {
            break;
        }
        let grads = loss.backward();
        optimizer
            .update(&mut point, &grads)
            .map_err(|e| Error::Optimizer(format!("{e:?}")))?;
    }
    Ok((points, losses))
}

/// Each learning rate of `lrs` tried for at most `steps` steps: the run that first brings
/// the loss below `threshold`, or, if none does, the one that ends lowest. This is "the best
/// learning rate from a sweep"; a rate that diverges never wins.
pub fn best_run(
    surface: Surface,
    method: Method,
    start: [f64; 2],
    lrs: &[f64],
    steps: usize,
    threshold: f64,
) -> Result<Path, Error> {
    let mut best: Option<Path> = None;
    for &lr in lrs {
        let path = descend(surface, method, lr, start, steps)?;
        let key = |p: &Path| {
            let last = *p.losses.last().unwrap_or(&f64::INFINITY);
            let ended = if last.is_finite() {
                last
            } else {
                f64::INFINITY
            };
            (p.steps_to(threshold).unwrap_or(usize::MAX), ended)
        };
        if best.as_ref().is_none_or(|b| key(&path) < key(b)) {
            best = Some(path);
        }
    }
    best.ok_or(Error::InvalidArgument {
        what: "the learning rates to try",
        expected: "at least one",
        got: "none".to_owned(),
    })
}

/// The x and y ranges that hold every point of `paths` up to `threshold`
/// ([`Path::points_until`]) and the minimum of `surface`, with a tenth of their span to
/// spare on each side: the frame of a [`contour`](crate::plot::contour()) plot.
pub fn frame(surface: Surface, paths: &[Path], threshold: f64) -> ([f64; 2], [f64; 2]) {
    let [mx, my] = surface.minimum();
    let (mut x, mut y) = ([mx, mx], [my, my]);
    for p in paths.iter().flat_map(|p| p.points_until(threshold)) {
        x = [x[0].min(p[0]), x[1].max(p[0])];
        y = [y[0].min(p[1]), y[1].max(p[1])];
    }
    let pad = |[lo, hi]: [f64; 2]| {
        let margin = 0.1 * (hi - lo).max(1e-3);
        [lo - margin, hi + margin]
    };
    (pad(x), pad(y))
}

/// `count` learning rates spaced evenly on a log scale from `low` to `high`.
pub fn log_spaced(low: f64, high: f64, count: usize) -> Result<Vec<f64>, Error> {
    if !(low > 0.0 && high >= low && high.is_finite() && count >= 2) {
        return Err(Error::InvalidArgument {
            what: "a log-spaced range",
            expected: "0 < low ≤ high and at least two values",
            got: format!("{count} values from {low} to {high}"),
        });
    }
    let ratio = (high / low).ln() / (count - 1) as f64;
    Ok((0..count).map(|i| low * (ratio * i as f64).exp()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_surfaces_have_their_values_and_minima() {
        let bowl = Surface::Quadratic { condition: 10.0 };
        assert_eq!(bowl.value([1.0, 1.0]), 5.5);
        assert_eq!(bowl.value(bowl.minimum()), 0.0);
        let banana = Surface::Rosenbrock;
        assert_eq!(banana.value([0.0, 0.0]), 1.0);
        assert_eq!(banana.value([-1.0, 2.0]), 4.0 + 100.0);
        assert_eq!(banana.value(banana.minimum()), 0.0);
    }

    #[test]
    fn dfdx_gradients_match_the_calculus() {
        // Rosenbrock: ∂f/∂x = −2(1 − x) − 400x(y − x²), ∂f/∂y = 200(y − x²).
        let p: Point = Cpu::default().tensor([-1.0, 2.0]);
        let g = Surface::Rosenbrock
            .loss(p.leaky_trace())
            .backward()
            .get(&p)
            .array();
        assert_eq!(g, [-4.0 + 400.0, 200.0]);
    }

    #[test]
    fn the_gradient_is_the_calculus() {
        // Quadratic: ∇f = (x, κ·y).
        let bowl = Surface::Quadratic { condition: 10.0 };
        assert_eq!(bowl.gradient([2.0, -0.5]), [2.0, -5.0]);
        assert_eq!(bowl.gradient(bowl.minimum()), [0.0, 0.0]);
        // Rosenbrock: ∂f/∂x = −2(1 − x) − 400x(y − x²), ∂f/∂y = 200(y − x²).
        let calculus = |[x, y]: [f64; 2]| {
            [
                -2.0 * (1.0 - x) - 400.0 * x * (y - x * x),
                200.0 * (y - x * x),
            ]
        };
        for p in [[-1.0, 2.0], [0.5, 0.25], [-1.3, 1.7], [1.0, 1.0]] {
            let (g, want) = (Surface::Rosenbrock.gradient(p), calculus(p));
            for i in 0..2 {
                assert!(
                    (g[i] - want[i]).abs() <= 1e-12 * want[i].abs().max(1.0),
                    "{p:?}: {g:?} vs {want:?}"
                );
            }
        }
    }

    #[test]
    fn gradient_descent_on_a_quadratic_shrinks_each_coordinate_by_its_factor() {
        // With lr = 0.1 and curvatures (1, 10), each step multiplies x by 0.9 and y by 0.0.
        let bowl = Surface::Quadratic { condition: 10.0 };
        let path = descend(bowl, Method::Sgd, 0.1, [1.0, 1.0], 3).unwrap();
        let last = path.points[3];
        assert!(
            (last[0] - 0.729).abs() < 1e-12 && last[1].abs() < 1e-12,
            "{last:?}"
        );
        assert_eq!(path.losses.len(), 4);
        // Losses 5.5, 0.405, 0.328, 0.266: below 0.4 after step 2.
        assert_eq!(path.steps_to(0.4), Some(2));
        assert_eq!(path.points_until(0.4).len(), 3);
        assert_eq!(path.points_until(0.0).len(), 4);
    }

    #[test]
    fn the_frame_holds_every_path_and_the_minimum() {
        let bowl = Surface::Quadratic { condition: 10.0 };
        let path = descend(bowl, Method::Sgd, 0.1, [-2.0, 1.0], 3).unwrap();
        let (x, y) = frame(bowl, &[path], 0.0);
        // x from -2 to 0 (the minimum), y from 0 to 1: each widened by a tenth of its span.
        assert!(
            (x[0] + 2.2).abs() < 1e-12 && (x[1] - 0.2).abs() < 1e-12,
            "{x:?}"
        );
        assert!(
            (y[0] + 0.1).abs() < 1e-12 && (y[1] - 1.1).abs() < 1e-12,
            "{y:?}"
        );
    }

    #[test]
    fn a_diverging_run_stops_early() {
        let bowl = Surface::Quadratic { condition: 100.0 };
        // Beyond lr = 2/100, y grows by |1 − 100·lr| > 1 each step.
        let path = descend(bowl, Method::Sgd, 0.03, [1.0, 1.0], 1000).unwrap();
        assert!(path.points.len() < 100, "{}", path.points.len());
        assert!(path.steps_to(1e-3).is_none());
        assert!(descend(bowl, Method::Adam, -1.0, [1.0, 1.0], 10).is_err());
    }

    #[test]
    fn the_best_run_is_the_fastest_stable_one() {
        let bowl = Surface::Quadratic { condition: 10.0 };
        let lrs = log_spaced(1e-3, 1.0, 7).unwrap();
        assert!(log_spaced(0.0, 1.0, 7).is_err() && log_spaced(1.0, 2.0, 1).is_err());
        assert!((lrs[6] - 1.0).abs() < 1e-12 && (lrs[3] - 10f64.powf(-1.5)).abs() < 1e-12);
        let best = best_run(bowl, Method::Sgd, [1.0, 1.0], &lrs, 500, 1e-6).unwrap();
        // 2/(1 + 10) ≈ 0.18 is the fastest rate; the grid's 0.1 is the best below 0.2.
        assert!((best.lr - 0.1).abs() < 1e-12, "{}", best.lr);
        assert!(best_run(bowl, Method::Adam, [1.0, 1.0], &[], 10, 1e-6).is_err());
    }

    #[test]
    fn every_method_gets_down_the_quadratic() {
        let bowl = Surface::Quadratic { condition: 10.0 };
        for method in Method::ALL {
            let path = descend(bowl, method, 0.05, [1.0, 1.0], 300).unwrap();
            let last = path.losses[300];
            assert!(last < 1e-2 * path.losses[0], "{}: {last}", method.name());
        }
    }
}
