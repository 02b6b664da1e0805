//! §3: the augmentations that make two views of one image, for 28×28 grey-scale images.
//!
//! SimCLR (Chen et al., 2020) found the composition of random crops (resized back to full
//! size) and colour distortion crucial. Grey-scale images have no colour, so brightness and
//! contrast jitter stand in for it; a small rotation, a horizontal flip, pixel noise and
//! random erasing (Zhong et al., 2020) complete the list. One geometric map per view (crop,
//! flip and rotation composed) is sampled with bilinear interpolation.

use crate::Error;
use rand::{rngs::StdRng, Rng, RngCore, SeedableRng};
use rayon::prelude::*;

/// Which augmentations make a view, and how strong each is. Notebook
/// `07_self_supervised` §3 lists them in a cell and ablates them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Augment {
    /// The crop's area as a fraction of the image, drawn uniformly from this range; `(1, 1)`
    /// keeps the whole image. The crop's aspect ratio is drawn log-uniformly in [3/4, 4/3],
    /// narrowed to the ratios at which a crop of that area fits.
    pub crop_area: (f32, f32),
    /// Mirror left–right with probability ½.
    pub flip: bool,
    /// Rotate by an angle drawn uniformly in ±this many degrees.
    pub rotation_degrees: f32,
    /// Scale the pixels' contrast around their mean by a factor in 1 ± this, and shift
    /// their brightness by up to ± this (the grey-scale stand-in for colour jitter).
    pub jitter: f32,
    /// The standard deviation of the Gaussian noise added to every pixel.
    pub noise: f32,
    /// The probability of blanking one random rectangle (2–20% of the image) to zero.
    pub erase: f32,
}

impl Augment {
    /// SimCLR's recipe, for grey-scale images: crops of 60–100% of the image resized to full
    /// size (the paper's 8–100% leaves too little of a 28×28 garment to tell a shirt from a
    /// coat), flips, ±10° rotations, contrast and brightness jitter of 0.4 and a little noise.
    /// Erasing is off: an exercise turns it on.
    pub fn simclr() -> Augment {
        Augment {
            crop_area: (0.6, 1.0),
            flip: true,
            rotation_degrees: 10.0,
            jitter: 0.4,
            noise: 0.05,
            erase: 0.0,
        }
    }

    /// Pixel noise alone (σ = 0.2): the ablation that keeps every view's geometry, so the
    /// task is only to see through noise.
    pub fn noise_only() -> Augment {
        Augment {
            crop_area: (1.0, 1.0),
            flip: false,
            rotation_degrees: 0.0,
            jitter: 0.0,
            noise: 0.2,
            erase: 0.0,
        }
    }

    /// One random view of the `side × side` image `image` (row-major, values in 0..=1).
    pub fn view(&self, image: &[f32], side: usize, rng: &mut StdRng) -> Vec<f32> {
        let mut view = self.geometry(image, side, rng);
        self.photometry(&mut view, rng);
        if rng.gen_range(0.0..1.0) < self.erase {
            erase_rectangle(&mut view, side, rng);
        }
        view
    }

    /// Two views of every image of `images` (`count` images of `side × side`): all the
    /// first views, then all the second, so rows `i` and `i + count` are one image's pair.
    /// Each view draws from its own generator, seeded from `rng`, so the views are made in
    /// parallel and still depend on `rng` alone.
    pub fn pairs(&self, images: &[&[f32]], side: usize, rng: &mut StdRng) -> Vec<f32> {
        let seeds: Vec<u64> = (0..2 * images.len()).map(|_| rng.next_u64()).collect();
        let views: Vec<Vec<f32>> = seeds
            .par_iter()
            .enumerate()
            .map(|(i, &seed)| {
                self.view(
                    images[i % images.len()],
                    side,
                    &mut StdRng::seed_from_u64(seed),
                )
            })
            .collect();
        views.concat()
    }

    /// Checks the settings: a crop range inside (0, 1], probabilities in [0, 1],
    /// non-negative strengths.
    pub fn check(&self) -> Result<(), Error> {
        let (lo, hi) = self.crop_area;
        let fine = 0.0 < lo
            && lo <= hi
            && hi <= 1.0
            && (0.0..=1.0).contains(&self.erase)
            && [self.rotation_degrees, self.jitter, self.noise]
                .iter()
                .all(|v| v.is_finite() && *v >= 0.0);
        match fine {
            true => Ok(()),
            false => Err(Error::InvalidArgument {
                what: "the augmentation",
                expected: "a crop area range within (0, 1], an erase probability in [0, 1], \
                           and non-negative rotation, jitter and noise",
                got: format!("{self:?}"),
            }),
        }
    }

