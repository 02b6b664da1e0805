//! Notebook `10_guided_latent_diffusion`: diffusion models told what to draw, and diffusion
//! in an autoencoder's latent space.
//!
//! - [`classifier`]: §1, a classifier of noised digits that reads the time, and its
//!   gradient `∇ log p(y | x_t)`, which steers an unconditional model (Dhariwal & Nichol,
//!   2021, "Diffusion models beat GANs").
//! - [`conditional`]: §2–4, a U-Net told a condition (a label or a prompt) beside the time,
//!   trained with the condition dropped at random so that the same network also predicts
//!   unconditionally: classifier-free guidance (Ho & Salimans, 2022).
//! - [`text`]: §3, prompts ("a handwritten seven") read by a small transformer encoder
//!   trained with the denoiser, GLIDE-style (Nichol et al., 2022).
//! - [`latent`]: §4, a KL-regularised autoencoder (8× fewer values per image) whose latents
//!   a denoiser learns instead of pixels: latent diffusion (Rombach et al., 2022).
//!
//! Guidance only changes the predicted noise ([`classifier_free`], [`classifier_guided`]);
//! the sampler walks the shared [`crate::denoising::ddpm::Chain`]. Samples are judged on the
//! shared [`crate::yardstick`].

pub mod classifier;
pub mod conditional;
pub mod latent;
pub mod text;

use crate::denoising::ddpm::Chain;
use crate::yardstick::Yardstick;
use crate::Error;
use classifier::NoisyClassifier;
use conditional::ConditionalPredictor;
use rand::Rng;

/// A condition as token ids: a digit label is the one token of its value, a prompt the ids
/// of its words; each encoder has its own `∅` ([`ConditionalPredictor::null`]).
pub type Prompt = Vec<usize>;

/// The condition of each example, replaced by `null` with probability `rate`: the
/// condition dropout that teaches one network both `ε(x, c)` and `ε(x, ∅)` (Ho & Salimans
/// drop 10–20%). Notebook `10_guided_latent_diffusion` §2.
pub fn drop_conditions(
    prompts: Vec<Prompt>,
    null: &Prompt,
    rate: f64,
    rng: &mut impl Rng,
) -> Vec<Prompt> {
    prompts
        .into_iter()
        .map(|p| if rng.gen_bool(rate) { null.clone() } else { p })
        .collect()
}

/// Classifier-free guidance: `ε̃ = ε(x, ∅) + w·(ε(x, c) − ε(x, ∅))`. `w = 0` is the
/// unconditional prediction, `w = 1` the conditional one, `w > 1` goes past it, away from
/// what the unconditional model expects. Notebook `10_guided_latent_diffusion` §2.
pub fn classifier_free(unconditional: &[f32], conditional: &[f32], w: f32) -> Vec<f32> {
    unconditional
        .iter()
        .zip(conditional)
        .map(|(u, c)| u + w * (c - u))
        .collect()
}

/// Classifier guidance in the noise's terms (Dhariwal & Nichol's Algorithm 2):
/// `ε̃ = ε(x_t) − s·σ_t·∇ log p(y | x_t)` with `σ_t = √(1 − ᾱ_t)`. Since the score is
/// `−ε/σ_t`, this adds `s·∇ log p(y | x_t)` to the score: the sampler climbs towards
/// images the classifier calls `y`. Notebook `10_guided_latent_diffusion` §1.
pub fn classifier_guided(eps: &[f32], gradient: &[f32], scale: f32, sigma: f32) -> Vec<f32> {
    eps.iter()
        .zip(gradient)
        .map(|(e, g)| e - scale * sigma * g)
        .collect()
}

/// How a conditional model's prediction is steered while sampling.
#[derive(Clone, Copy, Debug)]
pub enum Guidance<'a> {
    /// [`classifier_free`] at weight `w`.
    ClassifierFree(f32),
    /// [`classifier_guided`]: the model's unconditional prediction `ε(x, ∅)` steered by
    /// the classifier's gradient at scale `s`, towards the class each prompt names.
    Classifier(&'a NoisyClassifier, f32),
}

