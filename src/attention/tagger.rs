//! An encoder that labels every position of a digit string (notebook `05_attention`
//! §3–§5): token embedding, positional encoding, a [`Stack`] of blocks, a linear read-out.

use super::tasks::{Batch, Task, VOCAB};
use crate::nn::{linear, LayerNorm1D};
use crate::optim::{Method, Schedule};
use crate::runtime::device;
use crate::train::{argmax, fit, Drawn, Measured, TrainConfig};
use crate::transformer::blocks::{Layout, Norm, Stack};
use crate::transformer::positions::{add_positions, Positions};
use crate::transformer::{ids, masked_cross_entropy, Heads, Ids, Logits, Seqs};
use crate::Error;
use dfdx::nn::builders as builder;
use dfdx::nn::modules::{Embedding, Linear};
use dfdx::prelude::*;
use num_traits::Float;
use rand::{rngs::StdRng, SeedableRng};
use rand_distr::uniform::SampleUniform;

/// The toy models' token dimension.
pub const DIM: usize = 32;
/// The hidden width of their feed-forward networks.
pub const FF: usize = 64;
/// The rows of a learned position table: the longest sequence a learned model can read.
pub const MAX_POS: usize = 32;
/// Sequences per training batch.
pub const BATCH: usize = 32;

/// The weights of a [`Tagger`] with `H` heads and `L` blocks.
#[derive(Clone, Debug)]
pub struct TaggerNet<const H: usize, const L: usize, E: Dtype, D: Storage<E>> {
    pub tokens: Embedding<VOCAB, DIM, E, D>,
    pub table: Embedding<MAX_POS, DIM, E, D>,
    pub stack: Stack<L, DIM, H, FF, E, D>,
    pub norm: LayerNorm1D<DIM, E, D>,
    pub head: Linear<DIM, VOCAB, E, D>,
}

/// An encoder-only transformer that predicts a label at every position: `H` heads of
/// `DIM / H` dimensions, `L` blocks laid out as `layout`, positions encoded as `positions`.
#[derive(Clone, Debug)]
pub struct Tagger<const H: usize, const L: usize> {
    pub net: TaggerNet<H, L, f32, Cpu>,
    pub positions: Positions,
    pub layout: Layout,
}

/// What a training run records: the loss of every step.
#[derive(Clone, Debug, PartialEq)]
pub struct Curve {
    pub name: String,
    pub losses: Vec<f32>,
}

impl Curve {
    /// The mean loss of the last tenth of the steps: the end of training, less noisy than
    /// one batch.
    pub fn final_loss(&self) -> f32 {
        let tail = &self.losses[self.losses.len() - (self.losses.len() / 10).max(1)..];
        tail.iter().sum::<f32>() / tail.len() as f32
    }

    /// (step, loss) points averaged over windows of `window` steps, for a line chart.
    pub fn smoothed(&self, window: usize) -> Vec<f64> {
        self.losses
            .chunks(window.max(1))
            .map(|c| c.iter().map(|&l| l as f64).sum::<f64>() / c.len() as f64)
            .collect()
    }
}

impl<const H: usize, const L: usize> Tagger<H, L> {
    /// A freshly initialised tagger: equal seeds give equal weights.
    pub fn new(positions: Positions, layout: Layout, seed: u64) -> Self {
        let dev = device(seed);
        Tagger {
            net: TaggerNet {
                tokens: dev.build_module::<builder::Embedding<VOCAB, DIM>, f32>(),
                table: dev.build_module::<builder::Embedding<MAX_POS, DIM>, f32>(),
                stack: Stack::new(&dev),
                norm: dev.build_module::<crate::nn::builders::LayerNorm1D<DIM>, f32>(),
                head: dev.build_module::<builder::Linear<DIM, VOCAB>, f32>(),
            },
            positions,
            layout,
        }
    }

    /// Logits (batch, seq, VOCAB) for the token ids `x`, and every block's attention.
    pub fn forward<T: Tape<f32, Cpu> + Merge<T>>(
        &self,
        x: Ids<T>,
    ) -> Result<(Logits<VOCAB, T>, Vec<Heads>), Error> {
        self.net.forward(self.positions, self.layout, x)
    }

