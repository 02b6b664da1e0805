//! Vanishing and exploding signals in a deep stack, and the initialisations that keep them
//! steady: Glorot & Bengio (2010) and He, Zhang, Ren & Sun (2015). Taught in notebook
//! `01_backprop`, §8.
//!
//! [`DeepStack`] is measured, not trained: one forward pass of a random batch and one
//! backward pass, written in the matrix form of §7, give the size of the activations and of
//! the gradients at every layer.

use crate::Error;
use ndarray::Array2;
use rand::{rngs::StdRng, Rng, SeedableRng};
use rand_distr::{Normal, StandardNormal, Uniform};

/// How a layer's weights are drawn: independent, mean 0, with a variance that depends on the
/// rule and the layer's fan-in (inputs) and fan-out (outputs). Biases start at 0.
///
/// Taught in notebook `01_backprop`, §8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    /// dfdx's `Linear` default (PyTorch's too): uniform in ±1/√fan_in, variance 1/(3·fan_in).
    DfdxDefault,
    /// N(0, 1), blind to the layer's width: variance 1.
    StandardNormal,
    /// Glorot & Bengio (2010), eq. 16, the "normalized initialization": uniform in
    /// ±√(6/(fan_in + fan_out)), variance 2/(fan_in + fan_out).
    Glorot,
    /// He et al. (2015), eq. 10, for ReLU layers: N(0, 2/fan_in).
    He,
}

impl Init {
    /// Every rule, in the order the notebook draws them.
    pub const ALL: [Init; 4] = [
        Init::DfdxDefault,
        Init::StandardNormal,
        Init::Glorot,
        Init::He,
    ];

    /// The variance of one weight of a layer with `fan_in` inputs and `fan_out` outputs.
    pub fn variance(self, fan_in: usize, fan_out: usize) -> f64 {
        let (fan_in, fan_out) = (fan_in as f64, fan_out as f64);
        match self {
            Init::DfdxDefault => 1.0 / (3.0 * fan_in),
            Init::StandardNormal => 1.0,
            Init::Glorot => 2.0 / (fan_in + fan_out),
            Init::He => 2.0 / fan_in,
        }
    }

    /// A `(fan_out, fan_in)` weight matrix drawn by this rule: uniform in ±√(3·variance) for
    /// the uniform rules, normal for the others.
    pub fn weights(self, fan_in: usize, fan_out: usize, rng: &mut impl Rng) -> Array2<f64> {
        let variance = self.variance(fan_in, fan_out);
        let draws: Vec<f64> = match self {
            Init::DfdxDefault | Init::Glorot => {
                let limit = (3.0 * variance).sqrt();
                let uniform = Uniform::new_inclusive(-limit, limit);
                rng.sample_iter(uniform).take(fan_in * fan_out).collect()
            }
            Init::StandardNormal | Init::He => {
                let normal = Normal::new(0.0, variance.sqrt()).expect("a positive variance");
                rng.sample_iter(normal).take(fan_in * fan_out).collect()
            }
        };
        Array2::from_shape_vec((fan_out, fan_in), draws).expect("fan_out · fan_in draws")
    }

    /// The rule's name in figures and tables.
    pub fn name(self) -> &'static str {
        match self {
            Init::DfdxDefault => "dfdx default",
            Init::StandardNormal => "N(0, 1)",
            Init::Glorot => "Glorot",
            Init::He => "He",
        }
    }
}

/// The non-linearity after every layer of a [`DeepStack`]. Taught in notebook
/// `01_backprop`, §8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Sigmoid,
    Tanh,
    Relu,
}

impl Activation {
    /// Every activation, in the order the notebook draws them.
    pub const ALL: [Activation; 3] = [Activation::Sigmoid, Activation::Tanh, Activation::Relu];

    pub fn apply(self, z: f64) -> f64 {
        match self {
            Activation::Sigmoid => 1.0 / (1.0 + (-z).exp()),
            Activation::Tanh => z.tanh(),
            Activation::Relu => z.max(0.0),
        }
    }

    /// The derivative f'(z), written in terms of the output h = f(z), as backward passes
    /// compute it: σ' = h(1 − h), tanh' = 1 − h², ReLU' = 1 where h > 0.
    pub fn derivative_from_output(self, h: f64) -> f64 {
        match self {
            Activation::Sigmoid => h * (1.0 - h),
            Activation::Tanh => 1.0 - h * h,
            Activation::Relu => f64::from(u8::from(h > 0.0)),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Relu => "ReLU",
        }
    }
}

