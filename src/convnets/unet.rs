//! §6: U-Net (Ronneberger, Fischer & Brox, 2015) for per-pixel segmentation: an encoder
//! that pools the image down to coarse, context-rich features, a decoder that grows them
//! back, and skip connections that hand each decoder level the encoder's fine features of
//! the same size (concatenated along the channels), so that edges come out sharp.
//! Trained here on a seeded synthetic set of shapes on noisy backgrounds ([`shapes`]).

use crate::nn;
use crate::nn::builders::{Conv2D, ConvTranspose2D, MaxPool2D, ReLU};
use crate::nn::Bias2D;
use crate::optim::Method;
use crate::runtime::device;
use crate::train::{fit, Drawn, Measured, TrainConfig};
use crate::Error;
use dfdx::prelude::*;
use rand::{rngs::StdRng, Rng, SeedableRng};

/// Side of the synthetic images, in pixels.
pub const SIZE: usize = 32;

/// Images with a 0/1 mask per pixel (1: the pixel belongs to a shape).
#[derive(Clone, Debug, PartialEq)]
pub struct Segmentation {
    /// `(len, SIZE, SIZE)`, row-major.
    pub images: Vec<f32>,
    /// `(len, SIZE, SIZE)`, 0 or 1.
    pub masks: Vec<f32>,
}

