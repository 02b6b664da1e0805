//! §5: the image noise predictor, a small U-Net (Ronneberger et al., 2015, as DDPM uses
//! it) that is told the time: the [`time_embedding`] of `t` goes through a small MLP and
//! is added, projected to each block's channels, to that block's feature maps, so one
//! network denoises every level of noise.

use super::schedule::NoiseSchedule;
use super::{ddpm, time_embedding, DenoiserSettings, NoisePredictor, Rows};
use crate::data::block_means;
use crate::nn;
use crate::nn::builders::{AvgPool2D, Bias2D, Conv2D, ConvTranspose2D, ReLU};
use crate::nn::Images;
use crate::runtime::device;
use crate::train::History;
use crate::Error;
use dfdx::prelude::*;

/// The side of the images the network denoises: MNIST halved (notebook `09_diffusion` §5
/// says why).
pub const SIDE: usize = 14;
/// Channels at full resolution and at half resolution.
pub const WIDE: usize = 16;
pub const DEEP: usize = 32;
/// The sinusoidal embedding's width, and the time MLP's.
pub const EMBEDDING: usize = 32;
pub const TIME: usize = 64;

type Dense<const I: usize, const O: usize, E, D> = dfdx::nn::modules::Linear<I, O, E, D>;
type Conv3<const I: usize, const O: usize, E, D> = nn::Conv2D<I, O, 3, 1, 1, 1, 1, E, D>;
type Bias<const C: usize, E, D> = nn::Bias2D<C, E, D>;

/// A U-Net of two resolutions for `C`-channel `S×S` images (`S` even), predicting the
/// noise in each value at time `t`. Shapes in the comments of
/// [`TimeUNet::forward_conditioned`]. Notebook `09_diffusion` §5 trains it on 1-channel
/// 14×14 digits (the defaults); `10_guided_latent_diffusion` §4 on 4-channel 8×8 latents.
#[derive(Clone, Debug)]
pub struct TimeUNet<const C: usize = 1, const S: usize = SIDE, E: Dtype = f32, D: Storage<E> = Cpu>
{
    /// The time MLP: embedding → 64 → 64, with ReLUs (DDPM's has SiLUs).
    time: (
        Dense<EMBEDDING, TIME, E, D>,
        ReLU,
        Dense<TIME, TIME, E, D>,
        ReLU,
    ),
    down1: (Conv3<C, WIDE, E, D>, Bias<WIDE, E, D>),
    time1: Dense<TIME, WIDE, E, D>,
    down1b: (ReLU, Conv3<WIDE, WIDE, E, D>, Bias<WIDE, E, D>, ReLU),
    down2: (
        nn::AvgPool2D<2, 2, 0>,
        Conv3<WIDE, DEEP, E, D>,
        Bias<DEEP, E, D>,
    ),
    time2: Dense<TIME, DEEP, E, D>,
    down2b: (ReLU, Conv3<DEEP, DEEP, E, D>, Bias<DEEP, E, D>, ReLU),
    middle: (Conv3<DEEP, DEEP, E, D>, Bias<DEEP, E, D>, ReLU),
    up2: (Conv3<{ 2 * DEEP }, DEEP, E, D>, Bias<DEEP, E, D>),
    time3: Dense<TIME, DEEP, E, D>,
    grow: (
        ReLU,
        nn::ConvTranspose2D<DEEP, WIDE, 2, 2, 0, 1, E, D>,
        Bias<WIDE, E, D>,
        ReLU,
    ),
    up1: (Conv3<{ 2 * WIDE }, WIDE, E, D>, Bias<WIDE, E, D>),
    time4: Dense<TIME, WIDE, E, D>,
    up1b: (ReLU, Conv3<WIDE, WIDE, E, D>, Bias<WIDE, E, D>, ReLU),
    /// 1×1 convolution to the noise of each value.
    head: (nn::Conv2D<WIDE, C, 1, 1, 0, 1, 1, E, D>, Bias<C, E, D>),
    /// Per-channel gains of the four blocks, used only when a condition is given
    /// ([`TimeUNet::forward_conditioned`]).
    scale1: Dense<TIME, WIDE, E, D>,
    scale2: Dense<TIME, DEEP, E, D>,
    scale3: Dense<TIME, DEEP, E, D>,
    scale4: Dense<TIME, WIDE, E, D>,
}

/// MNIST's side, which the yardstick reads.
const MNIST_SIDE: usize = 2 * SIDE;

