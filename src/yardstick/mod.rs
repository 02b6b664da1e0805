//! The sample-quality yardstick: one measure of generated MNIST digits, shared by
//! notebooks `08_vae_gan`, `09_diffusion` and `10_guided_latent_diffusion` so that their models
//! are compared on the same scale. Notebook `08_vae_gan` §5 builds it up piece by piece.
//!
//! A small convolutional classifier ([`Net`]) is trained once, from a fixed seed, on
//! [`Digits`]' training images and cached under `target/cache` ([`cache_path`]). Its
//! [`FEATURES`] penultimate activations are the space every comparison happens in:
//!
//! - the **Fréchet distance** between Gaussians fitted to generated and real test
//!   features ([`frechet_distance`]; Heusel et al., 2017). Heusel et al. used Inception-v3's
//!   features and called the result FID; this is the same formula in *this classifier's*
//!   features, so its values say nothing about published FIDs, only about models scored
//!   by this yardstick;
//! - **precision and recall** (Kynkäänniemi et al., 2019): the share of generated samples
//!   inside the real samples' k-nearest-neighbour manifold, and of real samples inside the
//!   generated one ([`precision_recall`], k = [`K`]);
//! - the **class histogram** of the samples and the classifier's mean top-class
//!   **confidence**: a model that draws only some digits (mode collapse) shows gaps, one
//!   that draws shapeless blobs shows low confidence;
//! - **sharpness** ([`sharpness`]), the mean gradient magnitude of the pixels: a VAE's
//!   blurred digits score below real ones.
//!
//! [`Yardstick::score`] computes them all ([`Score`]).
//!
//! Limits. The classifier saw only MNIST digits: it judges what it can tell apart, not
//! what a person would, and it is confidently wrong outside them (uniform noise: all
//! 2,000 images labelled 8, confidence 0.97). No single number suffices, so read the
//! Fréchet distance beside precision: an outlier among the real digits has a huge k-NN
//! ball in feature space, and uniform noise lands in such balls (precision 0.27 here,
//! 0.87 with an earlier classifier) while its Fréchet distance (about 700) is hundreds of
//! times real digits' (about 2). Sharpness rewards noise too. The Fréchet distance is biased upwards for small sample
//! sets, and recall grows with the number of samples, so compare models on equally many
//! samples (2,000, as many as the real test images, is the course's habit).

mod classifier;
mod frechet;
mod manifold;
mod sharpness;

pub use classifier::{cache_path, Body, Net};
pub use frechet::{frechet, frechet_distance, Gaussian};
pub use manifold::{precision_recall, Manifold, PrecisionRecall};
pub use sharpness::sharpness;

use crate::cache;
use crate::data::{mnist, ImageSet};
use crate::Error;
use dfdx::prelude::*;
use ndarray::Array2;

/// The side of an MNIST image, in pixels.
pub const SIDE: usize = 28;
/// Pixels in one image, `SIDE × SIDE`: the length of a flattened image.
pub const PIXELS: usize = SIDE * SIDE;
/// The width of the classifier's penultimate layer: the feature space of the Fréchet
/// distance and of precision and recall.
pub const FEATURES: usize = 128;
/// The digits, 0 to 9.
pub const CLASSES: usize = 10;
/// The neighbour whose distance sets each point's ball in precision and recall
/// (Kynkäänniemi et al., 2019, recommend 3).
pub const K: usize = 3;
/// The seed of [`Digits`]' train/test split.
pub const SPLIT_SEED: u64 = 8;

/// Below this test accuracy a cached classifier is not trusted (a stale or damaged file
/// that still parses) and is trained afresh. The training recipe reaches more than 98%.
const TRUSTED_ACCURACY: f64 = 0.97;

/// The MNIST images the generative notebooks train on and are measured against: the
/// 10,000 images of `data/` split 8,000 / 2,000 with [`SPLIT_SEED`]. Notebook `08_vae_gan`
/// §2 and §5 train their models on `train`; [`Yardstick::score`] compares samples with `test`.
#[derive(Clone, Debug, PartialEq)]
pub struct Digits {
    /// 8,000 images: the generative models' and the yardstick classifier's training set.
    pub train: ImageSet,
    /// 2,000 images: the real samples that generated ones are compared with.
    pub test: ImageSet,
}

impl Digits {
    /// Loads [`crate::data::mnist`] and splits it (20% test, [`SPLIT_SEED`]).
    pub fn mnist() -> Result<Digits, Error> {
        let (train, test) = mnist()?.split(0.2, SPLIT_SEED)?;
        Ok(Digits { train, test })
    }
}