impl Segmentation {
    pub fn len(&self) -> usize {
        self.images.len() / (SIZE * SIZE)
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    pub fn image(&self, i: usize) -> &[f32] {
        &self.images[i * SIZE * SIZE..][..SIZE * SIZE]
    }

    pub fn mask(&self, i: usize) -> &[f32] {
        &self.masks[i * SIZE * SIZE..][..SIZE * SIZE]
    }
}

/// `n` seeded 32×32 images, each with one to three shapes (discs and rectangles, some of
/// them thin bars) a little brighter than a background that has a random tilt in
/// brightness and per-pixel noise. No one threshold on brightness separates shape from
/// background: the contrast (0.35 to 0.7) is about as large as the tilt (up to ±0.3) and
/// the noise (σ = 0.15).
pub fn shapes(n: usize, seed: u64) -> Segmentation {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut images = Vec::with_capacity(n * SIZE * SIZE);
    let mut masks = Vec::with_capacity(n * SIZE * SIZE);
    for _ in 0..n {
        let mut mask = vec![0.0f32; SIZE * SIZE];
        for _ in 0..rng.gen_range(1..=3) {
            draw_shape(&mut mask, &mut rng);
        }
        let contrast: f32 = rng.gen_range(0.35..0.7);
        let (tilt_x, tilt_y): (f32, f32) = (rng.gen_range(-0.3..0.3), rng.gen_range(-0.3..0.3));
        let noise = rand_distr::Normal::new(0.0f32, 0.15).expect("a valid σ");
        for (p, &m) in mask.iter().enumerate() {
            let (r, c) = (
                (p / SIZE) as f32 / SIZE as f32,
                (p % SIZE) as f32 / SIZE as f32,
            );
            let background = 0.4 + tilt_x * (c - 0.5) * 2.0 + tilt_y * (r - 0.5) * 2.0;
            images.push(background + contrast * m + rng.sample(noise));
        }
        masks.extend(mask);
    }
    Segmentation { images, masks }
}

fn draw_shape(mask: &mut [f32], rng: &mut StdRng) {
    let (cy, cx) = (rng.gen_range(4..28) as f32, rng.gen_range(4..28) as f32);
    if rng.gen_bool(0.5) {
        let radius: f32 = rng.gen_range(2.5..7.0);
        fill(mask, |r, c| {
            (r - cy).powi(2) + (c - cx).powi(2) <= radius * radius
        });
    } else {
        let (half_h, half_w): (f32, f32) = (rng.gen_range(1.0..8.0), rng.gen_range(1.0..8.0));
        fill(mask, |r, c| {
            (r - cy).abs() <= half_h && (c - cx).abs() <= half_w
        });
    }
}

fn fill(mask: &mut [f32], inside: impl Fn(f32, f32) -> bool) {
    for (p, m) in mask.iter_mut().enumerate() {
        if inside((p / SIZE) as f32, (p % SIZE) as f32) {
            *m = 1.0;
        }
    }
}

/// A 3×3 convolution that keeps the size, without bias.
type Conv3<const I: usize, const O: usize, E, D> = nn::Conv2D<I, O, 3, 1, 1, 1, 1, E, D>;
/// A 2×2 transposed convolution with stride 2: doubles height and width.
type Up<const I: usize, const O: usize, E, D> = nn::ConvTranspose2D<I, O, 2, 2, 0, 1, E, D>;

/// A small U-Net for 1-channel images whose sides are multiples of 4, per-pixel logits out.
/// Two levels down and two up (the paper's has four, and 64 to 1,024 channels where this
/// one has 8 to 32); transposed 2×2 convolutions grow the features, as in the paper's
/// "up-convolution". Shapes for a 32×32 input in the comments of [`UNet::segment`].
#[derive(Clone, Debug)]
pub struct UNet<E: Dtype = f32, D: Storage<E> = Cpu> {
    enc1: (Conv3<1, 8, E, D>, Bias2D<8, E, D>, ReLU),
    enc2: (MaxPool2D<2>, Conv3<8, 16, E, D>, Bias2D<16, E, D>, ReLU),
    bottom: (MaxPool2D<2>, Conv3<16, 32, E, D>, Bias2D<32, E, D>, ReLU),
    up2: (Up<32, 16, E, D>, Bias2D<16, E, D>, ReLU),
    dec2: (Conv3<32, 16, E, D>, Bias2D<16, E, D>, ReLU),
    up1: (Up<16, 8, E, D>, Bias2D<8, E, D>, ReLU),
    dec1: (Conv3<16, 8, E, D>, Bias2D<8, E, D>, ReLU),
    /// 1×1 convolution to one logit per pixel.
    head: (nn::Conv2D<8, 1, 1, 1, 0, 1, 1, E, D>, Bias2D<1, E, D>),
}

/// A trained [`UNet`], whether it uses its skip connections, and its training losses.
#[derive(Clone, Debug)]
pub struct Segmenter {
    pub net: UNet,
    pub skips: bool,
    /// The per-pixel binary cross-entropy of every training batch.
    pub losses: Vec<f32>,
}

/// Trains a fresh [`UNet`] on `train` for `steps` steps of Adam (learning rate 3e-3) on
/// batches of `batch` images drawn at random, minimising the per-pixel binary
/// cross-entropy between its logits and the masks.
pub fn train_unet(
    train: &Segmentation,
    skips: bool,
    steps: usize,
    batch: usize,
    seed: u64,
) -> Result<Segmenter, Error> {
    if train.is_empty() || batch == 0 {
        return Err(Error::InvalidArgument {
            what: "the training set and batch size",
            expected: "at least one image and a batch of at least 1",
            got: format!("{} images, batches of {batch}", train.len()),
        });
    }
    let dev = device(seed);
    let mut net = UNet::new(&dev);
    let mut adam = Method::Adam.at(3e-3).build(&net);
    let mut rng = StdRng::seed_from_u64(seed ^ 0xa11ce);
    let rows = Drawn::new(steps, || -> Vec<usize> {
        (0..batch).map(|_| rng.gen_range(0..train.len())).collect()
    });
    let objective = |net: &mut UNet, rows: Vec<usize>, grads| -> Result<Measured, Error> {
        let (x, y) = (
            gather(&dev, &rows, |i| train.image(i)),
            gather(&dev, &rows, |i| train.mask(i)),
        );
        let logits = net.segment(x.traced(grads), skips);
        Ok(Measured::loss(binary_cross_entropy_with_logits_loss(
            logits, y,
        )))
    };
    let config = TrainConfig::new(1).quiet();
    let losses = fit(&mut net, adam.as_mut(), rows, objective, &config)?.losses();
    Ok(Segmenter { net, skips, losses })
}

/// The pictures at `rows` as one `(rows, 1, SIZE, SIZE)` batch.
fn gather<'a>(
    dev: &Cpu,
    rows: &[usize],
    picture: impl Fn(usize) -> &'a [f32],
) -> Maps<Const<1>, NoneTape> {
    let values = rows
        .iter()
        .flat_map(|&i| picture(i).iter().copied())
        .collect();
    dev.tensor_from_vec(values, (rows.len(), Const::<1>, SIZE, SIZE))
}

