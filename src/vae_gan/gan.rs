//! §4: the GAN game (Goodfellow et al., 2014). A generator `G` maps noise `z` to samples; a
//! discriminator `D` outputs the probability that its input is real. `D` maximises
//! `E_data[ln D(x)] + E_z[ln(1 − D(G(z)))]`; `G` minimises the second term (the "saturating"
//! loss of the minimax game) or, as the paper advises in practice, maximises `ln D(G(z))`
//! (the "non-saturating" loss). For a fixed `G` the best discriminator is
//! `D*(x) = p_data(x) / (p_data(x) + p_g(x))`.
//!
//! [`Adversarial`] plays the game on the course's one training loop: one step for `D`, one
//! for `G`, in turn.

use super::kl::Normal;
use super::EPOCH;
use crate::nn::builders::ReLU;
use crate::optim::OptimizerConfig;
use crate::runtime::device;
use crate::train::{fit, Drawn, History, Measured, Objective, TrainConfig};
use crate::Error;
use dfdx::prelude::*;
use rand::{rngs::StdRng, Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

/// The generator's loss (notebook `08_vae_gan` §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeneratorLoss {
    /// Minimise `ln(1 − D(G(z)))`, the minimax game's own term. Its gradient vanishes when
    /// `D` confidently rejects the samples, which early in training it does.
    Saturating,
    /// Minimise `−ln D(G(z))`: the same fixed point, strong gradients when `D` rejects.
    NonSaturating,
}

impl GeneratorLoss {
    /// The loss of a batch of the discriminator's logits on generated samples.
    pub fn of<T: Tape<f32, Cpu>>(
        self,
        logits: Tensor<(usize, Const<1>), f32, Cpu, T>,
    ) -> Tensor<Rank0, f32, Cpu, T> {
        let dev = logits.device().clone();
        let shape = *logits.shape();
        match self {
            GeneratorLoss::Saturating => -logits.bce_with_logits(dev.zeros_like(&shape)).mean(),
            GeneratorLoss::NonSaturating => logits.bce_with_logits(dev.ones_like(&shape)).mean(),
        }
    }
}

/// Notebook `08_vae_gan` §4–5: the GAN game as an [`Objective`] for the pair `(G, D)`:
/// odd steps update the discriminator on a real batch and as many generated samples
/// (`G` runs without a tape, so it keeps its weights), even steps update the generator
/// through a frozen copy of the discriminator (so only `G` receives gradients). The
/// recorded loss alternates: `D`'s `−[ln D(x) + ln(1 − D(G(z)))]` (2 ln 2 ≈ 1.386 at the
/// game's equilibrium, `D = ½` everywhere), then `G`'s loss.
pub struct Adversarial<const Z: usize> {
    pub generator_loss: GeneratorLoss,
    steps: usize,
}

impl<const Z: usize> Adversarial<Z> {
    pub fn new(generator_loss: GeneratorLoss) -> Adversarial<Z> {
        Adversarial {
            generator_loss,
            steps: 0,
        }
    }
}

type Rows<const W: usize, T = NoneTape> = Tensor<(usize, Const<W>), f32, Cpu, T>;
type Taped = OwnedTape<f32, Cpu>;

impl<G, D, const Z: usize, const X: usize> Objective<(G, D), Rows<X>> for Adversarial<Z>
where
    G: ModuleMut<Rows<Z, Taped>, Output = Rows<X, Taped>>,
    D: ModuleMut<Rows<X, Taped>, Output = Rows<1, Taped>>
        + TensorCollection<f32, Cpu, To<f32, Cpu> = D>,
{
    fn loss(
        &mut self,
        (generator, discriminator): &mut (G, D),
        real: Rows<X>,
        grads: Gradients<f32, Cpu>,
    ) -> Result<Measured, Error> {
        let dev = real.device().clone();
        let n = real.shape().0;
        let z: Rows<Z> = dev.sample_normal_like(&(n, Const));
        self.steps += 1;
        let loss = if self.steps % 2 == 1 {
            // The generator in training mode (batch statistics), its tape dropped.
            let fake = generator.forward_mut(z.leaky_trace()).as_vec();
            let both = dev.tensor_from_vec([real.as_vec(), fake].concat(), (2 * n, Const::<X>));
            let labels = [vec![1.0; n], vec![0.0; n]].concat();
            let logits = discriminator.forward_mut(both.traced(grads));
            logits
                .bce_with_logits(dev.tensor_from_vec(labels, (2 * n, Const)))
                .mean()
                * 2.0
        } else {
            let mut judge = discriminator.to_device(&dev);
            let fake = generator.forward_mut(z.traced(grads));
            self.generator_loss.of(judge.forward_mut(fake))
        };
        Ok(Measured::loss(loss))
    }
}

