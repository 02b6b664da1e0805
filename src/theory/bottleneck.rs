//! §3: the information plane of Shwartz-Ziv & Tishby (2017) and the critique of Saxe et al.
//! (2018). A small network learns the 12-bit task; after chosen steps, each layer's
//! activations on all 4,096 inputs are binned and its mutual information with the input
//! and with the label is counted ([`binned_information`]).

use super::Activation;
use crate::data::one_hot;
use crate::optim::Method;
use crate::train::{fit, Drawn, Measured, TrainConfig};
use crate::Error;
use dfdx::prelude::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::collections::HashMap;

/// The 12-bit task: every pattern of 12 bits, labelled by a rule that is symmetric under
/// the rotations of the sphere (notebook `11_theory`, §3).
///
/// The paper places the 12 bits on "12 uniformly distributed points on a 2-D sphere" (the
/// vertices of an icosahedron, `vᵢ`) and thresholds a spherically symmetric function of
/// them so that about half the patterns are positive. Its data file is not public, so the
/// rule here is reproduced from that description: with spins `sᵢ = 2xᵢ − 1`,
/// `y = [‖Σ sᵢ vᵢ‖² > θ]`, `θ` the median, a function of the pattern's shape on the sphere
/// that any rotation of the icosahedron (a permutation of the bits) leaves unchanged.
#[derive(Clone, Debug, PartialEq)]
pub struct TwelveBits {
    /// 4,096 rows of 12 values in {0, 1}.
    pub inputs: Vec<f32>,
    pub labels: Vec<usize>,
}

/// The number of input bits and of patterns.
pub const BITS: usize = 12;
pub const PATTERNS: usize = 1 << BITS;

impl TwelveBits {
    pub fn new() -> TwelveBits {
        let phi = (1.0 + 5f64.sqrt()) / 2.0;
        let mut vertices = Vec::new();
        for a in [-1.0, 1.0] {
            for b in [-phi, phi] {
                vertices.extend([[0.0, a, b], [a, b, 0.0], [b, 0.0, a]]);
            }
        }
        let shape = |pattern: usize| {
            let mut sum = [0.0f64; 3];
            for (bit, v) in vertices.iter().enumerate() {
                let s = if pattern >> bit & 1 == 1 { 1.0 } else { -1.0 };
                (0..3).for_each(|j| sum[j] += s * v[j]);
            }
            // Integer-valued up to the golden ratio's terms; rounded so ties stay ties.
            (sum.iter().map(|x| x * x).sum::<f64>() * 1e6).round() / 1e6
        };
        let values: Vec<f64> = (0..PATTERNS).map(shape).collect();
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let threshold = sorted[PATTERNS / 2];
        let inputs = (0..PATTERNS)
            .flat_map(|p| (0..BITS).map(move |bit| (p >> bit & 1) as f32))
            .collect();
        let labels = values
            .iter()
            .map(|&v| usize::from(v >= threshold))
            .collect();
        TwelveBits { inputs, labels }
    }

    /// The share of positive patterns.
    pub fn positive_share(&self) -> f64 {
        self.labels.iter().sum::<usize>() as f64 / self.labels.len() as f64
    }
}

impl Default for TwelveBits {
    fn default() -> TwelveBits {
        TwelveBits::new()
    }
}

/// `−Σ p log₂ p` of the distribution given by `counts`, in bits.
pub fn entropy_bits(counts: impl Iterator<Item = usize>) -> f64 {
    let counts: Vec<usize> = counts.collect();
    let total = counts.iter().sum::<usize>() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / total;
            -p * p.log2()
        })
        .sum()
}

/// How activations are discretised before counting.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Binning {
    /// `bins` equal bins over `[low, high]` (values outside go to the end bins).
    Fixed { bins: usize, low: f32, high: f32 },
    /// `bins` equal bins from 0 to the largest activation in the layer (ReLU layers, whose
    /// range grows as they train).
    UpToMax { bins: usize },
    /// No binning: two patterns are the same only if every value is equal.
    Exact,
}

