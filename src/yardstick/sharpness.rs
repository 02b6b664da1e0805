//! How sharp images are: the mean squared Laplacian, the classic focus measure
//! (Pech-Pacheco et al., 2000, used its variance). A blurred digit, as a VAE decodes it,
//! changes slowly from pixel to pixel and scores low; crisp strokes score high, and so
//! does noise, which is why it is read beside the classifier's measures.

use super::check_pixels;
use crate::Error;

/// The mean over images and interior pixels of the squared 4-neighbour Laplacian,
/// `(4 p(r, c) − p(r−1, c) − p(r+1, c) − p(r, c−1) − p(r, c+1))²`, of `images`
/// (row-major `side × side` images one after another, pixels in `0..=1`). Border pixels
/// have no full neighbourhood and are left out. Notebook `08_vae_gan` §6 compares the
/// VAE's blurred samples with the GAN's and with real digits.
pub fn sharpness(images: &[f32], side: usize) -> Result<f64, Error> {
    if side < 3 {
        return Err(Error::InvalidArgument {
            what: "the image side of a sharpness measure",
            expected: "at least 3 pixels (a Laplacian needs an interior pixel)",
            got: side.to_string(),
        });
    }
    let n = check_pixels(images, side * side)?;
    let mut sum = 0.0;
    for image in images.chunks(side * side) {
        let p = |r: usize, c: usize| f64::from(image[r * side + c]);
        for r in 1..side - 1 {
            for c in 1..side - 1 {
                let laplacian =
                    4.0 * p(r, c) - p(r - 1, c) - p(r + 1, c) - p(r, c - 1) - p(r, c + 1);
                sum += laplacian * laplacian;
            }
        }
    }
    Ok(sum / (n * (side - 2) * (side - 2)) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_and_linear_images_have_no_sharpness() {
        assert_eq!(sharpness(&[0.5; 2 * 16], 4).unwrap(), 0.0);
        // A ramp: the Laplacian of a linear function is 0.
        let ramp: Vec<f32> = (0..25).map(|i| (i % 5) as f32 / 8.0).collect();
        assert!(sharpness(&ramp, 5).unwrap().abs() < 1e-12);
    }

    #[test]
    fn a_single_bright_pixel_is_sharper_than_the_same_pixel_blurred() {
        let mut dot = vec![0.0f32; 25];
        dot[12] = 1.0;
        // One interior pixel at 1: Laplacian 4 there and −1 at its four neighbours.
        assert_eq!(sharpness(&dot, 5).unwrap(), (16.0 + 4.0) / 9.0);
        let blurred: Vec<f32> = (0..25)
            .map(|i| {
                let (r, c) = (i / 5, i % 5);
                if (1..4).contains(&r) && (1..4).contains(&c) {
                    1.0 / 9.0
                } else {
                    0.0
                }
            })
            .collect();
        assert!(sharpness(&blurred, 5).unwrap() < sharpness(&dot, 5).unwrap() / 10.0);
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
