//! §4: what depth buys a ReLU network, counted. A ReLU network is piecewise linear; along a
//! line through its input space it has finitely many linear pieces, and [`pieces_along`]
//! finds them exactly, layer by layer. Telgarsky's (2016) sawtooth needs 2^k pieces, which
//! a depth-k network of width 2 has ([`tent_network`]) and a one-hidden-layer network of
//! m units cannot have for m + 1 < 2^k. What networks have at random initialisation
//! (Hanin & Rolnick 2019) and how they stretch a curve (Raghu et al. 2017; Hanin, Jeong &
//! Rolnick 2022) are measured on [`Dense`] stacks with Gaussian weights.

use super::Activation;
use crate::optim::Method;
use crate::train::{fit, Drawn, Measured, TrainConfig};
use crate::Error;
use dfdx::prelude::*;
use ndarray::{Array1, Array2};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

/// One fully connected layer, `z = W h + b`, with `W` of shape `out × in`.
#[derive(Clone, Debug, PartialEq)]
pub struct Dense {
    pub weights: Array2<f64>,
    pub bias: Array1<f64>,
}

/// A fully connected network in plain `f64`: the activation after every layer but the
/// last, which is linear (notebook `11_theory`, §4).
#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    pub layers: Vec<Dense>,
    pub activation: Activation,
}

impl Network {
    /// Every layer's output for the inputs `x` (one row each): the hidden layers after the
    /// activation, then the linear output.
    pub fn layer_outputs(&self, x: &Array2<f64>) -> Vec<Array2<f64>> {
        let mut h = x.clone();
        let mut outputs = Vec::with_capacity(self.layers.len());
        for (i, layer) in self.layers.iter().enumerate() {
            let z = h.dot(&layer.weights.t()) + &layer.bias;
            h = if i + 1 < self.layers.len() {
                z.mapv(|v| self.activation.apply(v))
            } else {
                z
            };
            outputs.push(h.clone());
        }
        outputs
    }

    pub fn forward(&self, x: &Array2<f64>) -> Array2<f64> {
        self.layer_outputs(x).pop().unwrap_or_else(|| x.clone())
    }

    /// The number of weights and biases.
    pub fn parameters(&self) -> usize {
        self.layers
            .iter()
            .map(|l| l.weights.len() + l.bias.len())
            .sum()
    }

    /// The number of hidden units.
    pub fn hidden_units(&self) -> usize {
        let n = self.layers.len().saturating_sub(1);
        self.layers[..n].iter().map(|l| l.bias.len()).sum()
    }
}

/// The tent map on `[0, 1]`: `2x` below ½, `2 − 2x` above; composed `k` times it is
/// Telgarsky's sawtooth, with 2^k linear pieces. Written directly, as the reference.
pub fn sawtooth(k: usize, x: f64) -> f64 {
    (0..k).fold(x, |x, _| if x < 0.5 { 2.0 * x } else { 2.0 - 2.0 * x })
}

/// The sawtooth of `k` teeth-doublings as a ReLU network of depth `k` and width 2:
/// `tent(x) = 2 relu(x) − 4 relu(x − ½)` on `[0, 1]`, each layer computing the next
/// tent's two units from the previous one's.
pub fn tent_network(k: usize) -> Network {
    let layer = |w: Vec<f64>, rows: usize, cols: usize, b: Vec<f64>| Dense {
        weights: Array2::from_shape_vec((rows, cols), w).expect("shapes written out"),
        bias: Array1::from(b),
    };
    let mut layers = vec![layer(vec![1.0, 1.0], 2, 1, vec![0.0, -0.5])];
    for _ in 1..k {
        layers.push(layer(vec![2.0, -4.0, 2.0, -4.0], 2, 2, vec![0.0, -0.5]));
    }
    layers.push(layer(vec![2.0, -4.0], 1, 2, vec![0.0]));
    Network {
        layers,
        activation: Activation::Relu,
    }
}

/// Where a ReLU network's pieces are along a segment of its input space.
#[derive(Clone, Debug, PartialEq)]
pub struct Pieces {
    /// The points `t ∈ [0, 1]` of the segment `a + t (b − a)` where some unit switches on
    /// or off, with both ends: the linear regions are the intervals between them.
    pub breakpoints: Vec<f64>,
    /// Linear pieces of the output: neighbouring regions whose output has the same slope
    /// are one piece.
    pub pieces: usize,
}

impl Pieces {
    /// Linear regions along the segment (Hanin & Rolnick's count): one per interval.
    pub fn regions(&self) -> usize {
        self.breakpoints.len() - 1
    }
}