/// The two players' losses of a run of [`Adversarial`]: `(discriminator, generator)`, one
/// value per round.
pub fn player_losses(history: &History) -> (Vec<f32>, Vec<f32>) {
    let losses = history.losses();
    (
        losses.iter().step_by(2).copied().collect(),
        losses.iter().skip(1).step_by(2).copied().collect(),
    )
}

/// The discriminator of the 1-D experiments: a small MLP from a number to a logit.
pub type Critic1d = (Linear<1, 32>, ReLU, Linear<32, 32>, ReLU, Linear<32, 1>);
/// [`Critic1d`] built on the CPU.
pub type Critic1dNet = <Critic1d as BuildOnDevice<Cpu, f32>>::Built;

/// Notebook `08_vae_gan` §4: a discriminator trained for `steps` steps of 256 real and 256
/// generated numbers against a *fixed* generator whose samples follow `generator`, the data
/// following `data`: Adam at 3·10⁻³ on the discriminator's cross-entropy.
pub fn train_critic(
    data: Normal,
    generator: Normal,
    steps: usize,
    seed: u64,
) -> Result<(Critic1dNet, History), Error> {
    let dev = device(seed);
    let mut critic = dev.build_module::<Critic1d, f32>();
    let mut adam = crate::optim::Method::Adam.at(3e-3).build(&critic);
    let mut rng = StdRng::seed_from_u64(seed);
    let n = 256;
    let batches = Drawn::new(EPOCH, || {
        let mut values = draw_normal(data, n, &mut rng);
        values.extend(draw_normal(generator, n, &mut rng));
        dev.tensor_from_vec(values, (2 * n, Const::<1>))
    });
    let labels = dev.tensor_from_vec([vec![1.0; n], vec![0.0; n]].concat(), (2 * n, Const));
    let objective = |critic: &mut Critic1dNet, x: Rows<1>, grads| {
        let logits = critic.forward(x.traced(grads));
        Ok(Measured::loss(
            logits.bce_with_logits(labels.clone()).mean(),
        ))
    };
    let config = TrainConfig::new(steps.div_ceil(EPOCH)).quiet();
    let history = fit(&mut critic, adam.as_mut(), batches, objective, &config)?;
    Ok((critic, history))
}

/// Notebook `08_vae_gan` §4: `D*(x) = p_data(x) / (p_data(x) + p_g(x))`, the best
/// discriminator against a fixed generator.
pub fn optimal_discriminator(data: Normal, generator: Normal, x: f64) -> f64 {
    let (p, q) = (data.density(x), generator.density(x));
    p / (p + q)
}

/// `D(x)`, the probability the critic gives each of `xs` of being real.
pub fn discriminate(critic: &Critic1dNet, xs: &[f32]) -> Vec<f32> {
    let x = Cpu::default().tensor_from_vec(xs.to_vec(), (xs.len(), Const::<1>));
    critic.forward(x).sigmoid().as_vec()
}

/// The gradients of the two generator losses with respect to the generator's mean, and
/// how confidently the critic rejects its samples: notebook `08_vae_gan` §4.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GeneratorGradients {
    /// The mean of `D(G(z))` over the samples.
    pub mean_d: f64,
    /// `∂/∂μ_g` of the mean of `ln(1 − D(G(z)))`.
    pub saturating: f64,
    /// `∂/∂μ_g` of the mean of `−ln D(G(z))`.
    pub non_saturating: f64,
}

/// Notebook `08_vae_gan` §4: both generator losses' gradients for a 1-D generator
/// `G(z) = μ_g + σ_g·z` (the `generator` Gaussian), through `critic`, from `samples`
/// draws. Since `∂G(z)/∂μ_g = 1`, the gradient with respect to `μ_g` is the sum of the
/// gradients with respect to the samples.
pub fn generator_gradients(
    critic: &Critic1dNet,
    generator: Normal,
    samples: usize,
    seed: u64,
) -> GeneratorGradients {
    let mut rng = StdRng::seed_from_u64(seed);
    let x: Rows<1> =
        Cpu::default().tensor_from_vec(draw_normal(generator, samples, &mut rng), (samples, Const));
    let gradient = |loss: GeneratorLoss| -> f64 {
        let grads = loss.of(critic.forward(x.leaky_trace())).backward();
        grads.get(&x).as_vec().iter().map(|&g| f64::from(g)).sum()
    };
    let d = critic.forward(x.clone()).sigmoid().as_vec();
    GeneratorGradients {
        mean_d: d.iter().map(|&v| f64::from(v)).sum::<f64>() / samples as f64,
        saturating: gradient(GeneratorLoss::Saturating),
        non_saturating: gradient(GeneratorLoss::NonSaturating),
    }
}