    /// Trains on fresh batches of `task` at length `len` for `steps` Adam steps, the
    /// learning rate warming up over the first tenth to `lr` then falling along half a
    /// cosine to a tenth of it; returns the loss of every step.
    pub fn train(
        &mut self,
        task: Task,
        len: usize,
        steps: usize,
        lr: f64,
        seed: u64,
    ) -> Result<Curve, Error> {
        let mut rng = StdRng::seed_from_u64(seed);
        let schedule = Schedule::Cosine {
            lr,
            warmup: 0.1,
            floor: 0.1,
        };
        let mut adam = Method::Adam.at(lr).build(&self.net);
        let batches = Drawn::new(steps, || task.batch(BATCH, len, &mut rng));
        let (positions, layout) = (self.positions, self.layout);
        let objective =
            |net: &mut TaggerNet<H, L, f32, Cpu>, batch: Batch, grads| -> Result<Measured, Error> {
                let x = ids(&batch.inputs, batch.batch, batch.len)?.traced(grads);
                let (logits, _) = net.forward(positions, layout, x)?;
                Ok(Measured::loss(masked_cross_entropy(
                    logits,
                    &batch.targets,
                )?))
            };
        let config = TrainConfig::new(1).schedule(schedule).quiet();
        let history = fit(&mut self.net, adam.as_mut(), batches, objective, &config)?;
        Ok(Curve {
            name: String::new(),
            losses: history.losses(),
        })
    }

    /// The share of right labels at each position of `batch` (`None` where no position
    /// has a label).
    pub fn accuracy_by_position(&self, batch: &Batch) -> Result<Vec<Option<f32>>, Error> {
        let x = ids(&batch.inputs, batch.batch, batch.len)?;
        let logits = self.forward(x)?.0.as_vec();
        let mut right = vec![0usize; batch.len];
        let mut seen = vec![0usize; batch.len];
        for (k, target) in batch.targets.iter().enumerate() {
            let Some(target) = target else { continue };
            let row = &logits[k * VOCAB..(k + 1) * VOCAB];
            seen[k % batch.len] += 1;
            right[k % batch.len] += usize::from(argmax(row) == *target);
        }
        Ok(right
            .iter()
            .zip(&seen)
            .map(|(&r, &s)| (s > 0).then(|| r as f32 / s as f32))
            .collect())
    }

    /// The share of right labels over all labelled positions of `batch`.
    pub fn accuracy(&self, batch: &Batch) -> Result<f32, Error> {
        let by_position = self.accuracy_by_position(batch)?;
        let known: Vec<f32> = by_position.into_iter().flatten().collect();
        Ok(known.iter().sum::<f32>() / known.len().max(1) as f32)
    }
}

/// Held-out sequences for measuring accuracy: this many per evaluation.
pub const EVAL: usize = 512;

/// One trained tagger of an experiment: its training curve and held-out accuracy.
#[derive(Clone, Debug, PartialEq)]
pub struct Trained {
    pub curve: Curve,
    pub accuracy: f32,
}

fn held_out(task: Task, len: usize, seed: u64) -> Batch {
    // A stream no training run draws from: training batches use `seed` itself.
    task.batch(EVAL, len, &mut StdRng::seed_from_u64(seed ^ 0x5eed_0fe7))
}

fn run<const H: usize, const L: usize>(
    name: &str,
    task: Task,
    (positions, layout): (Positions, Layout),
    (len, steps, lr): (usize, usize, f64),
    seed: u64,
) -> Result<(Tagger<H, L>, Trained), Error> {
    let mut model = Tagger::<H, L>::new(positions, layout, seed);
    let mut curve = model.train(task, len, steps, lr, seed)?;
    curve.name = name.to_owned();
    let accuracy = model.accuracy(&held_out(task, len, seed))?;
    Ok((model, Trained { curve, accuracy }))
}

/// §3: one head against four, same width (`DIM` = 32, so 1 × 32 against 4 × 8
/// dimensions), one block, on [`Task::TwoLookups`] at length 8. Returns the two runs and
/// the four-head model's attention weights on [`SHOWN`] held-out strings (SHOWN, 4, 8, 8).
pub fn one_head_vs_four(seed: u64) -> Result<(Trained, Trained, Heads), Error> {
    let setup = (Positions::Learned, Layout::FULL);
    let schedule = (HEADS_LEN, HEADS_STEPS, 3e-3);
    let (_, one) = run::<1, 1>("1 head × 32", Task::TwoLookups, setup, schedule, seed)?;
    let (model, four) = run::<4, 1>("4 heads × 8", Task::TwoLookups, setup, schedule, seed)?;
    let shown = Task::TwoLookups.batch(SHOWN, HEADS_LEN, &mut StdRng::seed_from_u64(seed));
    let (_, maps) = model.forward(ids(&shown.inputs, SHOWN, HEADS_LEN)?)?;
    Ok((one, four, maps[0].clone()))
}

/// How many held-out strings §3's attention maps cover.
pub const SHOWN: usize = 64;

/// §3's sequence length and training steps.
pub const HEADS_LEN: usize = 8;
pub const HEADS_STEPS: usize = 1000;

/// §4: the previous-token task at length [`TRAIN_LEN`] with no positions, sinusoidal and
/// learned ones. Each run also reports its accuracy at every position of sequences
/// [`LONG_LEN`] long, twice the training length.
#[derive(Clone, Debug, PartialEq)]
pub struct PositionRun {
    pub positions: Positions,
    pub trained: Trained,
    /// Accuracy at positions 0..LONG_LEN of the long sequences (`None` at position 0).
    pub long: Vec<Option<f32>>,
}