    /// Crop, flip and rotation as one map from the view's pixels back to the image's,
    /// sampled bilinearly (zero outside the image).
    fn geometry(&self, image: &[f32], side: usize, rng: &mut StdRng) -> Vec<f32> {
        let (lo, hi) = self.crop_area;
        let area = if lo < hi { rng.gen_range(lo..=hi) } else { hi };
        // Aspect ratios for which a crop of this area fits inside the image.
        let (narrow, wide) = (area.max(0.75), (1.0 / area).min(4.0 / 3.0));
        let log_ratio = if narrow < wide {
            rng.gen_range(narrow.ln()..=wide.ln())
        } else {
            0.0
        };
        let n = side as f32;
        let crop_w = (n * (area * log_ratio.exp()).sqrt()).min(n);
        let crop_h = (n * (area / log_ratio.exp()).sqrt()).min(n);
        let centre_x = rng.gen_range(crop_w / 2.0..=n - crop_w / 2.0);
        let centre_y = rng.gen_range(crop_h / 2.0..=n - crop_h / 2.0);
        let mirror = if self.flip && rng.gen_range(0.0..1.0) < 0.5 {
            -1.0
        } else {
            1.0
        };
        let max_angle = self.rotation_degrees.to_radians();
        let angle = if max_angle > 0.0 {
            rng.gen_range(-max_angle..=max_angle)
        } else {
            0.0
        };
        let (sin, cos) = angle.sin_cos();
        let mut view = vec![0.0; side * side];
        for r in 0..side {
            for c in 0..side {
                // The view's pixel as an offset from its centre, scaled to the crop's size.
                let u = (c as f32 + 0.5 - n / 2.0) * crop_w / n * mirror;
                let v = (r as f32 + 0.5 - n / 2.0) * crop_h / n;
                let x = centre_x + cos * u - sin * v - 0.5;
                let y = centre_y + sin * u + cos * v - 0.5;
                view[r * side + c] = bilinear(image, side, x, y);
            }
        }
        view
    }

    /// Contrast and brightness jitter around the view's mean, then Gaussian noise.
    fn photometry(&self, view: &mut [f32], rng: &mut StdRng) {
        if self.jitter > 0.0 {
            let contrast = 1.0 + rng.gen_range(-self.jitter..=self.jitter);
            let brightness = rng.gen_range(-self.jitter..=self.jitter) / 2.0;
            let mean = view.iter().sum::<f32>() / view.len() as f32;
            view.iter_mut()
                .for_each(|p| *p = (mean + (*p - mean) * contrast + brightness).clamp(0.0, 1.0));
        }
        if self.noise > 0.0 {
            let normal = rand_distr::Normal::new(0.0, self.noise).expect("noise σ checked ≥ 0");
            view.iter_mut().for_each(|p| *p += rng.sample(normal));
        }
    }
}

/// The image's value at the real position `(x, y)` (pixel centres at whole numbers),
/// interpolated from its four neighbours; zero outside.
fn bilinear(image: &[f32], side: usize, x: f32, y: f32) -> f32 {
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let at = |r: f32, c: f32| -> f32 {
        let inside = r >= 0.0 && c >= 0.0 && (r as usize) < side && (c as usize) < side;
        if inside {
            image[r as usize * side + c as usize]
        } else {
            0.0
        }
    };
    let top = at(y0, x0) * (1.0 - fx) + at(y0, x0 + 1.0) * fx;
    let bottom = at(y0 + 1.0, x0) * (1.0 - fx) + at(y0 + 1.0, x0 + 1.0) * fx;
    top * (1.0 - fy) + bottom * fy
}

/// Blanks a rectangle of 2–20% of the image, aspect ratio in [0.3, 3.3].
fn erase_rectangle(view: &mut [f32], side: usize, rng: &mut StdRng) {
    let n = side as f32;
    let area = rng.gen_range(0.02..=0.2) * n * n;
    let ratio = rng.gen_range((0.3f32).ln()..=(3.3f32).ln()).exp();
    let h = ((area * ratio).sqrt().round() as usize).clamp(1, side);
    let w = ((area / ratio).sqrt().round() as usize).clamp(1, side);
    let (top, left) = (rng.gen_range(0..=side - h), rng.gen_range(0..=side - w));
    for r in top..top + h {
        view[r * side + left..r * side + left + w].fill(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Augment {
        Augment {
            noise: 0.0,
            ..Augment::noise_only()
        }
    }

    #[test]
    fn no_augmentation_returns_the_image() {
        let image: Vec<f32> = (0..28 * 28).map(|i| (i % 17) as f32 / 17.0).collect();
        let view = identity().view(&image, 28, &mut StdRng::seed_from_u64(0));
        let worst = image
            .iter()
            .zip(&view)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(worst < 1e-5, "the identity view moved a pixel by {worst}");
    }

    #[test]
    fn a_flip_mirrors_the_image() {
        let image: Vec<f32> = (0..28 * 28).map(|i| (i % 28) as f32 / 28.0).collect();
        let flip = Augment {
            flip: true,
            ..identity()
        };
        let mut rng = StdRng::seed_from_u64(1);
        let views: Vec<Vec<f32>> = (0..8).map(|_| flip.view(&image, 28, &mut rng)).collect();
        let mirrored = |v: &[f32]| (0..28).all(|c| (v[c] - image[27 - c]).abs() < 1e-5);
        assert!(
            views.iter().any(|v| mirrored(v)),
            "no view of 8 was mirrored"
        );
        assert!(
            views.iter().any(|v| v == &image),
            "every view of 8 was mirrored"
        );
    }

    #[test]
    fn views_differ_and_pairs_keep_their_order() {
        let image = vec![0.5; 28 * 28];
        let other = vec![0.0; 28 * 28];
        let both = Augment::simclr().pairs(&[&image, &other], 28, &mut StdRng::seed_from_u64(2));
        assert_eq!(both.len(), 4 * 28 * 28);
        let mean = |k: usize| both[k * 784..(k + 1) * 784].iter().sum::<f32>() / 784.0;
        // Rows 0 and 2 come from the grey image, rows 1 and 3 from the black one.
        assert!(mean(0).min(mean(2)) > mean(1).max(mean(3)));
        assert!(Augment {
            crop_area: (0.0, 1.0),
            ..Augment::simclr()
        }
        .check()
        .is_err());
    }
}