/// The trained classifier and what it found in the real test images: their features'
/// Gaussian and manifold, ready for [`Yardstick::score`]. Notebook `08_vae_gan` §5;
/// notebooks `09_diffusion` and `10_guided_latent_diffusion` score their samples with it.
#[derive(Clone, Debug)]
pub struct Yardstick {
    net: classifier::Built,
    test_accuracy: f64,
    real: Gaussian,
    manifold: Manifold,
}

impl Yardstick {
    /// The classifier from the cache file ([`cache_path`]), or, when that is missing,
    /// unreadable or no longer accurate, trained afresh (a few seconds) and cached.
    pub fn load_or_train() -> Result<Yardstick, Error> {
        let digits = Digits::mnist()?;
        let path = cache_path();
        let fresh = Cpu::default().build_module::<Net, f32>();
        if let Some(net) = cache::load(fresh, &path) {
            let yardstick = Yardstick::measure(net, &digits)?;
            if yardstick.test_accuracy >= TRUSTED_ACCURACY {
                return Ok(yardstick);
            }
        }
        let net = classifier::train(&digits)?;
        cache::save(&net, &path)?;
        Yardstick::measure(net, &digits)
    }

    /// The classifier's accuracy and the real test images' features, from one pass.
    fn measure(net: classifier::Built, digits: &Digits) -> Result<Yardstick, Error> {
        let (features, probabilities) = forward(&net, &digits.test.pixels);
        let correct = probabilities
            .rows()
            .into_iter()
            .zip(&digits.test.labels)
            .filter(|(p, &label)| top_class(p.as_slice().expect("contiguous")) == label)
            .count();
        Ok(Yardstick {
            net,
            test_accuracy: correct as f64 / digits.test.len() as f64,
            real: Gaussian::fit(&features)?,
            manifold: Manifold::new(features, K)?,
        })
    }

    /// The share of [`Digits`]' 2,000 test images the classifier labels correctly.
    pub fn test_accuracy(&self) -> f64 {
        self.test_accuracy
    }

    /// The same classifier judging samples against the images `real` (flattened `n × 784`,
    /// pixels in `0..=1`) instead of the test digits. For samples that all pass through
    /// one transformation, so must the real images: notebook `09_diffusion` §5 generates
    /// 14×14 digits and judges everything, real digits included, halved and doubled back.
    pub fn against(&self, real: &[f32]) -> Result<Yardstick, Error> {
        check_more_than_k(real, "the number of real images to judge against")?;
        let features = forward(&self.net, real).0;
        Ok(Yardstick {
            net: self.net.clone(),
            test_accuracy: self.test_accuracy,
            real: Gaussian::fit(&features)?,
            manifold: Manifold::new(features, K)?,
        })
    }

    /// The real test images' features, `(2000, FEATURES)`: what samples are compared with.
    pub fn real_features(&self) -> &Array2<f64> {
        &self.manifold.points
    }

    /// The classifier's penultimate features of `pixels` (flattened `n × 784` images,
    /// pixels in `0..=1`): `(n, FEATURES)`.
    pub fn features(&self, pixels: &[f32]) -> Result<Array2<f64>, Error> {
        check_pixels(pixels, PIXELS)?;
        Ok(forward(&self.net, pixels).0)
    }

    /// The classifier's softmax probabilities of the ten digits for `pixels` (flattened
    /// `n × 784` images, pixels in `0..=1`): `(n, CLASSES)`.
    pub fn probabilities(&self, pixels: &[f32]) -> Result<Array2<f64>, Error> {
        check_pixels(pixels, PIXELS)?;
        Ok(forward(&self.net, pixels).1)
    }

    /// Every measure of `samples` (flattened `n × 784` images, `n > K`, pixels in `0..=1`)
    /// against the real test images. Compare models on equally many samples: the Fréchet
    /// distance and recall depend on the count (see the module's limits).
    pub fn score(&self, samples: &[f32]) -> Result<Score, Error> {
        let n = check_more_than_k(samples, "the number of samples scored")?;
        let (features, probabilities) = forward(&self.net, samples);
        let frechet = frechet_distance(&self.real, &Gaussian::fit(&features)?)?;
        let precision = self.manifold.coverage(&features)?;
        let recall = Manifold::new(features, K)?.coverage(&self.manifold.points)?;
        let mut histogram = [0; CLASSES];
        let mut confidence = 0.0;
        for p in probabilities.rows() {
            let p = p.as_slice().expect("contiguous");
            let top = top_class(p);
            histogram[top] += 1;
            confidence += p[top];
        }
        Ok(Score {
            frechet,
            precision,
            recall,
            histogram,
            confidence: confidence / n as f64,
            sharpness: sharpness(samples, SIDE)?,
        })
    }
}