/// 28×28 images (pixels in `0..=1`, flattened) halved to [`SIDE`]×[`SIDE`], each pixel the
/// mean of a 2×2 block, and scaled to `[−1, 1]`, the range DDPM adds its noise in.
/// Notebook `09_diffusion` §5.
pub fn to_model(images: &[f32]) -> Vec<f32> {
    let halved = block_means(images, MNIST_SIDE, MNIST_SIDE, 2).expect("2 divides 28");
    halved.iter().map(|mean| 2.0 * mean - 1.0).collect()
}

/// Model-space images (about `[−1, 1]`, [`SIDE`]×[`SIDE`]) back to pixels in `0..=1`,
/// clamped, and doubled to 28×28 by bilinear interpolation, as the yardstick reads
/// them. Notebook `09_diffusion` §5.
pub fn to_yardstick(samples: &[f32]) -> Vec<f32> {
    let n = samples.len() / (SIDE * SIDE);
    let pixels: Vec<f32> = samples
        .iter()
        .map(|v| ((v + 1.0) / 2.0).clamp(0.0, 1.0))
        .collect();
    let small = Cpu::default().tensor_from_vec(pixels, (n, Const::<1>, SIDE, SIDE));
    nn::Upsample2D::<2, Bilinear>::default()
        .forward(small)
        .as_vec()
}

/// Built on the CPU with weights drawn from `seed`: the 1-channel 14×14 network of
/// notebook `09_diffusion` §5.
pub fn time_unet(seed: u64) -> TimeUNet {
    time_unet_of(seed)
}

/// A U-Net for `C`-channel `S×S` inputs, built on the CPU with weights drawn from `seed`.
pub fn time_unet_of<const C: usize, const S: usize>(seed: u64) -> TimeUNet<C, S> {
    let dev = device(seed);
    TimeUNet {
        time: dev.build_module::<(Linear<EMBEDDING, TIME>, ReLU, Linear<TIME, TIME>, ReLU), f32>(),
        down1: dev.build_module::<(Conv2D<C, WIDE, 3, 1, 1>, Bias2D<WIDE>), f32>(),
        time1: dev.build_module::<Linear<TIME, WIDE>, f32>(),
        down1b: dev.build_module::<(ReLU, Conv2D<WIDE, WIDE, 3, 1, 1>, Bias2D<WIDE>, ReLU), f32>(),
        down2: dev.build_module::<(
            AvgPool2D<2, 2, 0>,
            Conv2D<WIDE, DEEP, 3, 1, 1>,
            Bias2D<DEEP>,
        ), f32>(),
        time2: dev.build_module::<Linear<TIME, DEEP>, f32>(),
        down2b: dev.build_module::<(ReLU, Conv2D<DEEP, DEEP, 3, 1, 1>, Bias2D<DEEP>, ReLU), f32>(),
        middle: dev.build_module::<(Conv2D<DEEP, DEEP, 3, 1, 1>, Bias2D<DEEP>, ReLU), f32>(),
        up2: dev.build_module::<(Conv2D<{ 2 * DEEP }, DEEP, 3, 1, 1>, Bias2D<DEEP>), f32>(),
        time3: dev.build_module::<Linear<TIME, DEEP>, f32>(),
        grow: dev
            .build_module::<(ReLU, ConvTranspose2D<DEEP, WIDE, 2, 2>, Bias2D<WIDE>, ReLU), f32>(),
        up1: dev.build_module::<(Conv2D<{ 2 * WIDE }, WIDE, 3, 1, 1>, Bias2D<WIDE>), f32>(),
        time4: dev.build_module::<Linear<TIME, WIDE>, f32>(),
        up1b: dev.build_module::<(ReLU, Conv2D<WIDE, WIDE, 3, 1, 1>, Bias2D<WIDE>, ReLU), f32>(),
        head: dev.build_module::<(Conv2D<WIDE, C, 1>, Bias2D<C>), f32>(),
        // Drawn last, so that the unconditional network's weights are as they were.
        scale1: dev.build_module::<Linear<TIME, WIDE>, f32>(),
        scale2: dev.build_module::<Linear<TIME, DEEP>, f32>(),
        scale3: dev.build_module::<Linear<TIME, DEEP>, f32>(),
        scale4: dev.build_module::<Linear<TIME, WIDE>, f32>(),
    }
}

