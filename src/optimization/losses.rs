//! Notebook `02_optimization` §2: the loss decides which gradients the optimizer sees.
//!
//! Squared error against cross-entropy on a saturated output ([`saturation_gradients`],
//! [`train_from_bad_init`]), and the triplet loss that trains an embedding instead of a
//! classifier ([`Embedder`]).

use super::{
    check_digits, digits_mlp, gradient, select_on_validation, Criterion, Mlp, Run, Selected,
};
use crate::data::{ImageSet, Points2d};
use crate::nn::ReLU;
use crate::optim::Method;
use crate::train::{fit, norm, Drawn, Loss, Measured, TrainConfig};
use crate::Error;
use dfdx::prelude::*;
use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};

/// The slope of each loss with respect to the logit `z` of one sigmoid unit whose target is 1.
#[derive(Clone, Debug, PartialEq)]
pub struct SaturationCurve {
    pub logits: Vec<f64>,
    /// |∂/∂z (σ(z) − 1)²| = 2·(1 − σ)·σ·(1 − σ): vanishes as z → −∞.
    pub squared_error: Vec<f64>,
    /// |∂/∂z −ln σ(z)| = 1 − σ(z): tends to 1 as z → −∞.
    pub cross_entropy: Vec<f64>,
}

/// [`SaturationCurve`] at each of `logits`, differentiated by dfdx (notebook §2).
pub fn saturation_gradients(logits: &[f64]) -> SaturationCurve {
    let dev = Cpu::default();
    let n = logits.len();
    let z: Tensor<(usize,), f64, Cpu> = dev.tensor_from_vec(logits.to_vec(), (n,));
    let ones: Tensor<(usize,), f64, Cpu> = dev.ones_like(&(n,));
    // Sums of per-unit losses, so each unit's gradient is its own loss's slope.
    let squared = (z.leaky_trace().sigmoid() - ones.clone()).square().sum();
    let squared_error = squared.backward().get(&z).as_vec();
    let entropy = binary_cross_entropy_with_logits_loss(z.leaky_trace(), ones) * n as f64;
    let cross_entropy = entropy.backward().get(&z).as_vec();
    SaturationCurve {
        logits: logits.to_vec(),
        squared_error: squared_error.iter().map(|g| g.abs()).collect(),
        cross_entropy: cross_entropy.iter().map(|g| g.abs()).collect(),
    }
}

/// A [`digits_mlp`] from `seed` that starts out sure every digit is a 0: the output
/// bias of class 0 is raised by `confidence`, so the softmax saturates with p(0) ≈ 1 for
/// every image once `confidence` is large (about `1 − 9·e^−confidence`).
pub fn confidently_wrong_mlp(seed: u64, confidence: f32) -> Mlp {
    let mut model = digits_mlp(seed);
    let mut bias = model.2.bias.as_vec();
    bias[0] += confidence;
    model.2.bias.copy_from(&bias);
    model
}

/// The norm of the gradient of `loss` over all of `images`, with respect to every weight
/// of [`confidently_wrong_mlp`]`(seed, confidence)`: how hard the loss pushes at the start.
pub fn initial_gradient_norm(
    images: &ImageSet,
    loss: Loss,
    confidence: f32,
    seed: u64,
) -> Result<f32, Error> {
    let model = confidently_wrong_mlp(seed, confidence);
    let all: Vec<usize> = (0..images.len()).collect();
    Ok(norm(&gradient(&model, images, &all, loss)?))
}

/// [`confidently_wrong_mlp`]`(seed, confidence)` trained on `train` with `loss` and plain
/// SGD, batches of 32, for `epochs` epochs, at the learning rate of `lrs` with the highest
/// accuracy at the end on a validation split (a fifth of `train`), then retrained at that rate
/// on all of `train` and tested on `test` ([`select_on_validation`], notebook §2).
pub fn train_from_bad_init(
    train: &ImageSet,
    test: &ImageSet,
    loss: Loss,
    confidence: f32,
    lrs: &[f64],
    epochs: usize,
    seed: u64,
) -> Result<Selected, Error> {
    let criterion = Criterion::ValidationAccuracy;
    select_on_validation(
        lrs,
        criterion,
        0.2,
        train,
        test,
        seed,
        |lr, fit, held_out| {
            let run = Run::new(Method::Sgd, lr).loss(loss).epochs(epochs);
            run.train_from(confidently_wrong_mlp(seed, confidence), fit, held_out, seed)
        },
    )
}

/// The network the triplet loss trains: 64 pixels → 64 ReLU units → a point of the plane.
pub type EmbeddingNet = (Linear<64, 64>, ReLU, Linear<64, 2>);

type Net = <EmbeddingNet as BuildOnDevice<Cpu, f32>>::Built;

/// An embedding of the 8×8 digits into the plane, trained with the triplet loss of
/// FaceNet (Schroff, Kalenichenko & Philbin, 2015): an anchor should lie closer to a
/// positive (same class) than to a negative (another class), by a margin:
/// `max(0, |a − p|² − |a − n|² + margin)`. Notebook `02_optimization` §2.
pub struct Embedder {
    net: Net,
    /// The mean triplet loss of each training step.
    pub losses: Vec<f32>,
}

