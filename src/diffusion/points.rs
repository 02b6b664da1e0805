//! §3–4: the noise predictor for 2-D points: an MLP that reads a point and the
//! [`time_embedding`] of its noise level.

use super::schedule::NoiseSchedule;
use super::{ddpm, time_embedding, DenoiserSettings, NoisePredictor, Rows};
use crate::nn::ReLU;
use crate::runtime::device;
use crate::train::History;
use crate::Error;
use dfdx::prelude::*;

/// The width of the time embedding the MLP reads beside each point.
pub const EMBEDDING: usize = 32;
const INPUT: usize = 2 + EMBEDDING;
const HIDDEN: usize = 128;

/// Three hidden layers of 128 ReLUs from `(x, y, embedding)` to the noise's two values.
/// (ReLU rather than the smoother GELU or SiLU: dfdx's GELU costs five times the whole
/// MLP's matrix products, and the learned score is no worse for it here.) Notebook
/// `09_diffusion` §3–4.
pub type PointNet = (
    (Linear<INPUT, HIDDEN>, ReLU),
    (Linear<HIDDEN, HIDDEN>, ReLU),
    (Linear<HIDDEN, HIDDEN>, ReLU),
    Linear<HIDDEN, 2>,
);

type Dense<const I: usize, const O: usize> = dfdx::nn::modules::Linear<I, O, f32, Cpu>;

/// A built [`PointNet`] (the type spelled out: Rust cannot tell a projection
/// `<PointNet as BuildOnDevice<..>>::Built` apart from other types implementing
/// [`NoisePredictor`]).
pub type PointDenoiser = (
    (Dense<INPUT, HIDDEN>, ReLU),
    (Dense<HIDDEN, HIDDEN>, ReLU),
    (Dense<HIDDEN, HIDDEN>, ReLU),
    Dense<HIDDEN, 2>,
);

/// A fresh [`PointDenoiser`], its weights drawn from `seed`.
pub fn point_denoiser(seed: u64) -> PointDenoiser {
    device(seed).build_module::<PointNet, f32>()
}

/// [`ddpm::train_ddpm`] for the MLP, compiled once here so that a notebook cell calling it
/// compiles no training loop of its own (seconds a cell).
pub fn train_ddpm(
    model: &mut PointDenoiser,
    data: &[f32],
    schedule: &NoiseSchedule,
    settings: &DenoiserSettings,
) -> Result<History, Error> {
    ddpm::train_ddpm(model, data, schedule, settings)
}

impl NoisePredictor for PointDenoiser {
    fn dim(&self) -> usize {
        2
    }

    fn predict<T: Tape<f32, Cpu> + Merge<T> + std::fmt::Debug>(
        &self,
        x: Rows<T>,
        t: &[f32],
    ) -> Rows<T> {
        let n = t.len();
        let embedding = x
            .device()
            .tensor_from_vec(time_embedding(t, EMBEDDING), (n, EMBEDDING))
            .retaped::<T>()
            .realize::<(usize, usize)>();
        let input = (x, embedding).concat_along(Axis::<1>);
        let eps = self.forward(input.realize::<(usize, Const<INPUT>)>());
        eps.realize::<(usize, usize)>()
    }

    fn predict_values(&self, x: &[f32], t: &[f32]) -> Vec<f32> {
        super::predict_untaped(self, x, t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::denoising::ddpm::{noisy_batch, sample, simple_loss, Sampler};
    use crate::diffusion::mixture::Mixture;
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn the_mlp_predicts_two_values_per_point_and_reads_the_time() {
        let net = point_denoiser(0);
        let x = [0.5, -0.5, 0.5, -0.5];
        let eps = net.predict_values(&x, &[1.0, 900.0]);
        assert_eq!(eps.len(), 4);
        assert_ne!(eps[..2], eps[2..], "the same point at two times");
    }

    #[test]
    fn a_short_training_run_lowers_the_simple_loss_and_samples_come_out() {
        let schedule = NoiseSchedule::ho();
        let data = Mixture::pentagon().sample(500, &mut StdRng::seed_from_u64(1));
        let mut model = point_denoiser(2);
        let batch = noisy_batch(&data, 2, &schedule, 512, &mut StdRng::seed_from_u64(5));
        let before = simple_loss(&model, &batch);
        let settings = DenoiserSettings::new(300, 128, 2e-3, 3);
        train_ddpm(&mut model, &data, &schedule, &settings).unwrap();
        let after = simple_loss(&model, &batch);
        assert!(after < 0.8 * before, "{before} → {after}");
        let times = schedule.strided(20);
        let samples = sample(&model, &schedule, Sampler::Ddim, &times, 10, 0, &[1000, 0]);
        assert_eq!(samples.x.len(), 20);
        assert_eq!(samples.snapshots.len(), 2);
        assert!(train_ddpm(&mut model, &data[..3], &schedule, &settings).is_err());
    }
}