/// `(I(X; T), I(T; Y))` in bits for a layer whose activations on each of the equally
/// likely inputs are the rows of `activations` (`labels.len()` rows of `units`), binned by
/// `binning`. The network is deterministic, so `T` is a function of `X` and
/// `I(X; T) = H(T)`; `I(T; Y) = H(Y) − H(Y | T)`.
pub fn binned_information(
    activations: &[f32],
    units: usize,
    labels: &[usize],
    binning: Binning,
) -> (f64, f64) {
    let max = activations.iter().copied().fold(0.0f32, f32::max);
    let bin = |v: f32| -> u32 {
        match binning {
            Binning::Fixed { bins, low, high } => {
                (((v - low) / (high - low) * bins as f32).floor().max(0.0) as u32)
                    .min(bins as u32 - 1)
            }
            Binning::UpToMax { bins } => ((v / max.max(f32::MIN_POSITIVE) * bins as f32)
                .floor()
                .max(0.0) as u32)
                .min(bins as u32 - 1),
            Binning::Exact => v.to_bits(),
        }
    };
    let mut joint: HashMap<(Vec<u32>, usize), usize> = HashMap::new();
    for (row, &y) in activations.chunks(units).zip(labels) {
        *joint
            .entry((row.iter().map(|&v| bin(v)).collect(), y))
            .or_default() += 1;
    }
    let mut marginal: HashMap<&[u32], usize> = HashMap::new();
    for ((t, _), &count) in &joint {
        *marginal.entry(t.as_slice()).or_default() += count;
    }
    let classes = labels.iter().max().map_or(0, |m| m + 1);
    let h_y = entropy_bits((0..classes).map(|c| labels.iter().filter(|&&y| y == c).count()));
    let h_t = entropy_bits(marginal.values().copied());
    let h_ty = entropy_bits(joint.values().copied());
    (h_t, h_t + h_y - h_ty)
}

/// The 12-10-7-5-4-3-2 network of the paper: five hidden layers and a two-way softmax
/// output (notebook `11_theory`, §3). The activation is chosen when it runs
/// ([`Activation`]), so one type serves the tanh network and the ReLU one.
pub type InformationNet = (
    dfdx::nn::modules::Linear<12, 10, f32, Cpu>,
    dfdx::nn::modules::Linear<10, 7, f32, Cpu>,
    dfdx::nn::modules::Linear<7, 5, f32, Cpu>,
    dfdx::nn::modules::Linear<5, 4, f32, Cpu>,
    dfdx::nn::modules::Linear<4, 3, f32, Cpu>,
    dfdx::nn::modules::Linear<3, 2, f32, Cpu>,
);

/// An [`InformationNet`] with the seeded device's initial weights (dfdx's default,
/// uniform in ±1/√fan-in).
pub fn information_net(seed: u64) -> InformationNet {
    Cpu::seed_from_u64(seed).build_module::<(
        Linear<12, 10>,
        Linear<10, 7>,
        Linear<7, 5>,
        Linear<5, 4>,
        Linear<4, 3>,
        Linear<3, 2>,
    ), f32>()
}

/// The layers' widths, the output's last.
pub const WIDTHS: [usize; 6] = [10, 7, 5, 4, 3, 2];

fn activate<S: Shape, T: Tape<f32, Cpu>>(
    x: Tensor<S, f32, Cpu, T>,
    activation: Activation,
) -> Tensor<S, f32, Cpu, T> {
    match activation {
        Activation::Relu => x.relu(),
        Activation::Tanh => x.tanh(),
    }
}

/// The network's logits for the rows of `x`, on a tape.
pub fn logits<T: Tape<f32, Cpu>>(
    net: &InformationNet,
    x: Tensor<(usize, Const<12>), f32, Cpu, T>,
    activation: Activation,
) -> Tensor<(usize, Const<2>), f32, Cpu, T> {
    let h = activate(net.0.forward(x), activation);
    let h = activate(net.1.forward(h), activation);
    let h = activate(net.2.forward(h), activation);
    let h = activate(net.3.forward(h), activation);
    let h = activate(net.4.forward(h), activation);
    net.5.forward(h)
}

/// Every layer's activations on all the task's inputs (rows of [`WIDTHS`]`[l]` values),
/// the output as softmax probabilities, as the paper's information plane has it.
pub fn layer_activations(
    net: &InformationNet,
    task: &TwelveBits,
    activation: Activation,
) -> Vec<Vec<f32>> {
    let dev = Cpu::default();
    let x = dev.tensor_from_vec(task.inputs.clone(), (PATTERNS, Const::<12>));
    let h1 = activate(net.0.forward(x), activation);
    let h2 = activate(net.1.forward(h1.clone()), activation);
    let h3 = activate(net.2.forward(h2.clone()), activation);
    let h4 = activate(net.3.forward(h3.clone()), activation);
    let h5 = activate(net.4.forward(h4.clone()), activation);
    let out = net.5.forward(h5.clone()).softmax::<Axis<1>>();
    vec![
        h1.as_vec(),
        h2.as_vec(),
        h3.as_vec(),
        h4.as_vec(),
        h5.as_vec(),
        out.as_vec(),
    ]
}