impl Embedder {
    /// A freshly initialised, untrained embedding.
    pub fn new(seed: u64) -> Embedder {
        Embedder {
            net: Cpu::seed_from_u64(seed).build_module::<EmbeddingNet, f32>(),
            losses: Vec::new(),
        }
    }

    /// `steps` Adam steps (learning rate `lr`) on batches of `batch` random triplets drawn
    /// from `images` with `seed`.
    pub fn train(
        &mut self,
        images: &ImageSet,
        steps: usize,
        batch: usize,
        margin: f32,
        lr: f64,
        seed: u64,
    ) -> Result<(), Error> {
        if batch == 0 || !(lr.is_finite() && lr >= 0.0 && margin.is_finite()) {
            return Err(Error::InvalidArgument {
                what: "the triplet training",
                expected:
                    "at least one triplet a batch, a finite learning rate ≥ 0 and a finite margin",
                got: format!("batches of {batch}, learning rate {lr}, margin {margin}"),
            });
        }
        check_digits(images)?;
        let dev = Cpu::default();
        let mut rng = StdRng::seed_from_u64(seed);
        let by_class = by_class(images)?;
        let triplets = Drawn::new(steps, || -> Vec<[usize; 3]> {
            (0..batch).map(|_| triplet(&by_class, &mut rng)).collect()
        });
        let objective = |net: &mut Net, rows: Vec<[usize; 3]>, grads| -> Result<Measured, Error> {
            // Anchors, then positives, then negatives: one forward pass for all three.
            let mut x = Vec::with_capacity(3 * batch * 64);
            for role in 0..3 {
                rows.iter()
                    .for_each(|t| x.extend_from_slice(images.image(t[role])));
            }
            let x = dev.tensor_from_vec(x, (3 * batch, Const::<64>));
            let e = net.forward_mut(x.traced(grads)); // (3·batch, 2)
            let a = e.with_empty_tape().slice((0..batch, ..));
            let p = e.with_empty_tape().slice((batch..2 * batch, ..));
            let n = e.slice((2 * batch..3 * batch, ..));
            let to_positive = (a.with_empty_tape() - p)
                .square()
                .sum::<(usize,), Axis<1>>();
            let to_negative = (a - n).square().sum::<(usize,), Axis<1>>();
            Ok(Measured::loss(
                (to_positive - to_negative + margin).relu().mean(),
            ))
        };
        let mut adam = Method::Adam.at(lr).build(&self.net);
        let config = TrainConfig::new(1).quiet();
        let history = fit(&mut self.net, adam.as_mut(), triplets, objective, &config)?;
        self.losses.extend(history.losses());
        Ok(())
    }

    /// Every image of `images` as a point of the plane, labelled with its class.
    pub fn embed(&self, images: &ImageSet) -> Result<Points2d, Error> {
        check_digits(images)?;
        let dev = Cpu::default();
        let x = dev.tensor_from_vec(images.pixels.clone(), (images.len(), Const::<64>));
        let e = self.net.forward(x).as_vec();
        Ok(Points2d {
            xy: e
                .chunks(2)
                .map(|p| [f64::from(p[0]), f64::from(p[1])])
                .collect(),
            labels: images.labels.clone(),
        })
    }

    /// Over `count` random triplets of `images` drawn with `seed`, the fraction whose anchor
    /// lies closer to its positive than to its negative, and the mean distances from anchor
    /// to positive and to negative.
    pub fn triplet_check(
        &self,
        images: &ImageSet,
        count: usize,
        seed: u64,
    ) -> Result<TripletCheck, Error> {
        let points = self.embed(images)?;
        let by_class = by_class(images)?;
        let mut rng = StdRng::seed_from_u64(seed);
        let distance = |i: usize, j: usize| {
            let (p, q) = (points.xy[i], points.xy[j]);
            ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)).sqrt()
        };
        let (mut ordered, mut same, mut different) = (0, 0.0, 0.0);
        for _ in 0..count {
            let [a, p, n] = triplet(&by_class, &mut rng);
            let (d_same, d_different) = (distance(a, p), distance(a, n));
            ordered += usize::from(d_same < d_different);
            same += d_same / count as f64;
            different += d_different / count as f64;
        }
        Ok(TripletCheck {
            ordered: ordered as f64 / count.max(1) as f64,
            same_class_distance: same,
            other_class_distance: different,
        })
    }
}

/// What [`Embedder::triplet_check`] measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TripletCheck {
    /// The fraction of triplets with the positive closer than the negative.
    pub ordered: f64,
    pub same_class_distance: f64,
    pub other_class_distance: f64,
}

/// The indices of each class's images; fails unless two classes have two images or more.
fn by_class(images: &ImageSet) -> Result<Vec<Vec<usize>>, Error> {
    let mut classes = vec![Vec::new(); images.class_names.len()];
    for (i, &label) in images.labels.iter().enumerate() {
        let class = classes.get_mut(label).ok_or_else(|| Error::ShapeMismatch {
            what: "every label",
            expected: format!("below the number of classes, {}", images.class_names.len()),
            got: label.to_string(),
        })?;
        class.push(i);
    }
    classes.retain(|c| c.len() >= 2);
    if classes.len() < 2 {
        return Err(Error::InvalidArgument {
            what: "the images for triplets",
            expected: "two classes with at least two images each",
            got: format!("{} such classes", classes.len()),
        });
    }
    Ok(classes)
}

