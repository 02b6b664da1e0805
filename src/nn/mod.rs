//! The layers dfdx 0.13 keeps behind its `nightly` feature, rebuilt on stable Rust as
//! dfdx ops and modules: convolution, transposed convolution, pooling, flatten and
//! upsampling. Each op computes its own forward and backward and records itself on dfdx's
//! tape, so these layers mix with dfdx's own in one model and train with dfdx's
//! optimizers. CPU and `f32` only, which is what the course runs on.

#[cfg(test)]
mod check;
mod conv2d;
mod conv_transpose2d;
mod im2col;
mod matmul;
mod pool2d;
mod reshape;
mod tape;
mod upsample;

pub use conv2d::{conv2d, Conv2D, ConvSpec};
pub use conv_transpose2d::{conv_transpose2d, ConvTranspose2D};
pub use pool2d::{pool2d, AvgPool2D, MaxPool2D, Pool};
pub use reshape::{Flatten2D, Unflatten2D};
pub use upsample::Upsample2D;

/// Device- and dtype-free descriptions of the layers, to use in model types as dfdx's
/// `builders` are: `dev.build_module::<(Conv2D<1, 8, 3>, ReLU), f32>()`.
pub mod builders {
    pub use super::conv2d::builder::Conv2D;
    pub use super::conv_transpose2d::builder::ConvTranspose2D;
    pub use super::pool2d::{AvgPool2D, MaxPool2D};
    pub use super::reshape::{Flatten2D, Unflatten2D};
    pub use super::upsample::Upsample2D;
}
