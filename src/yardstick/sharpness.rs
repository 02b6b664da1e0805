//! How sharp images are: the mean gradient magnitude, a classic focus measure (Tenengrad
//! and its relatives; Pech-Pacheco et al., 2000, compare them). A blurred digit, as a VAE
//! decodes it, changes slowly from pixel to pixel and scores low; crisp strokes score
//! high, and so does noise, which is why it is read beside the classifier's measures.

use super::check_pixels;
use crate::Error;

/// The mean over images and interior pixels of the gradient magnitude
/// `√(g_r² + g_c²)`, with central differences `g_r = (p(r+1, c) − p(r−1, c)) / 2` and
/// `g_c = (p(r, c+1) − p(r, c−1)) / 2`, of `images` (row-major `side × side` images one
/// after another, pixels in `0..=1`). Border pixels have no neighbour on one side and are
/// left out. Notebook `08_vae_gan` §6 compares the VAE's blurred samples with the GAN's
/// and with real digits.
pub fn sharpness(images: &[f32], side: usize) -> Result<f64, Error> {
    if side < 3 {
        return Err(Error::InvalidArgument {
            what: "the image side of a sharpness measure",
            expected: "at least 3 pixels (a central difference needs an interior pixel)",
            got: side.to_string(),
        });
    }
    let n = check_pixels(images, side * side)?;
    let mut sum = 0.0;
    for image in images.chunks(side * side) {
        let p = |r: usize, c: usize| f64::from(image[r * side + c]);
        for r in 1..side - 1 {
            for c in 1..side - 1 {
                let down = (p(r + 1, c) - p(r - 1, c)) / 2.0;
                let across = (p(r, c + 1) - p(r, c - 1)) / 2.0;
                sum += down.hypot(across);
            }
        }
    }
    Ok(sum / (n * (side - 2) * (side - 2)) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_images_have_no_sharpness_and_a_ramp_its_slope() {
        assert_eq!(sharpness(&[0.5; 2 * 16], 4).unwrap(), 0.0);
        // A ramp rising 1/8 per column: the gradient is 1/8 everywhere.
        let ramp: Vec<f32> = (0..25).map(|i| (i % 5) as f32 / 8.0).collect();
        assert!((sharpness(&ramp, 5).unwrap() - 0.125).abs() < 1e-12);
    }

    #[test]
    fn a_stroke_is_sharper_than_the_same_stroke_blurred() {
        // A one-pixel vertical stroke in column 2 of a 6×6 image, then spread over three
        // columns with the same ink.
        let stroke: Vec<f32> = (0..36)
            .map(|i| [0.0, 0.0, 1.0, 0.0, 0.0, 0.0][i % 6])
            .collect();
        let blurred: Vec<f32> = (0..36)
            .map(|i| [0.0, 0.25, 0.5, 0.25, 0.0, 0.0][i % 6])
            .collect();
        // Interior columns 1–4: the stroke's central differences are ½, 0, ½, 0.
        assert!((sharpness(&stroke, 6).unwrap() - 0.25).abs() < 1e-12);
        // The blur's are ¼, 0, ¼, ⅛.
        assert!((sharpness(&blurred, 6).unwrap() - 0.15625).abs() < 1e-12);
    }

    #[test]
    fn bad_images_are_errors() {
        assert!(
            sharpness(&[0.0; 10], 3).is_err(),
            "10 is not a multiple of 9"
        );
        assert!(sharpness(&[0.0; 4], 2).is_err());
        let message = sharpness(&[1.5; 9], 3).unwrap_err().to_string();
        assert!(message.contains("1.5"), "{message}");
    }
}