/// A deep fully connected stack, `h_k = f(h_{k−1}·W_kᵀ)` for k = 1..=depth, every layer
/// `width` wide with zero biases, fed a `(batch, width)` batch of N(0, 1) inputs. Its loss is
/// `L = Σ r ⊙ h_depth` for a fixed N(0, 1) matrix `r`, so the gradient enters the top with
/// unit scale and every change below it comes from the layers.
///
/// Glorot & Bengio (2010) and He et al. (2015) analyse exactly this: how the variance of the
/// signal changes from layer to layer, forwards and backwards. Taught in notebook
/// `01_backprop`, §8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeepStack {
    pub depth: usize,
    pub width: usize,
    pub batch: usize,
    pub activation: Activation,
    pub init: Init,
}

/// What one forward and backward pass of a [`DeepStack`] measured, layer by layer: entry
/// `k − 1` is layer k's.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerScales {
    /// The standard deviation of layer k's output h_k over the batch and units.
    pub activations: Vec<f64>,
    /// The standard deviation of ∂L/∂h_{k−1}, the gradient layer k passes to its input.
    pub gradients: Vec<f64>,
}

/// A stack's random draws: the input batch, one weight matrix per layer, the loss's `r`.
struct Draws {
    x: Array2<f64>,
    weights: Vec<Array2<f64>>,
    r: Array2<f64>,
}

impl DeepStack {
    /// One forward and one backward pass from the draws of `seed`, measured.
    pub fn scales(&self, seed: u64) -> Result<LayerScales, Error> {
        if self.depth == 0 || self.width == 0 || self.batch < 2 {
            return Err(Error::InvalidArgument {
                what: "the deep stack's size",
                expected: "at least one layer, one unit and a batch of two",
                got: format!("{self:?}"),
            });
        }
        let (hs, gs) = self.propagate(&self.draw(seed));
        Ok(LayerScales {
            activations: hs[1..].iter().map(std).collect(),
            gradients: gs.iter().map(std).collect(),
        })
    }

    fn draw(&self, seed: u64) -> Draws {
        let mut rng = StdRng::seed_from_u64(seed);
        let normal = |rng: &mut StdRng| {
            let draws = rng
                .sample_iter(StandardNormal)
                .take(self.batch * self.width);
            Array2::from_shape_vec((self.batch, self.width), draws.collect())
                .expect("batch · width")
        };
        let x = normal(&mut rng);
        let weights = (0..self.depth)
            .map(|_| self.init.weights(self.width, self.width, &mut rng))
            .collect();
        let r = normal(&mut rng);
        Draws { x, weights, r }
    }

    /// The activations h_0 (the input) to h_depth, and the gradients ∂L/∂h_0 to
    /// ∂L/∂h_{depth−1}: the backward pass is §7's ∂L/∂h = δ·W, with δ = ∂L/∂h_k ⊙ f'.
    fn propagate(&self, draws: &Draws) -> (Vec<Array2<f64>>, Vec<Array2<f64>>) {
        let f = self.activation;
        let mut hs = vec![draws.x.clone()]; // each (batch, width)
        for w in &draws.weights {
            let z = hs[hs.len() - 1].dot(&w.t());
            hs.push(z.mapv(|z| f.apply(z)));
        }
        let mut grad = draws.r.clone(); // ∂L/∂h_depth
        let mut gs = Vec::with_capacity(self.depth);
        for (w, h) in draws.weights.iter().zip(&hs[1..]).rev() {
            let delta = grad * h.mapv(|h| f.derivative_from_output(h)); // ∂L/∂z_k
            grad = delta.dot(w);
            gs.push(grad.clone());
        }
        gs.reverse();
        (hs, gs)
    }
}