/// How a run of the information-plane experiment is set up.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlaneSettings {
    pub activation: Activation,
    pub steps: usize,
    pub batch: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// The share of the 4,096 patterns trained on (the paper's 85%).
    pub train_share: f64,
    /// Bins per unit for the tanh layers (over [−1, 1]; the output over [0, 1]) and for
    /// the ReLU layers (from 0 to the layer's largest value).
    pub bins: usize,
    /// Points measured, spaced evenly on a log scale of the step.
    pub checkpoints: usize,
    pub seed: u64,
}

impl PlaneSettings {
    /// The binning of layer `layer` (the last is the softmax output).
    pub fn binning(&self, layer: usize) -> Binning {
        let output = layer + 1 == WIDTHS.len();
        match (self.activation, output) {
            (_, true) => Binning::Fixed {
                bins: self.bins,
                low: 0.0,
                high: 1.0,
            },
            (Activation::Tanh, false) => Binning::Fixed {
                bins: self.bins,
                low: -1.0,
                high: 1.0,
            },
            (Activation::Relu, false) => Binning::UpToMax { bins: self.bins },
        }
    }
}

/// One measurement of the network during training.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanePoint {
    pub step: usize,
    /// `(I(X; T), I(T; Y))` in bits for each layer, the output's last.
    pub information: Vec<(f64, f64)>,
    /// The share of hidden tanh values beyond ±0.9 (for ReLU, the share at exactly 0).
    pub saturated: f64,
    pub train_accuracy: f64,
    pub test_accuracy: f64,
}

/// A trained network and its path through the information plane.
pub struct PlaneRun {
    pub net: InformationNet,
    pub settings: PlaneSettings,
    pub points: Vec<PlanePoint>,
}

/// The steps at which a run is measured: 0, then `count − 1` steps spaced evenly in
/// `log(1 + step)` up to `steps`, without repeats.
pub fn checkpoints(steps: usize, count: usize) -> Vec<usize> {
    let top = (1.0 + steps as f64).ln();
    let mut at: Vec<usize> = (0..count)
        .map(|i| ((top * i as f64 / (count - 1).max(1) as f64).exp() - 1.0).round() as usize)
        .collect();
    at.dedup();
    at
}

/// Trains the information network on the 12-bit task and measures it at
/// [`checkpoints`] (notebook `11_theory`, §3).
pub fn information_plane(task: &TwelveBits, settings: PlaneSettings) -> Result<PlaneRun, Error> {
    let dev = Cpu::default();
    let mut net = information_net(settings.seed);
    let mut order: Vec<usize> = (0..PATTERNS).collect();
    let mut rng = StdRng::seed_from_u64(settings.seed);
    order.shuffle(&mut rng);
    let (train, test) = order.split_at((settings.train_share * PATTERNS as f64).round() as usize);
    let (train, test) = (train.to_vec(), test.to_vec());
    let mut adam = Method::Adam.at(settings.lr).build(&net);
    let mut points = Vec::new();
    let mut done = 0;
    for step in checkpoints(settings.steps, settings.checkpoints) {
        if step > done {
            let draw = || {
                let rows: Vec<usize> = train
                    .choose_multiple(&mut rng, settings.batch)
                    .copied()
                    .collect();
                let x: Vec<f32> = rows
                    .iter()
                    .flat_map(|&r| task.inputs[r * BITS..(r + 1) * BITS].to_vec())
                    .collect();
                let labels: Vec<usize> = rows.iter().map(|&r| task.labels[r]).collect();
                (
                    dev.tensor_from_vec(x, (rows.len(), Const::<12>)),
                    one_hot::<2>(&dev, &labels).expect("the task's labels are 0 or 1"),
                )
            };
            type Batch = (
                Tensor<(usize, Const<12>), f32, Cpu>,
                Tensor<(usize, Const<2>), f32, Cpu>,
            );
            let objective = |net: &mut InformationNet, (x, y): Batch, grads| {
                let loss = cross_entropy_with_logits_loss(
                    logits(net, x.traced(grads), settings.activation),
                    y,
                );
                Ok::<_, Error>(Measured::loss(loss))
            };
            fit(
                &mut net,
                adam.as_mut(),
                Drawn::new(step - done, draw),
                objective,
                &TrainConfig::new(1).quiet(),
            )?;
            done = step;
        }
        points.push(measure(&net, task, &settings, step, (&train, &test)));
    }
    Ok(PlaneRun {
        net,
        settings,
        points,
    })
}