/// The exact pieces of a ReLU `network` along the segment from `a` to `b`.
///
/// Layer by layer: between consecutive breakpoints found so far, every unit of the next
/// layer is linear in `t`, so it changes sign at most once there, at the zero of the line
/// through its two end values. Adding those zeros and moving on to the next layer leaves
/// the output linear between consecutive breakpoints.
pub fn pieces_along(network: &Network, a: &[f64], b: &[f64]) -> Result<Pieces, Error> {
    if network.activation != Activation::Relu || a.len() != b.len() {
        return Err(Error::InvalidArgument {
            what: "counting linear pieces",
            expected: "a ReLU network and two points of its input space",
            got: format!(
                "{:?}, points of {} and {} values",
                network.activation,
                a.len(),
                b.len()
            ),
        });
    }
    let points = |ts: &[f64]| {
        Array2::from_shape_fn((ts.len(), a.len()), |(i, j)| a[j] + ts[i] * (b[j] - a[j]))
    };
    let mut ts = vec![0.0, 1.0];
    let hidden = network.layers.len() - 1;
    for depth in 0..hidden {
        let prefix = Network {
            layers: network.layers[..=depth].to_vec(),
            activation: network.activation,
        };
        // The layer's pre-activations: the prefix's last layer, taken before the ReLU.
        let z = prefix.forward(&points(&ts));
        let mut found = Vec::new();
        for (i, pair) in ts.windows(2).enumerate() {
            for unit in 0..z.ncols() {
                let (z0, z1) = (z[[i, unit]], z[[i + 1, unit]]);
                if z0 * z1 < 0.0 {
                    found.push(pair[0] + (pair[1] - pair[0]) * z0 / (z0 - z1));
                }
            }
        }
        ts.extend(found);
        ts.sort_by(f64::total_cmp);
        ts.dedup_by(|x, y| (*x - *y).abs() < 1e-12);
    }
    let out = network.forward(&points(&ts));
    let slopes: Vec<Vec<f64>> = ts
        .windows(2)
        .enumerate()
        .map(|(i, w)| {
            let dt = w[1] - w[0];
            out.row(i + 1)
                .iter()
                .zip(out.row(i))
                .map(|(y1, y0)| (y1 - y0) / dt)
                .collect()
        })
        .collect();
    let same = |s: &[f64], r: &[f64]| {
        s.iter()
            .zip(r)
            .all(|(x, y)| (x - y).abs() <= 1e-6 * (1.0 + x.abs().max(y.abs())))
    };
    let pieces = 1 + slopes.windows(2).filter(|w| !same(&w[0], &w[1])).count();
    Ok(Pieces {
        breakpoints: ts,
        pieces,
    })
}

/// A network with Gaussian weights of variance `weight_variance / fan_in` and biases of
/// variance `bias_variance`, layer sizes `sizes` (input first, output last). He
/// initialisation is `weight_variance = 2` with ReLU.
pub fn random_network(
    sizes: &[usize],
    activation: Activation,
    weight_variance: f64,
    bias_variance: f64,
    seed: u64,
) -> Network {
    let mut rng = StdRng::seed_from_u64(seed);
    let unit = Normal::new(0.0, 1.0).expect("a standard normal");
    let layers = sizes
        .windows(2)
        .map(|w| {
            let (fan_in, out) = (w[0], w[1]);
            let scale = (weight_variance / fan_in as f64).sqrt();
            Dense {
                weights: Array2::from_shape_fn((out, fan_in), |_| scale * unit.sample(&mut rng)),
                bias: Array1::from_shape_fn(out, |_| bias_variance.sqrt() * unit.sample(&mut rng)),
            }
        })
        .collect();
    Network { layers, activation }
}

/// The mean number of linear regions along a segment between two random points of the
/// input space (each coordinate N(0, 1)), over `nets` He-initialised ReLU networks of
/// `depth` hidden layers of `width` units, with `inputs` inputs and biases of variance
/// 0.01 (Hanin & Rolnick 2019's setting; notebook `11_theory`, §4).
pub fn regions_at_init(
    inputs: usize,
    width: usize,
    depth: usize,
    nets: usize,
    seed: u64,
) -> Result<f64, Error> {
    let mut sizes = vec![inputs];
    sizes.extend(std::iter::repeat_n(width, depth));
    sizes.push(1);
    let unit = Normal::new(0.0, 1.0).expect("a standard normal");
    let mut total = 0;
    for n in 0..nets as u64 {
        let net_seed = seed.wrapping_mul(1000).wrapping_add(n);
        let network = random_network(&sizes, Activation::Relu, 2.0, 0.01, net_seed);
        let mut rng = StdRng::seed_from_u64(net_seed ^ 0xa11);
        let a: Vec<f64> = (0..inputs).map(|_| unit.sample(&mut rng)).collect();
        let b: Vec<f64> = (0..inputs).map(|_| unit.sample(&mut rng)).collect();
        total += pieces_along(&network, &a, &b)?.regions();
    }
    Ok(total as f64 / nets as f64)
}