impl Segmenter {
    /// The predicted masks of every image of `set` (1 where the logit is positive).
    pub fn predict(&self, set: &Segmentation) -> Vec<f32> {
        let dev = Cpu::default();
        let rows: Vec<usize> = (0..set.len()).collect();
        rows.chunks(100)
            .flat_map(|chunk| {
                let logits = self
                    .net
                    .segment(gather(&dev, chunk, |i| set.image(i)), self.skips);
                logits.as_vec()
            })
            .map(|logit| if logit > 0.0 { 1.0 } else { 0.0 })
            .collect()
    }

    /// The mean over the images of `set` of the intersection over union of the predicted
    /// and the true shape pixels.
    pub fn mean_iou(&self, set: &Segmentation) -> f32 {
        let predicted = self.predict(set);
        let per_image = predicted
            .chunks(SIZE * SIZE)
            .zip(set.masks.chunks(SIZE * SIZE));
        per_image.map(|(p, t)| iou(p, t)).sum::<f32>() / set.len().max(1) as f32
    }
}

/// Intersection over union of two 0/1 masks: |A ∩ B| / |A ∪ B|, 1 when both are empty.
pub fn iou(predicted: &[f32], truth: &[f32]) -> f32 {
    let both = predicted
        .iter()
        .zip(truth)
        .filter(|(&p, &t)| p > 0.5 && t > 0.5)
        .count();
    let either = predicted
        .iter()
        .zip(truth)
        .filter(|(&p, &t)| p > 0.5 || t > 0.5)
        .count();
    if either == 0 {
        1.0
    } else {
        both as f32 / either as f32
    }
}

/// A batch of images with run-time sizes: `(batch, channels, height, width)`.
type Maps<C, T> = Tensor<(usize, C, usize, usize), f32, Cpu, T>;

impl UNet {
    /// A freshly initialised U-Net (weights drawn from `dev`'s seed).
    pub fn new(dev: &Cpu) -> UNet {
        UNet {
            enc1: dev.build_module::<(Conv2D<1, 8, 3, 1, 1>, nn::builders::Bias2D<8>, ReLU), f32>(),
            enc2: dev.build_module::<(
                MaxPool2D<2>,
                Conv2D<8, 16, 3, 1, 1>,
                nn::builders::Bias2D<16>,
                ReLU,
            ), f32>(),
            bottom: dev.build_module::<(
                MaxPool2D<2>,
                Conv2D<16, 32, 3, 1, 1>,
                nn::builders::Bias2D<32>,
                ReLU,
            ), f32>(),
            up2: dev.build_module::<(
                ConvTranspose2D<32, 16, 2, 2>,
                nn::builders::Bias2D<16>,
                ReLU,
            ), f32>(),
            dec2: dev
                .build_module::<(Conv2D<32, 16, 3, 1, 1>, nn::builders::Bias2D<16>, ReLU), f32>(),
            up1: dev
                .build_module::<(ConvTranspose2D<16, 8, 2, 2>, nn::builders::Bias2D<8>, ReLU), f32>(
                ),
            dec1: dev
                .build_module::<(Conv2D<16, 8, 3, 1, 1>, nn::builders::Bias2D<8>, ReLU), f32>(),
            head: dev.build_module::<(Conv2D<8, 1, 1>, nn::builders::Bias2D<1>), f32>(),
        }
    }