/// Samples from `model` guided towards `prompts` (one sample each), walking `chain` from
/// noise drawn from `seed`. Notebook `10_guided_latent_diffusion` §1–4.
pub fn sample_guided(
    model: &dyn ConditionalPredictor,
    guidance: Guidance,
    prompts: &[Prompt],
    chain: &Chain,
    seed: u64,
) -> Result<Vec<f32>, Error> {
    model.check(prompts)?;
    let n = prompts.len();
    let nulls = vec![model.null(); n];
    let schedule = &chain.schedule;
    let classes: Vec<usize> = prompts.iter().map(|p| p[0]).collect();
    if let Guidance::Classifier(classifier, _) = guidance {
        classifier.check(&classes, model.dim())?;
    }
    let mut eps = |x: &[f32], t: usize| -> Vec<f32> {
        let times = vec![t as f32; n];
        match guidance {
            Guidance::ClassifierFree(0.0) => model.predict_given(x, &times, &nulls),
            Guidance::ClassifierFree(1.0) => model.predict_given(x, &times, prompts),
            Guidance::ClassifierFree(w) => {
                let both = model.predict_given(
                    &[x, x].concat(),
                    &[times.clone(), times.clone()].concat(),
                    &[nulls.clone(), prompts.to_vec()].concat(),
                );
                let (unconditional, conditional) = both.split_at(x.len());
                classifier_free(unconditional, conditional, w)
            }
            Guidance::Classifier(classifier, scale) => {
                let eps = model.predict_given(x, &times, &nulls);
                let gradient = classifier.log_prob_gradient(x, &times, &classes);
                classifier_guided(&eps, &gradient, scale, schedule.sigma(t) as f32)
            }
        }
    };
    Ok(chain.walk(&mut eps, n * model.dim(), seed, &[]).x)
}

/// The share of `samples` (28×28, flattened, pixels in `0..=1`) that the yardstick's
/// classifier reads as the digit `asked` of each: how well guidance is followed.
/// Notebook `10_guided_latent_diffusion` §1–3.
pub fn share_as_asked(judge: &Yardstick, samples: &[f32], asked: &[usize]) -> Result<f64, Error> {
    let probabilities = judge.probabilities(samples)?;
    check_asked(probabilities.nrows(), asked)?;
    let followed = probabilities
        .rows()
        .into_iter()
        .zip(asked)
        .filter(|(p, &y)| {
            let top = p.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1));
            top.map(|(class, _)| class) == Some(y)
        })
        .count();
    Ok(followed as f64 / asked.len() as f64)
}

/// The mean Euclidean distance, in the yardstick's features, between two of `samples`
/// asked for the same digit: the variety within a class, which guidance trades away.
/// Notebook `10_guided_latent_diffusion` §1–2.
pub fn spread_within_class(
    judge: &Yardstick,
    samples: &[f32],
    asked: &[usize],
) -> Result<f64, Error> {
    let features = judge.features(samples)?;
    check_asked(features.nrows(), asked)?;
    let (mut total, mut pairs) = (0.0, 0usize);
    for i in 0..asked.len() {
        for j in i + 1..asked.len() {
            if asked[i] == asked[j] {
                let gap = &features.row(i) - &features.row(j);
                total += gap.dot(&gap).sqrt();
                pairs += 1;
            }
        }
    }
    if pairs == 0 {
        return Err(Error::InvalidArgument {
            what: "the classes asked of the samples",
            expected: "some class asked of two samples or more",
            got: format!("{asked:?}"),
        });
    }
    Ok(total / pairs as f64)
}

fn check_asked(samples: usize, asked: &[usize]) -> Result<(), Error> {
    if samples != asked.len() {
        return Err(Error::ShapeMismatch {
            what: "the classes asked of the samples",
            expected: format!("one per sample, {samples}"),
            got: asked.len().to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn guidance_at_zero_and_one_is_the_unconditional_and_the_conditional_prediction() {
        let (u, c) = ([0.5f32, -1.0, 2.0], [1.5f32, 0.0, -2.0]);
        assert_eq!(classifier_free(&u, &c, 0.0), u);
        assert_eq!(classifier_free(&u, &c, 1.0), c);
        assert_eq!(classifier_free(&u, &c, 3.0), vec![3.5, 2.0, -10.0]);
        assert_eq!(classifier_guided(&u, &c, 0.0, 0.7), u);
        let guided = classifier_guided(&u, &c, 2.0, 0.5);
        assert!(guided
            .iter()
            .zip(u.iter().zip(&c))
            .all(|(g, (u, c))| (g - (u - c)).abs() < 1e-6));
    }

    #[test]
    fn condition_dropout_replaces_the_share_it_is_asked_to() {
        let mut rng = StdRng::seed_from_u64(4);
        let prompts = vec![vec![3]; 20_000];
        let dropped = drop_conditions(prompts, &vec![10], 0.15, &mut rng);
        let share = dropped.iter().filter(|p| **p == [10]).count() as f64 / 20_000.0;
        assert!((share - 0.15).abs() < 0.01, "{share}");
        assert!(dropped.iter().all(|p| *p == [10] || *p == [3]));
    }
}
