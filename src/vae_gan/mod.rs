//! Notebook `08_vae_gan`: the first two families of deep generative models, and the
//! divergence both are built on.
//!
//! - [`kl`]: §1, the Kullback–Leibler divergence between Gaussians, in closed form and by
//!   Monte Carlo.
//! - [`vae`]: §2–3, the variational autoencoder (Kingma & Welling, 2014): the ELBO, the
//!   reparameterization trick against the score-function estimator, the importance-weighted
//!   bound (Burda et al., 2016).
//! - [`interpolate`]: §3, straight and spherical paths in latent space, cross-fades in
//!   pixel space.
//! - [`gan`]: §4, the GAN game (Goodfellow et al., 2014) on 1-D and 2-D data: the optimal
//!   discriminator, the saturating and non-saturating generator losses, mode coverage on a
//!   ring of Gaussians; and [`gan::Adversarial`], the two players' alternating steps on the
//!   course's one training loop.
//! - [`dcgan`]: §5, a convolutional GAN on MNIST (Radford, Metz & Chintala, 2016).
//!
//! Sample quality (§3, §5, §6) is measured with the shared [`crate::yardstick`].

pub mod dcgan;
pub mod gan;
pub mod interpolate;
pub mod kl;
pub mod vae;

use crate::data::ImageSet;
use crate::{cache, Error};
use rand::{rngs::StdRng, Rng, SeedableRng};

/// An image's side: MNIST's 28 pixels.
pub const SIDE: usize = 28;
/// An image's pixels, flattened.
pub const PIXELS: usize = SIDE * SIDE;

/// Steps between two records of a run's monitors (an "epoch" of drawn batches).
pub const EPOCH: usize = 50;

/// Notebook `08_vae_gan` §2: each grey level read as the probability that the pixel is on,
/// and one draw of every pixel: the stochastically binarised MNIST on which VAE likelihoods
/// are reported (Salakhutdinov & Murray, 2008; the IWAE paper's benchmark).
pub fn binarize(pixels: &[f32], seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    binarize_with(pixels, &mut rng)
}

fn binarize_with(pixels: &[f32], rng: &mut StdRng) -> Vec<f32> {
    pixels
        .iter()
        .map(|&p| f32::from(u8::from(rng.gen::<f32>() < p)))
        .collect()
}

/// `batch` images drawn at random from `pool`, flattened one after another.
fn draw_images(pool: &ImageSet, batch: usize, rng: &mut StdRng) -> Vec<f32> {
    (0..batch)
        .flat_map(|_| pool.image(rng.gen_range(0..pool.len())).iter().copied())
        .collect()
}

/// The cache file ([`crate::cache`]) of a `name` model of type `M` trained with
/// `settings` on the images of `sets`: notebook `09_diffusion` §5 reuses notebook 08's
/// VAE and GAN through it.
fn cache_file<M>(
    name: &str,
    settings: &impl std::fmt::Debug,
    sets: &[&ImageSet],
) -> std::path::PathBuf {
    let data: Vec<String> = sets.iter().map(|s| cache::fingerprint(&s.pixels)).collect();
    let recipe = format!("{} {settings:?} {data:?}", std::any::type_name::<M>());
    cache::path(name, &recipe)
}

fn check_images(images: &ImageSet) -> Result<(), Error> {
    images.check_side(SIDE, "MNIST")
}

/// `ln((1/k) Σ exp(v_i))`, computed without overflow: the importance-weighted bound of
/// `k` log-weights (notebook `08_vae_gan` §2).
pub fn log_mean_exp(values: &[f64]) -> f64 {
    let top = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = values.iter().map(|v| (v - top).exp()).sum();
    top + (sum / values.len() as f64).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binarising_keeps_each_pixel_on_with_its_grey_level() {
        let on = binarize(&vec![0.3; 20_000], 1);
        let share = on.iter().sum::<f32>() / on.len() as f32;
        assert!((share - 0.3).abs() < 0.01, "{share}");
        assert!(on.iter().all(|&v| v == 0.0 || v == 1.0));
        assert_eq!(binarize(&[0.0, 1.0], 2), [0.0, 1.0]);
    }

    #[test]
    fn the_log_mean_exp_of_huge_values_does_not_overflow() {
        assert!((log_mean_exp(&[1000.0, 1000.0]) - 1000.0).abs() < 1e-9);
        let direct = ((1f64.exp() + 3f64.exp()) / 2.0).ln();
        assert!((log_mean_exp(&[1.0, 3.0]) - direct).abs() < 1e-12);
    }
}
