//! The sample-quality yardstick: one measure of generated MNIST digits, shared by
//! notebooks `08_vae_gan`, `09_diffusion` and `10_guided_diffusion` so that their models
//! are compared on the same scale. Notebook `08_vae_gan` §5 builds it up piece by piece.
//!
//! The measures, each computed in some feature space:
//!
//! - the **Fréchet distance** between Gaussians fitted to generated and real features
//!   ([`frechet_distance`]; Heusel et al., 2017);
//! - **precision and recall** (Kynkäänniemi et al., 2019): the share of generated samples
//!   inside the real samples' k-nearest-neighbour manifold, and of real samples inside the
//!   generated one ([`precision_recall`], k = [`K`] by default);
//! - **sharpness** ([`sharpness`]), the mean squared Laplacian of the pixels: a VAE's
//!   blurred digits score below real ones.

mod frechet;
mod manifold;
mod sharpness;

pub use frechet::{frechet, frechet_distance, Gaussian};
pub use manifold::{precision_recall, Manifold, PrecisionRecall};
pub use sharpness::sharpness;

use crate::Error;

/// The neighbour whose distance sets each point's ball in precision and recall
/// (Kynkäänniemi et al., 2019, recommend 3).
pub const K: usize = 3;

/// The number of images in `pixels`, after checking that it holds a whole number (at
/// least one) of images of `per_image` pixels, every one a number in `0..=1`: generated
/// images often come out of a tanh (−1..1) or an unclamped linear layer, and NaN would
/// pass silently through the classifier.
fn check_pixels(pixels: &[f32], per_image: usize) -> Result<usize, Error> {
    if pixels.is_empty() || !pixels.len().is_multiple_of(per_image) {
        return Err(Error::ShapeMismatch {
            what: "the number of pixel values",
            expected: format!("a whole number of images of {per_image} pixels, at least one"),
            got: pixels.len().to_string(),
        });
    }
    if let Some(i) = pixels.iter().position(|v| !(0.0..=1.0).contains(v)) {
        return Err(Error::InvalidArgument {
            what: "every pixel",
            expected: "in 0..=1 (map a tanh output x to (x + 1) / 2, clamp a linear one)",
            got: format!(
                "{} (image {}, pixel {})",
                pixels[i],
                i / per_image,
                i % per_image
            ),
        });
    }
    Ok(pixels.len() / per_image)
}