/// What [`Yardstick::score`] measured of a set of samples. Notebook `08_vae_gan` §5.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Score {
    /// The Fréchet distance to the real test images in the classifier's features
    /// ([`frechet_distance`]); 0 for identical distributions.
    pub frechet: f64,
    /// The share of samples inside the real images' k-NN manifold ([`Manifold`]).
    pub precision: f64,
    /// The share of real test images inside the samples' k-NN manifold.
    pub recall: f64,
    /// How many samples the classifier labels as each digit.
    pub histogram: [usize; CLASSES],
    /// The mean over samples of the classifier's top-class probability.
    pub confidence: f64,
    /// The samples' mean gradient magnitude ([`sharpness`]).
    pub sharpness: f64,
}

impl Score {
    /// The number of samples scored.
    pub fn samples(&self) -> usize {
        self.histogram.iter().sum()
    }

    /// The share of samples labelled `class` (0 for a class out of range).
    pub fn share(&self, class: usize) -> f64 {
        let count = self.histogram.get(class).copied().unwrap_or(0);
        count as f64 / self.samples().max(1) as f64
    }

    /// The number of digits that make up at least `min_share` of the samples: 10 when
    /// every digit is drawn, fewer under mode collapse (real digits are about 10% each,
    /// so `0.05` asks for half a fair share).
    pub fn classes_covered(&self, min_share: f64) -> usize {
        (0..CLASSES)
            .filter(|&class| self.share(class) >= min_share)
            .count()
    }
}

impl std::fmt::Display for Score {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Fréchet distance {:.2}, precision {:.3}, recall {:.3}, confidence {:.3}, \
             {} digits of 10 with ≥ 5% of the samples, sharpness {:.3}",
            self.frechet,
            self.precision,
            self.recall,
            self.confidence,
            self.classes_covered(0.05),
            self.sharpness
        )
    }
}

/// Features `(n, FEATURES)` and softmax probabilities `(n, CLASSES)` of already checked
/// pixels, 500 images at a time so that the activations stay small.
fn forward(net: &classifier::Built, pixels: &[f32]) -> (Array2<f64>, Array2<f64>) {
    let dev = Cpu::default();
    let n = pixels.len() / PIXELS;
    let (mut features, mut probabilities) = (Vec::new(), Vec::new());
    for chunk in pixels.chunks(500 * PIXELS) {
        let x = dev.tensor_from_vec(chunk.to_vec(), (chunk.len() / PIXELS, Const::<PIXELS>));
        let body = net.0.forward(x);
        let p = net.1.forward(body.clone()).softmax::<Axis<1>>();
        features.extend(body.as_vec().into_iter().map(f64::from));
        probabilities.extend(p.as_vec().into_iter().map(f64::from));
    }
    (
        Array2::from_shape_vec((n, FEATURES), features).expect("n rows of FEATURES"),
        Array2::from_shape_vec((n, CLASSES), probabilities).expect("n rows of CLASSES"),
    )
}

/// The most probable class of a row of probabilities (the first, on ties).
fn top_class(p: &[f64]) -> usize {
    (0..p.len()).fold(0, |best, j| if p[j] > p[best] { j } else { best })
}