/// The [`time_embedding`] of each of `t`, one row of [`EMBEDDING`] values each, on an empty
/// tape of type `T`: what every time-aware network here starts from.
pub fn embedded_times<T: Tape<f32, Cpu>>(
    dev: &Cpu,
    t: &[f32],
) -> Tensor<(usize, Const<EMBEDDING>), f32, Cpu, T> {
    dev.tensor_from_vec(time_embedding(t, EMBEDDING), (t.len(), Const::<EMBEDDING>))
        .retaped::<T>()
}

/// Adds `shift` (one value per example and channel) to every pixel of `maps`: how the
/// time reaches each block. [`nn::film`] without a gain; [`nn::film_reference`] is the
/// broadcast sum written out.
pub fn add_time<const C: usize, T: Tape<f32, Cpu> + Merge<T>>(
    maps: Images<usize, Const<C>, T>,
    shift: Tensor<(usize, Const<C>), f32, Cpu, T>,
) -> Images<usize, Const<C>, T> {
    nn::film(maps, shift, None).expect("the time MLP gives one row per image")
}

impl<const C: usize, const S: usize> TimeUNet<C, S> {
    /// The multiply-adds of one forward pass for one example, counted layer by layer from
    /// the shapes in [`TimeUNet::forward_conditioned`]'s comments (the convolutions; the
    /// time MLP's few thousand are left out): what a step costs, independent of the
    /// machine. Notebook `10_guided_latent_diffusion` §3 compares pixel and latent space
    /// with it.
    pub fn multiply_adds() -> usize {
        let conv = |pixels: usize, from: usize, to: usize, k: usize| pixels * from * to * k * k;
        let (full, half) = (S * S, (S / 2) * (S / 2));
        conv(full, C, WIDE, 3) + conv(full, WIDE, WIDE, 3) // down1, down1b
            + conv(half, WIDE, DEEP, 3) + conv(half, DEEP, DEEP, 3) // down2, down2b
            + conv(half, DEEP, DEEP, 3) + conv(half, 2 * DEEP, DEEP, 3) // middle, up2
            + conv(half, DEEP, WIDE, 2) // grow: each input pixel spreads over a 2×2 block
            + conv(full, 2 * WIDE, WIDE, 3) + conv(full, WIDE, WIDE, 3) // up1, up1b
            + conv(full, WIDE, C, 1) // head
    }
}

/// The skip connection: the decoder's maps, then the encoder's of the same size.
fn concat<const A: usize, const B: usize, T: Tape<f32, Cpu> + Merge<T>>(
    decoder: Images<usize, Const<A>, T>,
    encoder: Images<usize, Const<B>, T>,
) -> Images<usize, usize, T> {
    nn::concat_channels(decoder, encoder).expect("each level's maps have one size")
}

/// `maps + shift(e)` per channel, then times `1 + scale(e)` when there is a `scale`: one
/// [`nn::film`].
fn modulate<const C: usize, T: Tape<f32, Cpu> + Merge<T> + std::fmt::Debug>(
    maps: Images<usize, Const<C>, T>,
    e: Tensor<(usize, Const<TIME>), f32, Cpu, T>,
    shift: &Dense<TIME, C, f32, Cpu>,
    scale: Option<&Dense<TIME, C, f32, Cpu>>,
) -> Images<usize, Const<C>, T> {
    let Some(scale) = scale else {
        return add_time(maps, shift.forward(e));
    };
    let shift = shift.forward(e.with_empty_tape());
    let gain = scale.forward(e) + 1.0;
    nn::film(maps, shift, Some(gain)).expect("the time MLP gives one row per image")
}

impl<const C: usize, const S: usize> TimeUNet<C, S> {
    /// The predicted noise of a batch of images whose times are embedded in `embedding`
    /// (one row of [`EMBEDDING`] values per image).
    pub fn forward_images<T: Tape<f32, Cpu> + Merge<T> + std::fmt::Debug>(
        &self,
        x: Images<usize, Const<C>, T>,
        embedding: Tensor<(usize, Const<EMBEDDING>), f32, Cpu, T>,
    ) -> Images<usize, Const<C>, T> {
        self.forward_conditioned(x, embedding, None)
    }