fn draw_normal(normal: Normal, n: usize, rng: &mut StdRng) -> Vec<f32> {
    normal.draw(n, rng).into_iter().map(|x| x as f32).collect()
}

/// Notebook `08_vae_gan` §4: the 2-D benchmark of mode collapse (Metz et al., 2017): a
/// mixture of `modes` Gaussians of standard deviation `std`, equally spaced on a circle of
/// radius `radius`, equally weighted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ring {
    pub modes: usize,
    pub radius: f32,
    pub std: f32,
}

impl Ring {
    /// Eight modes on a circle of radius 2, standard deviation 0.05.
    pub fn new() -> Ring {
        Ring {
            modes: 8,
            radius: 2.0,
            std: 0.05,
        }
    }

    /// Mode `m`'s centre.
    pub fn centre(&self, m: usize) -> [f32; 2] {
        let angle = std::f32::consts::TAU * m as f32 / self.modes as f32;
        [self.radius * angle.cos(), self.radius * angle.sin()]
    }

    /// `n` points, flattened `(x, y)` pairs.
    pub fn sample(&self, n: usize, rng: &mut StdRng) -> Vec<f32> {
        (0..n)
            .flat_map(|_| {
                let c = self.centre(rng.gen_range(0..self.modes));
                let (dx, dy): (f32, f32) = (StandardNormal.sample(rng), StandardNormal.sample(rng));
                [c[0] + self.std * dx, c[1] + self.std * dy]
            })
            .collect()
    }

    /// How well `points` (flattened pairs) cover the ring: a point is of high quality when
    /// it lies within 3 standard deviations of a mode's centre; a mode is covered when it
    /// holds at least a quarter of its fair share (`n / modes`) of high-quality points.
    pub fn coverage(&self, points: &[f32]) -> Coverage {
        let mut counts = vec![0usize; self.modes];
        for p in points.chunks(2) {
            let nearest = (0..self.modes)
                .map(|m| {
                    let c = self.centre(m);
                    (m, (p[0] - c[0]).hypot(p[1] - c[1]))
                })
                .min_by(|a, b| a.1.total_cmp(&b.1));
            if let Some((m, _)) = nearest.filter(|&(_, d)| d <= 3.0 * self.std) {
                counts[m] += 1;
            }
        }
        let n = points.len() / 2;
        let fair = n as f64 / self.modes as f64;
        Coverage {
            modes_covered: counts.iter().filter(|&&c| c as f64 >= fair / 4.0).count(),
            high_quality: counts.iter().sum::<usize>() as f64 / n.max(1) as f64,
            per_mode: counts,
        }
    }
}

impl Default for Ring {
    fn default() -> Ring {
        Ring::new()
    }
}

/// How a set of points covers a [`Ring`].
#[derive(Clone, Debug, PartialEq)]
pub struct Coverage {
    pub modes_covered: usize,
    /// The share of points within 3 standard deviations of some mode.
    pub high_quality: f64,
    /// High-quality points per mode.
    pub per_mode: Vec<usize>,
}

/// The width of the ring GAN's noise.
pub const RING_NOISE: usize = 8;

/// The ring GAN's generator: noise to a point, two hidden layers of 128.
pub type RingGenerator = (
    Linear<RING_NOISE, 128>,
    ReLU,
    Linear<128, 128>,
    ReLU,
    Linear<128, 2>,
);
/// The ring GAN's discriminator: a point to a logit, two hidden layers of 128.
pub type RingDiscriminator = (Linear<2, 128>, ReLU, Linear<128, 128>, ReLU, Linear<128, 1>);
/// Both players, built on the CPU.
pub type RingGan = <(RingGenerator, RingDiscriminator) as BuildOnDevice<Cpu, f32>>::Built;

/// How the ring GAN is trained: notebook `08_vae_gan` §4.
#[derive(Clone, Copy, Debug)]
pub struct RingSettings {
    /// Rounds of the game (one step for each player).
    pub rounds: usize,
    pub batch: usize,
    pub optimizer: OptimizerConfig,
    pub generator_loss: GeneratorLoss,
    pub seed: u64,
}