fn measure(
    net: &InformationNet,
    task: &TwelveBits,
    settings: &PlaneSettings,
    step: usize,
    (train, test): (&[usize], &[usize]),
) -> PlanePoint {
    let layers = layer_activations(net, task, settings.activation);
    let information = layers
        .iter()
        .zip(WIDTHS)
        .enumerate()
        .map(|(l, (values, units))| {
            binned_information(values, units, &task.labels, settings.binning(l))
        })
        .collect();
    let hidden = &layers[..layers.len() - 1];
    let total: usize = hidden.iter().map(Vec::len).sum();
    let saturated = hidden
        .iter()
        .flatten()
        .filter(|&&v| match settings.activation {
            Activation::Tanh => v.abs() > 0.9,
            Activation::Relu => v == 0.0,
        })
        .count() as f64
        / total as f64;
    let output = &layers[layers.len() - 1];
    let accuracy = |rows: &[usize]| {
        rows.iter()
            .filter(|&&r| usize::from(output[2 * r + 1] > output[2 * r]) == task.labels[r])
            .count() as f64
            / rows.len() as f64
    };
    PlanePoint {
        step,
        information,
        saturated,
        train_accuracy: accuracy(train),
        test_accuracy: accuracy(test),
    }
}

/// How far a layer's `I(X; T)` fell after its peak, in bits: the "compression phase" if
/// there is one (0 when it never fell).
pub fn compression(points: &[PlanePoint], layer: usize) -> f64 {
    let values: Vec<f64> = points.iter().map(|p| p.information[layer].0).collect();
    let peak = values.iter().copied().fold(f64::MIN, f64::max);
    peak - values.last().copied().unwrap_or(peak)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_task_is_balanced_and_symmetric_under_relabelling_the_sphere() {
        let task = TwelveBits::new();
        assert_eq!(task.labels.len(), PATTERNS);
        let share = task.positive_share();
        assert!((0.4..0.6).contains(&share), "{share}");
        // Flipping every bit maps Σ sᵢ vᵢ to its negative: same norm, same label.
        for p in 0..PATTERNS {
            assert_eq!(task.labels[p], task.labels[p ^ (PATTERNS - 1)]);
        }
    }

    #[test]
    fn the_estimator_counts_known_entropies() {
        // Eight distinct values, equally likely: 3 bits; the label a copy of one bit.
        let values: Vec<f32> = (0..8).map(|i| i as f32 / 8.0 + 0.01).collect();
        let labels: Vec<usize> = (0..8).map(|i| i % 2).collect();
        let exact = binned_information(&values, 1, &labels, Binning::Exact);
        assert!(
            (exact.0 - 3.0).abs() < 1e-12 && (exact.1 - 1.0).abs() < 1e-12,
            "{exact:?}"
        );
        // Two bins: the value's high bit, independent of the label (the low bit).
        let coarse = binned_information(
            &values,
            1,
            &labels,
            Binning::Fixed {
                bins: 2,
                low: 0.0,
                high: 1.0,
            },
        );
        assert!(
            (coarse.0 - 1.0).abs() < 1e-12 && coarse.1.abs() < 1e-12,
            "{coarse:?}"
        );
        // One bin: nothing is known.
        let none = binned_information(&values, 1, &labels, Binning::UpToMax { bins: 1 });
        assert!(none.0.abs() < 1e-12 && none.1.abs() < 1e-12, "{none:?}");
        assert!((entropy_bits([1, 1, 2].into_iter()) - 1.5).abs() < 1e-12);
    }

    #[test]
    fn checkpoints_start_at_zero_and_end_at_the_last_step() {
        let at = checkpoints(1000, 12);
        assert_eq!((at[0], *at.last().unwrap()), (0, 1000));
        assert!(at.windows(2).all(|w| w[0] < w[1]));
    }
}