    /// Per-pixel logits for a batch of images. With `skips` false the decoder gets zeros
    /// where the encoder's features would be concatenated: the same layers and parameters,
    /// but no fine detail from the encoder.
    pub fn segment<T: Tape<f32, Cpu> + Merge<T> + std::fmt::Debug>(
        &self,
        x: Maps<Const<1>, T>,
        skips: bool,
    ) -> Maps<Const<1>, T> {
        let e1 = self.enc1.forward(x); //                                    8×32×32
        let e2 = self.enc2.forward(e1.with_empty_tape()); //                16×16×16
        let b = self.bottom.forward(e2.with_empty_tape()); //               32×8×8
        let u2 = self.up2.forward(b); //                                    16×16×16
        let d2 = self.dec2.forward(join(u2, e2, skips)); //  (16+16)×16×16 → 16×16×16
        let u1 = self.up1.forward(d2); //                                    8×32×32
        let d1 = self.dec1.forward(join(u1, e1, skips)); //     (8+8)×32×32 → 8×32×32
        self.head.forward(d1) //                                             1×32×32
    }
}

/// The skip connection: the decoder's features, then the encoder's (or zeros), stacked
/// along the channels.
fn join<const C: usize, T: Tape<f32, Cpu> + Merge<T> + std::fmt::Debug>(
    up: Maps<Const<C>, T>,
    skip: Maps<Const<C>, T>,
    skips: bool,
) -> Maps<usize, T> {
    let skip = if skips { skip } else { skip * 0.0 };
    nn::concat_channels(up, skip).expect("each level's maps have one size")
}

impl<E, D> TensorCollection<E, D> for UNet<E, D>
where
    E: Dtype + num_traits::Float + rand_distr::uniform::SampleUniform,
    D: Device<E>,
{
    type To<E2: Dtype, D2: Device<E2>> = UNet<E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                (
                    Self::module("enc1", |s| &s.enc1, |s| &mut s.enc1),
                    Self::module("enc2", |s| &s.enc2, |s| &mut s.enc2),
                    Self::module("bottom", |s| &s.bottom, |s| &mut s.bottom),
                    Self::module("up2", |s| &s.up2, |s| &mut s.up2),
                ),
                (
                    Self::module("dec2", |s| &s.dec2, |s| &mut s.dec2),
                    Self::module("up1", |s| &s.up1, |s| &mut s.up1),
                    Self::module("dec1", |s| &s.dec1, |s| &mut s.dec1),
                    Self::module("head", |s| &s.head, |s| &mut s.head),
                ),
            ),
            |((enc1, enc2, bottom, up2), (dec2, up1, dec1, head))| UNet {
                enc1,
                enc2,
                bottom,
                up2,
                dec2,
                up1,
                dec1,
                head,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_seeded_and_masks_binary() {
        let set = shapes(5, 1);
        assert_eq!(set.len(), 5);
        assert_eq!(set, shapes(5, 1));
        assert!(set.masks.iter().all(|&m| m == 0.0 || m == 1.0));
        let covered = set.masks.iter().sum::<f32>() / set.masks.len() as f32;
        assert!(covered > 0.03 && covered < 0.6, "{covered}");
    }

    #[test]
    fn iou_counts_overlap_over_union() {
        assert_eq!(iou(&[1.0, 1.0, 0.0, 0.0], &[1.0, 0.0, 1.0, 0.0]), 1.0 / 3.0);
        assert_eq!(iou(&[0.0; 4], &[0.0; 4]), 1.0);
    }

    #[test]
    fn the_unet_keeps_the_image_size_and_learns() {
        let set = shapes(8, 2);
        let trained = train_unet(&set, true, 30, 4, 0).unwrap();
        assert_eq!(trained.predict(&set).len(), set.masks.len());
        let (first, last) = (trained.losses[0], trained.losses[29]);
        assert!(last < first, "{first} → {last}");
        let without = train_unet(&set, false, 1, 4, 0).unwrap();
        assert_eq!(without.losses.len(), 1);
        assert!(train_unet(&set, true, 1, 0, 0).is_err());
    }
}