/// The length of a closed curve through `network`'s layers: a circle of radius √d in a
/// random plane of the d-dimensional input space, drawn with `points` points, and its
/// image after every layer (input first, then each layer's output; the last is linear).
pub fn trajectory_lengths(network: &Network, points: usize, seed: u64) -> Vec<f64> {
    let d = network.layers[0].weights.ncols();
    let mut rng = StdRng::seed_from_u64(seed);
    let unit = Normal::new(0.0, 1.0).expect("a standard normal");
    let mut u: Vec<f64> = (0..d).map(|_| unit.sample(&mut rng)).collect();
    let mut v: Vec<f64> = (0..d).map(|_| unit.sample(&mut rng)).collect();
    // Gram–Schmidt: two orthonormal directions spanning the circle's plane.
    let norm = |x: &[f64]| x.iter().map(|a| a * a).sum::<f64>().sqrt();
    let nu = norm(&u);
    u.iter_mut().for_each(|a| *a /= nu);
    let along: f64 = u.iter().zip(&v).map(|(a, b)| a * b).sum();
    v.iter_mut().zip(&u).for_each(|(b, a)| *b -= along * a);
    let nv = norm(&v);
    v.iter_mut().for_each(|b| *b /= nv);
    let radius = (d as f64).sqrt();
    let circle = Array2::from_shape_fn((points + 1, d), |(i, j)| {
        let angle = 2.0 * std::f64::consts::PI * i as f64 / points as f64;
        radius * (angle.cos() * u[j] + angle.sin() * v[j])
    });
    let length = |curve: &Array2<f64>| {
        (1..curve.nrows())
            .map(|i| {
                let step = &curve.row(i) - &curve.row(i - 1);
                step.dot(&step).sqrt()
            })
            .sum::<f64>()
    };
    std::iter::once(length(&circle))
        .chain(network.layer_outputs(&circle).iter().map(length))
        .collect()
}

/// Width and depth of the deep, narrow network trained on the sawtooth (hidden layers).
pub const DEEP_WIDTH: usize = 6;
pub const DEEP_LAYERS: usize = 6;
/// Units of the shallow, wide network with the same number of parameters:
/// `3m + 1 = 2w + (L − 1)(w² + w) + w + 1`.
pub const SHALLOW_UNITS: usize =
    (2 * DEEP_WIDTH + (DEEP_LAYERS - 1) * (DEEP_WIDTH * DEEP_WIDTH + DEEP_WIDTH) + DEEP_WIDTH) / 3;

/// The deep, narrow ReLU network of §4: [`DEEP_LAYERS`] hidden layers of [`DEEP_WIDTH`].
pub type DeepNet = (
    dfdx::nn::modules::Linear<1, DEEP_WIDTH, f32, Cpu>,
    ReLU,
    dfdx::nn::modules::Repeated<
        (
            dfdx::nn::modules::Linear<DEEP_WIDTH, DEEP_WIDTH, f32, Cpu>,
            ReLU,
        ),
        { DEEP_LAYERS - 1 },
    >,
    dfdx::nn::modules::Linear<DEEP_WIDTH, 1, f32, Cpu>,
);

/// The shallow, wide ReLU network of §4: one hidden layer of [`SHALLOW_UNITS`].
pub type ShallowNet = (
    dfdx::nn::modules::Linear<1, SHALLOW_UNITS, f32, Cpu>,
    ReLU,
    dfdx::nn::modules::Linear<SHALLOW_UNITS, 1, f32, Cpu>,
);

/// A [`DeepNet`], He-initialised as [`random_network`] draws it (weights N(0, 2/fan-in),
/// biases N(0, 0.01)): it starts with about 14 pieces on `[0, 1]`, where dfdx's uniform
/// default left 11% of these networks dead or linear at the start.
pub fn deep_net(seed: u64) -> DeepNet {
    let mut net = Cpu::default().build_module::<(
        Linear<1, DEEP_WIDTH>,
        ReLU,
        Repeated<(Linear<DEEP_WIDTH, DEEP_WIDTH>, ReLU), { DEEP_LAYERS - 1 }>,
        Linear<DEEP_WIDTH, 1>,
    ), f32>();
    let mut sizes = vec![1];
    sizes.extend([DEEP_WIDTH; DEEP_LAYERS]);
    sizes.push(1);
    let he = random_network(&sizes, Activation::Relu, 2.0, 0.01, seed);
    load(&mut net.0, &he.layers[0]);
    for (layer, dense) in net.2.modules.iter_mut().zip(&he.layers[1..]) {
        load(&mut layer.0, dense);
    }
    load(&mut net.3, &he.layers[DEEP_LAYERS]);
    net
}