impl RingSettings {
    /// 1,500 rounds of 256 points, the non-saturating loss, Adam at 10⁻³ without momentum
    /// (β₁ = 0): momentum makes the alternating game oscillate (Gidel et al., 2019,
    /// *Negative momentum for improved game dynamics*). On seeds 0–3 and 10–13, β₁ = 0.5
    /// covered 0 to 7 of the 8 modes; β₁ = 0 covered 5 to 8.
    pub fn new(seed: u64) -> RingSettings {
        RingSettings {
            rounds: 1500,
            batch: 256,
            optimizer: crate::optim::Method::Adam.at(1e-3).betas(0.0, 0.999),
            generator_loss: GeneratorLoss::NonSaturating,
            seed,
        }
    }
}

/// Notebook `08_vae_gan` §4: a GAN trained on `ring`.
pub fn train_ring(ring: Ring, settings: &RingSettings) -> Result<(RingGan, History), Error> {
    let dev = device(settings.seed);
    let mut players = dev.build_module::<(RingGenerator, RingDiscriminator), f32>();
    let mut adam = settings.optimizer.build(&players);
    let mut rng = StdRng::seed_from_u64(settings.seed);
    let batch = settings.batch;
    let real = Drawn::new(EPOCH, || {
        dev.tensor_from_vec(ring.sample(batch, &mut rng), (batch, Const::<2>))
    });
    let game = Adversarial::<RING_NOISE>::new(settings.generator_loss);
    let config = TrainConfig::new((2 * settings.rounds).div_ceil(EPOCH)).quiet();
    let history = fit(&mut players, adam.as_mut(), real, game, &config)?;
    Ok((players, history))
}

/// `n` points from a trained ring GAN's generator, flattened pairs.
pub fn ring_samples(players: &RingGan, n: usize, seed: u64) -> Vec<f32> {
    let z: Rows<RING_NOISE> = device(seed).sample_normal_like(&(n, Const));
    players.0.forward(z).as_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_critic_approaches_the_optimal_discriminator() {
        let (data, generator) = (Normal::new(0.5, 0.6), Normal::new(-0.5, 1.0));
        let (critic, _) = train_critic(data, generator, 600, 0).unwrap();
        let xs: Vec<f32> = (0..41).map(|i| -2.0 + 0.1 * i as f32).collect();
        let worst = discriminate(&critic, &xs)
            .iter()
            .zip(&xs)
            .map(|(&d, &x)| {
                (f64::from(d) - optimal_discriminator(data, generator, f64::from(x))).abs()
            })
            .fold(0.0, f64::max);
        assert!(worst < 0.1, "{worst}");
    }

    #[test]
    fn the_saturating_loss_loses_its_gradient_where_the_critic_is_confident() {
        let (data, far) = (Normal::new(2.0, 0.5), Normal::new(-2.0, 0.5));
        let (critic, _) = train_critic(data, far, 300, 1).unwrap();
        let g = generator_gradients(&critic, far, 1000, 2);
        assert!(g.mean_d < 0.05, "{g:?}");
        assert!(g.saturating.abs() < 0.1 * g.non_saturating.abs(), "{g:?}");
    }

    #[test]
    fn coverage_counts_modes_and_high_quality_points() {
        let ring = Ring::new();
        let mut rng = StdRng::seed_from_u64(0);
        let all = ring.coverage(&ring.sample(4000, &mut rng));
        assert_eq!(all.modes_covered, 8);
        assert!(all.high_quality > 0.98, "{all:?}");
        let one: Vec<f32> = (0..1000).flat_map(|_| ring.centre(3)).collect();
        let collapsed = ring.coverage(&one);
        assert_eq!((collapsed.modes_covered, collapsed.high_quality), (1, 1.0));
        assert_eq!(ring.coverage(&vec![0.0; 200]).high_quality, 0.0);
    }

    #[test]
    fn the_players_take_turns() {
        let settings = RingSettings {
            rounds: 50,
            ..RingSettings::new(0)
        };
        let (players, history) = train_ring(Ring::new(), &settings).unwrap();
        let (d, g) = player_losses(&history);
        assert_eq!((d.len(), g.len()), (50, 50));
        assert!(
            (d[0] - 2.0 * 2f32.ln()).abs() < 0.3,
            "D starts near chance: {}",
            d[0]
        );
        assert_eq!(ring_samples(&players, 10, 0).len(), 20);
    }
}