/// [`check_pixels`] for a set of 28×28 images that precision and recall can be computed
/// on: more than [`K`] of them. Returns their number.
fn check_more_than_k(pixels: &[f32], what: &'static str) -> Result<usize, Error> {
    let n = check_pixels(pixels, PIXELS)?;
    if n <= K {
        return Err(Error::ShapeMismatch {
            what,
            expected: format!("more than k = {K}: precision and recall need neighbours"),
            got: n.to_string(),
        });
    }
    Ok(n)
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, Rng, SeedableRng};
    use std::sync::OnceLock;

    /// One classifier for every test: the first to ask loads it (or trains it once).
    fn yardstick() -> &'static Yardstick {
        static YARDSTICK: OnceLock<Yardstick> = OnceLock::new();
        YARDSTICK.get_or_init(|| Yardstick::load_or_train().unwrap())
    }

    /// The first 2,000 training images: real digits the classifier's test set did not
    /// hold, as many as the test set.
    fn real_samples() -> Vec<f32> {
        Digits::mnist().unwrap().train.pixels[..2000 * PIXELS].to_vec()
    }

    #[test]
    fn the_digits_split_8000_to_2000() {
        let digits = Digits::mnist().unwrap();
        assert_eq!((digits.train.len(), digits.test.len()), (8000, 2000));
        assert_eq!(digits.train.pixels_per_image(), PIXELS);
    }

    #[test]
    fn the_classifier_reads_the_test_digits() {
        let accuracy = yardstick().test_accuracy();
        assert!(accuracy >= 0.97, "{accuracy}");
    }

    #[test]
    fn a_second_load_reads_the_cache_and_agrees() {
        let first = yardstick();
        let second = Yardstick::load_or_train().unwrap();
        assert!(cache_path().exists());
        assert_eq!(second.test_accuracy(), first.test_accuracy());
        assert_eq!(second.real_features(), first.real_features());
    }

    #[test]
    fn an_unreadable_cache_file_is_ignored_and_a_saved_one_reads_back() {
        let folder = std::env::temp_dir().join(format!("yardstick-{}", std::process::id()));
        let path = folder.join("net.safetensors");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(&path, b"not safetensors").unwrap();
        let fresh = || Cpu::default().build_module::<Net, f32>();
        assert!(cache::load(fresh(), &path).is_none());
        cache::save(&yardstick().net, &path).unwrap();
        let loaded = cache::load(fresh(), &path).unwrap();
        std::fs::remove_dir_all(&folder).unwrap();
        let pixels = &real_samples()[..5 * PIXELS];
        assert_eq!(
            forward(&loaded, pixels),
            forward(&yardstick().net, pixels),
            "the same weights, running statistics included"
        );
    }

    #[test]
    fn real_digits_score_close_to_the_test_digits_and_noise_far() {
        let yardstick = yardstick();
        let real = yardstick.score(&real_samples()).unwrap();
        assert!(real.frechet < 15.0, "{real}");
        assert!(real.precision > 0.8 && real.recall > 0.8, "{real}");
        assert!(real.confidence > 0.95, "{real}");
        assert_eq!(real.classes_covered(0.05), 10, "{real}");
        assert_eq!(real.samples(), 2000);

        let mut rng = StdRng::seed_from_u64(0);
        let noise: Vec<f32> = (0..2000 * PIXELS).map(|_| rng.gen::<f32>()).collect();
        let noise = yardstick.score(&noise).unwrap();
        assert!(
            noise.frechet > 20.0 * real.frechet,
            "{noise} against {real}"
        );
        assert!(noise.recall < 0.1, "{noise}");
    }

    #[test]
    fn features_and_probabilities_have_one_row_per_image() {
        let yardstick = yardstick();
        let pixels = &real_samples()[..3 * PIXELS];
        assert_eq!(yardstick.features(pixels).unwrap().dim(), (3, FEATURES));
        let p = yardstick.probabilities(pixels).unwrap();
        assert_eq!(p.dim(), (3, CLASSES));
        for row in p.rows() {
            assert!((row.sum() - 1.0).abs() < 1e-5, "{row}");
        }
    }

    #[test]
    fn bad_samples_are_errors_that_say_what_is_wrong() {
        let yardstick = yardstick();
        let mut pixels = real_samples()[..10 * PIXELS].to_vec();
        pixels[PIXELS + 5] = 2.0;
        let message = yardstick.score(&pixels).unwrap_err().to_string();
        assert!(message.contains("2 (image 1, pixel 5)"), "{message}");
        assert!(message.contains("(x + 1) / 2"), "{message}");
        pixels[PIXELS + 5] = f32::NAN;
        let message = yardstick.score(&pixels).unwrap_err().to_string();
        assert!(message.contains("NaN (image 1, pixel 5)"), "{message}");
        let message = yardstick.score(&pixels[..100]).unwrap_err().to_string();
        assert!(message.contains("images of 784 pixels"), "{message}");
        assert!(yardstick.features(&[]).is_err());
        let message = yardstick
            .score(&real_samples()[..3 * PIXELS])
            .unwrap_err()
            .to_string();
        assert!(message.contains("more than k = 3"), "{message}");
    }

    #[test]
    fn shares_and_covered_classes_read_the_histogram() {
        let score = Score {
            frechet: 0.0,
            precision: 1.0,
            recall: 1.0,
            histogram: [50, 30, 12, 8, 0, 0, 0, 0, 0, 0],
            confidence: 1.0,
            sharpness: 1.0,
        };
        assert_eq!(score.samples(), 100);
        assert_eq!(score.share(1), 0.3);
        assert_eq!(score.share(10), 0.0);
        assert_eq!(score.classes_covered(0.1), 3);
        assert_eq!(score.classes_covered(0.0), 10);
    }
}