/// A random anchor, a different image of its class, and an image of another class.
fn triplet(by_class: &[Vec<usize>], rng: &mut StdRng) -> [usize; 3] {
    let class = rng.gen_range(0..by_class.len());
    let pair: Vec<&usize> = by_class[class].choose_multiple(rng, 2).collect();
    let other = (class + rng.gen_range(1..by_class.len())) % by_class.len();
    let negative = by_class[other].choose(rng).copied().unwrap_or(*pair[1]);
    [*pair[0], *pair[1], negative]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::digits;

    #[test]
    fn the_slopes_match_their_formulas() {
        let curve = saturation_gradients(&[-8.0, 0.0, 3.0]);
        let sigmoid = |z: f64| 1.0 / (1.0 + (-z).exp());
        for (i, &z) in curve.logits.iter().enumerate() {
            let s = sigmoid(z);
            assert!((curve.squared_error[i] - 2.0 * (1.0 - s) * s * (1.0 - s)).abs() < 1e-12);
            assert!((curve.cross_entropy[i] - (1.0 - s)).abs() < 1e-12);
        }
        assert!(curve.cross_entropy[0] > 1000.0 * curve.squared_error[0]);
    }

    #[test]
    fn a_confidently_wrong_mlp_calls_every_digit_a_zero() {
        let (fresh, wrong) = (digits_mlp(3), confidently_wrong_mlp(3, 10.0));
        assert_eq!(fresh.0.weight.as_vec(), wrong.0.weight.as_vec());
        let (b, w) = (fresh.2.bias.as_vec(), wrong.2.bias.as_vec());
        assert_eq!((w[0] - b[0], &w[1..]), (10.0, &b[1..]));
        let images = digits().unwrap().subset(&(0..50).collect::<Vec<_>>());
        let x = Cpu::default().tensor_from_vec(images.pixels.clone(), (50, Const::<64>));
        let p = wrong.forward(x).softmax::<Axis<1>>().as_vec();
        assert!(p.chunks(10).all(|row| row[0] > 0.99), "{:?}", &p[..10]);
    }

    #[test]
    fn cross_entropy_pushes_harder_than_squared_error_when_saturated() {
        let images = digits().unwrap().subset(&(0..200).collect::<Vec<_>>());
        let ce = initial_gradient_norm(&images, Loss::CrossEntropy, 10.0, 0).unwrap();
        let se = initial_gradient_norm(&images, Loss::SquaredError, 10.0, 0).unwrap();
        assert!(ce > 100.0 * se, "{ce} vs {se}");
        let empty = images.subset(&[]);
        assert!(initial_gradient_norm(&empty, Loss::CrossEntropy, 1.0, 0).is_err());
    }

    #[test]
    fn triplets_pair_a_class_with_another() {
        let labels = [0, 0, 1, 1, 1, 2];
        let images = ImageSet {
            pixels: vec![0.0; 6 * 64],
            labels: labels.to_vec(),
            height: 8,
            width: 8,
            class_names: vec!["a".into(), "b".into(), "c".into()],
        };
        let classes = by_class(&images).unwrap();
        assert_eq!(
            classes.len(),
            2,
            "class c has one image: no positive for it"
        );
        let mut rng = StdRng::seed_from_u64(0);
        for _ in 0..50 {
            let [a, p, n] = triplet(&classes, &mut rng);
            assert!(a != p && labels[a] == labels[p] && labels[a] != labels[n]);
            assert!(labels[n] != 2);
        }
        let one_class = images.subset(&[2, 3, 4]);
        assert!(by_class(&one_class).is_err());
        let unnamed = ImageSet {
            labels: vec![0, 0, 1, 1, 1, 3],
            ..images.clone()
        };
        assert!(by_class(&unnamed).is_err());
        let mnist_like = ImageSet {
            height: 28,
            width: 28,
            pixels: vec![0.0; 6 * 784],
            ..images
        };
        assert!(Embedder::new(0).embed(&mnist_like).is_err());
    }

    #[test]
    fn the_triplet_loss_separates_the_classes() {
        let (train, test) = digits().unwrap().split(0.2, 0).unwrap();
        let mut embedder = Embedder::new(0);
        let before = embedder.triplet_check(&test, 500, 1).unwrap();
        embedder.train(&train, 200, 64, 1.0, 1e-2, 0).unwrap();
        let after = embedder.triplet_check(&test, 500, 1).unwrap();
        assert!(after.ordered > before.ordered + 0.1, "{before:?} {after:?}");
        assert!(embedder.losses[190..].iter().sum::<f32>() < embedder.losses[..10].iter().sum());
        assert!(embedder.train(&train, 1, 0, 1.0, 1e-2, 0).is_err());
    }
}