impl PositionRun {
    /// The mean accuracy on the long sequences over positions `from..to`.
    pub fn long_accuracy(&self, from: usize, to: usize) -> f32 {
        let known: Vec<f32> = self.long[from.min(to)..to.min(self.long.len())]
            .iter()
            .flatten()
            .copied()
            .collect();
        known.iter().sum::<f32>() / known.len().max(1) as f32
    }
}

pub const TRAIN_LEN: usize = 8;
pub const LONG_LEN: usize = 16;
pub const POSITION_STEPS: usize = 400;

/// Runs §4; also returns the order-blind ceiling on the same held-out sequences.
pub fn position_runs(seed: u64) -> Result<(Vec<PositionRun>, f32), Error> {
    let task = Task::PreviousToken;
    let ceiling = super::tasks::order_blind_ceiling(&held_out(task, TRAIN_LEN, seed));
    let long = held_out(task, LONG_LEN, seed);
    let mut runs = Vec::new();
    for positions in Positions::ALL {
        let (model, trained) = run::<2, 1>(
            positions.name(),
            task,
            (positions, Layout::FULL),
            (TRAIN_LEN, POSITION_STEPS, 3e-3),
            seed,
        )?;
        runs.push(PositionRun {
            positions,
            trained,
            long: model.accuracy_by_position(&long)?,
        });
    }
    Ok((runs, ceiling))
}

/// §5's stack depth, steps and the layouts compared.
pub const DEPTH: usize = 6;
pub const ABLATION_STEPS: usize = 600;

/// The layouts of §5's ablation, with their names.
pub fn ablations() -> Vec<(&'static str, Layout)> {
    let full = Layout::FULL;
    vec![
        ("pre-norm (full)", full),
        (
            "post-norm",
            Layout {
                norm: Norm::Post,
                ..full
            },
        ),
        (
            "no residuals",
            Layout {
                residual: false,
                ..full
            },
        ),
        (
            "no layer norm",
            Layout {
                norm: Norm::None,
                ..full
            },
        ),
        (
            "no feed-forward",
            Layout {
                feed_forward: false,
                ..full
            },
        ),
    ]
}

/// §5: a [`DEPTH`]-block tagger on [`Task::TwoLookups`] in every layout of [`ablations`],
/// same seed, same steps.
pub fn ablation_runs(seed: u64) -> Result<Vec<Trained>, Error> {
    ablations()
        .into_iter()
        .map(|(name, layout)| {
            let setup = (Positions::Learned, layout);
            let schedule = (HEADS_LEN, ABLATION_STEPS, 3e-3);
            Ok(run::<4, DEPTH>(name, Task::TwoLookups, setup, schedule, seed)?.1)
        })
        .collect()
}

impl<const H: usize, const L: usize> TaggerNet<H, L, f32, Cpu> {
    /// See [`Tagger::forward`].
    fn forward<T: Tape<f32, Cpu> + Merge<T>>(
        &self,
        positions: Positions,
        layout: Layout,
        x: Ids<T>,
    ) -> Result<(Logits<VOCAB, T>, Vec<Heads>), Error> {
        let h: Seqs<DIM, T> = self.tokens.try_forward(x)?;
        let h = add_positions(h, positions, &self.table)?;
        let (h, maps) = self.stack.forward(h, None, layout)?;
        // Pre-norm leaves the residual stream un-normalised: one last norm before reading out.
        let h = match layout.norm {
            Norm::Pre => self.norm.try_forward(h)?,
            _ => h,
        };
        Ok((linear(&self.head, h)?, maps))
    }
}

impl<const H: usize, const L: usize, E, D: Device<E>> TensorCollection<E, D>
    for TaggerNet<H, L, E, D>
where
    E: Dtype + Float + SampleUniform,
{
    type To<E2: Dtype, D2: Device<E2>> = TaggerNet<H, L, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::module("tokens", |s| &s.tokens, |s| &mut s.tokens),
                Self::module("table", |s| &s.table, |s| &mut s.table),
                Self::module("stack", |s| &s.stack, |s| &mut s.stack),
                Self::module("norm", |s| &s.norm, |s| &mut s.norm),
                Self::module("head", |s| &s.head, |s| &mut s.head),
            ),
            |(tokens, table, stack, norm, head)| TaggerNet {
                tokens,
                table,
                stack,
                norm,
                head,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tagger_learns_the_previous_token() {
        let mut model = Tagger::<2, 1>::new(Positions::Learned, Layout::FULL, 0);
        let curve = model.train(Task::PreviousToken, 8, 150, 3e-3, 0).unwrap();
        assert!(
            curve.final_loss() < 0.5 * curve.losses[0],
            "{:?}",
            curve.final_loss()
        );
    }
}