    /// [`TimeUNet::forward_images`] told a condition too: `condition` (one row of [`TIME`]
    /// values per image, from a label's or a prompt's encoder) is added to the time MLP's
    /// output, as ADM and GLIDE add their class and text embeddings, and the sum then both
    /// shifts and scales each block's channels, `h·(1 + scale) + shift` (ADM's adaptive
    /// group norm without the norm): an added bias alone let the label through too weakly
    /// for a network this small. Notebook `10_guided_latent_diffusion` §2–4.
    pub fn forward_conditioned<T: Tape<f32, Cpu> + Merge<T> + std::fmt::Debug>(
        &self,
        x: Images<usize, Const<C>, T>,
        embedding: Tensor<(usize, Const<EMBEDDING>), f32, Cpu, T>,
        condition: Option<Tensor<(usize, Const<TIME>), f32, Cpu, T>>,
    ) -> Images<usize, Const<C>, T> {
        let time = self.time.forward(embedding); //                              64
        let (time, scales) = match condition {
            Some(condition) => (time + condition, true),
            None => (time, false),
        };
        let h1 = modulate(
            self.down1.forward(x),
            time.with_empty_tape(),
            &self.time1,
            scales.then_some(&self.scale1),
        );
        let h1 = self.down1b.forward(h1); //                                     16×S×S
        let h2 = self.down2.forward(h1.with_empty_tape()); //                    32×S/2×S/2
        let h2 = modulate(
            h2,
            time.with_empty_tape(),
            &self.time2,
            scales.then_some(&self.scale2),
        );
        let h2 = self.down2b.forward(h2);
        let m = self.middle.forward(h2.with_empty_tape()); //                    32×S/2×S/2
        let u2 = self.up2.forward(concat(m, h2)); //                   (32+32) → 32×S/2×S/2
        let u2 = modulate(
            u2,
            time.with_empty_tape(),
            &self.time3,
            scales.then_some(&self.scale3),
        );
        let g = self.grow.forward(u2); //                                        16×S×S
        let u1 = self.up1.forward(concat(g, h1)); //                   (16+16) → 16×S×S
        let u1 = self.up1b.forward(modulate(
            u1,
            time,
            &self.time4,
            scales.then_some(&self.scale4),
        ));
        self.head.forward(u1) //                                                 C×S×S
    }
}

/// [`ddpm::train_ddpm`] for the U-Net, compiled once here so that a notebook cell calling
/// it compiles no training loop of its own (seconds a cell).
pub fn train_ddpm(
    model: &mut TimeUNet,
    data: &[f32],
    schedule: &NoiseSchedule,
    settings: &DenoiserSettings,
) -> Result<History, Error> {
    ddpm::train_ddpm(model, data, schedule, settings)
}

impl<const C: usize, const S: usize> NoisePredictor for TimeUNet<C, S> {
    fn dim(&self) -> usize {
        C * S * S
    }

    fn predict<T: Tape<f32, Cpu> + Merge<T> + std::fmt::Debug>(
        &self,
        x: Rows<T>,
        t: &[f32],
    ) -> Rows<T> {
        let n = t.len();
        let embedding = embedded_times(x.device(), t);
        let images = x.reshape_like(&(n, Const::<C>, S, S));
        let eps = self.forward_images(images, embedding);
        eps.reshape_like(&(n, C * S * S))
    }

    fn predict_values(&self, x: &[f32], t: &[f32]) -> Vec<f32> {
        super::predict_untaped(self, x, t)
    }
}

