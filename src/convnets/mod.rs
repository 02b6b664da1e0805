//! Notebook `04_convnets`: convolutional networks, built from the layers in [`crate::nn`].
//!
//! One module per section: [`correlation`] (§1, what a convolution computes:
//! cross-correlation, a kernel learned from data, shifts and pooling), [`basics`] (§2,
//! output sizes and receptive fields), [`alexnet`] (§3, ReLU, dropout and augmentation),
//! [`resnet`] (§4, plain against residual stacks), [`norm`] (§5, batch against layer
//! normalisation, precise BN), [`unet`] (§6, segmentation). LeNet, which the course's
//! benchmarks and tests train, lives here too.

pub mod alexnet;
pub mod basics;
pub mod correlation;
mod lenet;
pub mod norm;
pub mod resnet;
pub mod unet;

use crate::train::StepRecord;

pub use alexnet::MiniAlexNet;
pub use lenet::{train_lenet, LeNet};
pub use norm::NormNet;
pub use resnet::{PlainNet, ResNet};
pub use unet::UNet;

/// `(step, mean of measure over the last window steps)` for every step from `window` on:
/// a training curve with the batch-to-batch noise averaged out.
pub fn smoothed(
    steps: &[StepRecord],
    window: usize,
    measure: fn(&StepRecord) -> f32,
) -> Vec<[f64; 2]> {
    let window = window.max(1);
    steps
        .windows(window)
        .map(|w| {
            let mean = w.iter().map(measure).sum::<f32>() / window as f32;
            [w[window - 1].step as f64, f64::from(mean)]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_averages_a_sliding_window() {
        let steps: Vec<StepRecord> = [1.0, 3.0, 5.0]
            .iter()
            .enumerate()
            .map(|(i, &loss)| StepRecord {
                epoch: 1,
                step: i + 1,
                lr: 0.1,
                loss,
                accuracy: 0.0,
            })
            .collect();
        assert_eq!(smoothed(&steps, 2, |s| s.loss), [[2.0, 2.0], [3.0, 4.0]]);
    }
}