/// A [`ShallowNet`], He-initialised as [`deep_net`] is.
pub fn shallow_net(seed: u64) -> ShallowNet {
    let mut net = Cpu::default()
        .build_module::<(Linear<1, SHALLOW_UNITS>, ReLU, Linear<SHALLOW_UNITS, 1>), f32>();
    let he = random_network(&[1, SHALLOW_UNITS, 1], Activation::Relu, 2.0, 0.01, seed);
    load(&mut net.0, &he.layers[0]);
    load(&mut net.2, &he.layers[1]);
    net
}

/// Sets a dfdx linear layer's weights and bias to a [`Dense`]'s.
fn load<const I: usize, const O: usize>(
    layer: &mut dfdx::nn::modules::Linear<I, O, f32, Cpu>,
    dense: &Dense,
) {
    let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    layer.weight.copy_from(&f32s(
        dense.weights.as_slice().expect("a standard-layout matrix"),
    ));
    layer
        .bias
        .copy_from(&f32s(dense.bias.as_slice().expect("a contiguous vector")));
}

/// A dfdx linear layer's weights and bias as a [`Dense`].
fn dense<const I: usize, const O: usize>(
    layer: &dfdx::nn::modules::Linear<I, O, f32, Cpu>,
) -> Dense {
    let f64s = |v: Vec<f32>| v.into_iter().map(f64::from).collect::<Vec<f64>>();
    Dense {
        weights: Array2::from_shape_vec((O, I), f64s(layer.weight.as_vec()))
            .expect("a weight has its declared shape"),
        bias: Array1::from(f64s(layer.bias.as_vec())),
    }
}

/// A trained [`DeepNet`] as a plain [`Network`], for counting its pieces.
pub fn deep_network(net: &DeepNet) -> Network {
    let mut layers = vec![dense(&net.0)];
    layers.extend(net.2.modules.iter().map(|(layer, _)| dense(layer)));
    layers.push(dense(&net.3));
    Network {
        layers,
        activation: Activation::Relu,
    }
}

/// A trained [`ShallowNet`] as a plain [`Network`].
pub fn shallow_network(net: &ShallowNet) -> Network {
    Network {
        layers: vec![dense(&net.0), dense(&net.2)],
        activation: Activation::Relu,
    }
}

/// How the two networks of §4 are trained on the sawtooth.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SawtoothSettings {
    /// The target is the tent map composed `teeth` times: 2^teeth pieces.
    pub teeth: usize,
    pub steps: usize,
    pub batch: usize,
    /// Adam's peak learning rate on the course's cosine schedule.
    pub lr: f64,
    pub seed: u64,
}

/// Trains `model` (`forward` maps a column of inputs to a column of outputs) by squared
/// error on inputs drawn uniformly from `[0, 1]`, through the course's loop; returns the
/// loss of every step.
pub fn fit_sawtooth<M>(model: &mut M, settings: &SawtoothSettings) -> Result<Vec<f32>, Error>
where
    M: TensorCollection<f32, Cpu>
        + Module<
            Tensor<(usize, Const<1>), f32, Cpu, OwnedTape<f32, Cpu>>,
            Output = Tensor<(usize, Const<1>), f32, Cpu, OwnedTape<f32, Cpu>>,
        > + 'static,
{
    let dev = Cpu::default();
    let mut rng = StdRng::seed_from_u64(settings.seed ^ 0x5a77);
    let teeth = settings.teeth;
    let draw = || {
        let x: Vec<f32> = (0..settings.batch).map(|_| rng.gen::<f32>()).collect();
        let y: Vec<f32> = x
            .iter()
            .map(|&x| sawtooth(teeth, x as f64) as f32)
            .collect();
        (
            dev.tensor_from_vec(x, (settings.batch, Const::<1>)),
            dev.tensor_from_vec(y, (settings.batch, Const::<1>)),
        )
    };
    type Batch = (
        Tensor<(usize, Const<1>), f32, Cpu>,
        Tensor<(usize, Const<1>), f32, Cpu>,
    );
    let objective = |m: &mut M, (x, y): Batch, grads| {
        Ok::<_, Error>(Measured::loss(mse_loss(m.forward(x.traced(grads)), y)))
    };
    let mut adam = Method::Adam.at(settings.lr).build(model);
    let config = TrainConfig::cosine(settings.steps, settings.steps, settings.lr);
    Ok(fit(
        model,
        adam.as_mut(),
        Drawn::new(settings.steps, draw),
        objective,
        &config,
    )?
    .losses())
}