impl<const C: usize, const S: usize, E, D> TensorCollection<E, D> for TimeUNet<C, S, E, D>
where
    E: Dtype + num_traits::Float + rand_distr::uniform::SampleUniform,
    D: Device<E>,
{
    type To<E2: Dtype, D2: Device<E2>> = TimeUNet<C, S, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                (
                    Self::module("time", |s| &s.time, |s| &mut s.time),
                    Self::module("down1", |s| &s.down1, |s| &mut s.down1),
                    Self::module("time1", |s| &s.time1, |s| &mut s.time1),
                    Self::module("down1b", |s| &s.down1b, |s| &mut s.down1b),
                    Self::module("down2", |s| &s.down2, |s| &mut s.down2),
                ),
                (
                    Self::module("time2", |s| &s.time2, |s| &mut s.time2),
                    Self::module("down2b", |s| &s.down2b, |s| &mut s.down2b),
                    Self::module("middle", |s| &s.middle, |s| &mut s.middle),
                    Self::module("up2", |s| &s.up2, |s| &mut s.up2),
                    Self::module("time3", |s| &s.time3, |s| &mut s.time3),
                ),
                (
                    Self::module("grow", |s| &s.grow, |s| &mut s.grow),
                    Self::module("up1", |s| &s.up1, |s| &mut s.up1),
                    Self::module("time4", |s| &s.time4, |s| &mut s.time4),
                    Self::module("up1b", |s| &s.up1b, |s| &mut s.up1b),
                    Self::module("head", |s| &s.head, |s| &mut s.head),
                ),
                (
                    Self::module("scale1", |s| &s.scale1, |s| &mut s.scale1),
                    Self::module("scale2", |s| &s.scale2, |s| &mut s.scale2),
                    Self::module("scale3", |s| &s.scale3, |s| &mut s.scale3),
                    Self::module("scale4", |s| &s.scale4, |s| &mut s.scale4),
                ),
            ),
            |(
                (time, down1, time1, down1b, down2),
                (time2, down2b, middle, up2, time3),
                (grow, up1, time4, up1b, head),
                (scale1, scale2, scale3, scale4),
            )| TimeUNet {
                time,
                down1,
                time1,
                down1b,
                down2,
                time2,
                down2b,
                middle,
                up2,
                time3,
                grow,
                up1,
                time4,
                up1b,
                head,
                scale1,
                scale2,
                scale3,
                scale4,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::denoising::ddpm::normal;
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn the_unet_predicts_a_noise_per_pixel_and_every_block_gets_gradients() {
        let net = time_unet(0);
        let mut rng = StdRng::seed_from_u64(0);
        let x = normal(2 * SIDE * SIDE, &mut rng);
        let eps = net.predict_values(&x, &[10.0, 900.0]);
        assert_eq!(eps.len(), 2 * SIDE * SIDE);
        let grads = net.alloc_grads();
        let xs = Cpu::default()
            .tensor_from_vec(x, (2, SIDE * SIDE))
            .traced(grads);
        let grads = net.predict(xs, &[10.0, 900.0]).square().mean().backward();
        let moved = |g: Result<Vec<f32>, crate::Error>| g.unwrap().iter().any(|v| *v != 0.0);
        let blocks = [
            ("time", moved(crate::train::gradients(&net.time, &grads))),
            ("time1", moved(crate::train::gradients(&net.time1, &grads))),
            ("time4", moved(crate::train::gradients(&net.time4, &grads))),
            ("down1", moved(crate::train::gradients(&net.down1, &grads))),
            ("down2", moved(crate::train::gradients(&net.down2, &grads))),
            (
                "middle",
                moved(crate::train::gradients(&net.middle, &grads)),
            ),
            ("up2", moved(crate::train::gradients(&net.up2, &grads))),
            ("grow", moved(crate::train::gradients(&net.grow, &grads))),
            ("up1b", moved(crate::train::gradients(&net.up1b, &grads))),
            ("head", moved(crate::train::gradients(&net.head, &grads))),
        ];
        assert!(blocks.iter().all(|(_, m)| *m), "{blocks:?}");
    }

    #[test]
    fn the_multiply_adds_grow_with_the_area_and_the_channels() {
        let pixel = TimeUNet::<1, 14>::multiply_adds();
        let by_hand = 196 * 9 * (16 + 256 + 512 + 256)
            + 49 * 9 * (512 + 1024 + 1024 + 2048)
            + 49 * 4 * 512
            + 196 * 16;
        assert_eq!(pixel, by_hand);
        let doubled = TimeUNet::<1, 28>::multiply_adds();
        assert_eq!(doubled, 4 * pixel);
        assert!(TimeUNet::<4, 8>::multiply_adds() * 2 < pixel);
    }

    #[test]
    fn images_halve_to_the_models_range_and_double_back_for_the_yardstick() {
        let mut image = vec![0.0f32; MNIST_SIDE * MNIST_SIDE];
        image[..2].copy_from_slice(&[1.0, 1.0]);
        image[MNIST_SIDE..MNIST_SIDE + 2].copy_from_slice(&[1.0, 0.0]);
        let small = to_model(&image);
        assert_eq!(small.len(), SIDE * SIDE);
        assert_eq!(
            (small[0], small[1]),
            (0.5, -1.0),
            "a 2×2 block three-quarters on"
        );
        let back = to_yardstick(&small);
        assert_eq!(back.len(), MNIST_SIDE * MNIST_SIDE);
        assert!((back[0] - 0.75).abs() < 1e-6 && back.iter().all(|p| (0.0..=1.0).contains(p)));
    }
}