/// The standard deviation of every entry of `a` (about their mean).
fn std(a: &Array2<f64>) -> f64 {
    a.std(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dfdx::prelude::*;

    #[test]
    fn each_rule_draws_weights_with_its_variance() {
        let mut rng = StdRng::seed_from_u64(0);
        for init in Init::ALL {
            let (fan_in, fan_out) = (300, 200);
            let w = init.weights(fan_in, fan_out, &mut rng);
            assert_eq!(w.dim(), (fan_out, fan_in));
            let (measured, wanted) = (w.var(0.0), init.variance(fan_in, fan_out));
            assert!(
                (measured / wanted - 1.0).abs() < 0.03,
                "{init:?}: {measured} vs {wanted}"
            );
            assert!(
                w.mean().unwrap().abs() < 3.0 * (wanted / 60_000.0).sqrt(),
                "{init:?}"
            );
        }
    }

    #[test]
    fn the_default_rule_is_dfdxs_linear_initialisation() {
        let dev = Cpu::seed_from_u64(0);
        let layer = dev.build_module::<Linear<256, 128>, f64>();
        let w = layer.weight.as_vec();
        let limit = 1.0 / 256f64.sqrt();
        assert!(w.iter().all(|v| v.abs() <= limit));
        let variance = w.iter().map(|v| v * v).sum::<f64>() / w.len() as f64;
        let wanted = Init::DfdxDefault.variance(256, 128);
        assert!(
            (variance / wanted - 1.0).abs() < 0.03,
            "{variance} vs {wanted}"
        );
    }

    #[test]
    fn derivatives_from_the_output_match_finite_differences() {
        for f in Activation::ALL {
            for z in [-1.3, -0.2, 0.4, 2.1] {
                let h = 1e-6;
                let numeric = (f.apply(z + h) - f.apply(z - h)) / (2.0 * h);
                let ours = f.derivative_from_output(f.apply(z));
                assert!(
                    (ours - numeric).abs() < 1e-8,
                    "{f:?} at {z}: {ours} vs {numeric}"
                );
            }
        }
    }

    /// The same stack on dfdx's tape: the gradient of L with respect to the input batch.
    fn input_gradient_dfdx(stack: &DeepStack, draws: &Draws) -> Vec<f64> {
        let dev = Cpu::default();
        let tensor = |a: &Array2<f64>| dev.tensor_from_vec(a.iter().copied().collect(), a.dim());
        let x = tensor(&draws.x);
        let mut h = x.leaky_trace();
        for w in &draws.weights {
            let z = h.matmul(tensor(w).permute());
            h = match stack.activation {
                Activation::Sigmoid => z.sigmoid(),
                Activation::Tanh => z.tanh(),
                Activation::Relu => z.relu(),
            };
        }
        let grads = (h * tensor(&draws.r)).sum().backward();
        grads.get(&x).as_vec()
    }

    #[test]
    fn the_backward_pass_matches_dfdxs_autograd() {
        for activation in Activation::ALL {
            let stack = DeepStack {
                depth: 4,
                width: 6,
                batch: 5,
                activation,
                init: Init::Glorot,
            };
            let draws = stack.draw(3);
            let (_, gs) = stack.propagate(&draws);
            let ours: Vec<f64> = gs[0].iter().copied().collect();
            let theirs = input_gradient_dfdx(&stack, &draws);
            let worst = ours
                .iter()
                .zip(&theirs)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(
                ours.iter().any(|g| g.abs() > 1e-3),
                "{activation:?}: all-zero gradients"
            );
            assert!(worst < 1e-12, "{activation:?}: {worst}");
        }
    }

    #[test]
    fn he_keeps_a_relu_stack_steady_and_the_default_shrinks_it() {
        let stack = |init| DeepStack {
            depth: 20,
            width: 128,
            batch: 64,
            activation: Activation::Relu,
            init,
        };
        let he = stack(Init::He).scales(1).unwrap();
        let default = stack(Init::DfdxDefault).scales(1).unwrap();
        assert_eq!((he.activations.len(), he.gradients.len()), (20, 20));
        let ratio = |s: &[f64]| s[s.len() - 1] / s[0];
        assert!((0.2..5.0).contains(&ratio(&he.activations)), "{he:?}");
        assert!(ratio(&default.activations) < 1e-6, "{default:?}");
        assert!(ratio(&default.gradients) > 1e6, "{default:?}"); // vanishing towards layer 1
    }

    #[test]
    fn an_empty_stack_is_an_error() {
        let stack = DeepStack {
            depth: 0,
            width: 8,
            batch: 4,
            activation: Activation::Tanh,
            init: Init::He,
        };
        assert!(stack.scales(0).is_err());
    }
}