/// A network's mean squared error against the sawtooth of `teeth` on 4,001 evenly spaced
/// points of `[0, 1]`.
pub fn sawtooth_error(network: &Network, teeth: usize) -> f64 {
    let xs: Vec<f64> = (0..=4000).map(|i| i as f64 / 4000.0).collect();
    let out =
        network.forward(&Array2::from_shape_vec((xs.len(), 1), xs.clone()).expect("a column"));
    xs.iter()
        .zip(out.iter())
        .map(|(x, y)| (y - sawtooth(teeth, *x)).powi(2))
        .sum::<f64>()
        / xs.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tent_network_computes_the_sawtooth_with_two_to_the_k_pieces() {
        for k in 1..=8 {
            let net = tent_network(k);
            let xs: Vec<f64> = (0..=1000).map(|i| i as f64 / 1000.0).collect();
            let out = net.forward(&Array2::from_shape_vec((xs.len(), 1), xs.clone()).unwrap());
            for (x, y) in xs.iter().zip(out.iter()) {
                assert!((y - sawtooth(k, *x)).abs() < 1e-9, "k = {k}, x = {x}");
            }
            let pieces = pieces_along(&net, &[0.0], &[1.0]).unwrap();
            assert_eq!(pieces.pieces, 1 << k, "k = {k}");
            assert_eq!(pieces.regions(), 1 << k, "k = {k}");
        }
    }

    #[test]
    fn the_counter_finds_hand_placed_kinks_and_merges_equal_slopes() {
        // relu(x) + relu(x − 1) − relu(x − 2): kinks at 0, 1, 2 on [−1, 3].
        let kinks = Network {
            layers: vec![
                Dense {
                    weights: Array2::from_shape_vec((3, 1), vec![1.0, 1.0, 1.0]).unwrap(),
                    bias: Array1::from(vec![0.0, -1.0, -2.0]),
                },
                Dense {
                    weights: Array2::from_shape_vec((1, 3), vec![1.0, 1.0, -1.0]).unwrap(),
                    bias: Array1::from(vec![0.0]),
                },
            ],
            activation: Activation::Relu,
        };
        let pieces = pieces_along(&kinks, &[-1.0], &[3.0]).unwrap();
        assert_eq!(pieces.pieces, 4);
        let ts: Vec<f64> = pieces.breakpoints.iter().map(|t| -1.0 + 4.0 * t).collect();
        for (t, want) in ts.iter().zip([-1.0, 0.0, 1.0, 2.0, 3.0]) {
            assert!((t - want).abs() < 1e-12, "{ts:?}");
        }
        // A unit whose output weight is 0 switches but changes no slope: a region, not a piece.
        let mut silent = kinks.clone();
        silent.layers[1].weights[[0, 1]] = 0.0;
        let pieces = pieces_along(&silent, &[-1.0], &[3.0]).unwrap();
        assert_eq!((pieces.regions(), pieces.pieces), (4, 3));
    }

    #[test]
    fn a_one_hidden_layer_network_has_at_most_m_plus_one_pieces() {
        for seed in 0..5 {
            let net = random_network(&[1, 12, 1], Activation::Relu, 2.0, 1.0, seed);
            let pieces = pieces_along(&net, &[-5.0], &[5.0]).unwrap();
            assert!(
                pieces.pieces <= 13 && pieces.pieces >= 2,
                "{}",
                pieces.pieces
            );
        }
    }

    #[test]
    fn a_linear_network_keeps_a_circle_s_length_scaled_by_its_gain() {
        let net = Network {
            layers: vec![Dense {
                weights: Array2::from_diag(&Array1::from(vec![3.0, 3.0])),
                bias: Array1::zeros(2),
            }],
            activation: Activation::Relu,
        };
        let lengths = trajectory_lengths(&net, 4000, 0);
        let circumference = 2.0 * std::f64::consts::PI * 2f64.sqrt();
        assert!(
            (lengths[0] - circumference).abs() < 1e-3
                && (lengths[1] / lengths[0] - 3.0).abs() < 1e-9
        );
    }
}
