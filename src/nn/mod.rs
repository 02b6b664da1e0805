//! The layers dfdx 0.13 keeps behind its `nightly` feature, rebuilt on stable Rust as
//! dfdx ops and modules: convolution, transposed convolution, pooling, flatten and
//! upsampling; layer normalisation for images; batch normalisation and the per-channel
//! bias as fused ops, where dfdx chains generic broadcasts and reductions; and ReLU and the
//! residual connection, whose passes dfdx runs one scalar at a time. Each op computes its own forward and
//! backward and records itself on dfdx's tape, so these layers mix with dfdx's own in one
//! model and train with dfdx's optimizers. CPU and `f32` only, which is what the course
//! runs on.
//!
//! Attention's fused ops live here too ([`attend`], [`masked_cross_entropy`],
//! [`swap_middle_axes`]), so that what they are built from stays private to `nn`. Every
//! fused or hand-vectorised op has a readable version beside it, `<op>_reference`, from
//! dfdx's ops or plain loops, tested equal to it in values and gradients: notebooks teach
//! with the reference and run the fast op.
//!
//! ```
//! use mustknow::nn::builders::{Conv2D, Flatten2D, MaxPool2D};
//! use mustknow::prelude::*;
//!
//! type Net = (
//!     (Conv2D<1, 8, 3, 1, 1>, Bias2D<8>, ReLU, MaxPool2D<2>), // 1×28×28 → 8×14×14
//!     Flatten2D<1568>,                                        // → 8·14·14 features
//!     Linear<1568, 10>,
//! );
//! let dev = Cpu::seed_from_u64(0);
//! let net = dev.build_module::<Net, f32>();
//! let logits = net.forward(dev.zeros_like(&(32, Const::<1>, 28, 28)));
//! assert_eq!(logits.shape().concrete(), [32, 10]);
//! ```

/// A layer's builder, as each of dfdx's layers has one: `pub mod builder` holding the unit
/// struct `$layer<…>` with the layer's const parameters (and their defaults), which
/// `dev.build_module` turns into the layer `$layer<…, E, D>`. Written once here because it
/// is the same dozen lines for every layer.
macro_rules! builder {
    ($layer:ident<$($param:ident $(= $default:literal)?),*>) => {
        pub mod builder {
            #[doc = concat!("Builds a [`super::", stringify!($layer), "`]; see there.")]
            #[derive(Debug, Clone, Copy)]
            pub struct $layer<$(const $param: usize $(= $default)?),*>;
        }

        impl<$(const $param: usize,)* E: Dtype, D: Device<E>> BuildOnDevice<D, E>
            for builder::$layer<$($param),*>
        where
            $layer<$($param,)* E, D>: BuildModule<D, E>,
        {
            type Built = $layer<$($param,)* E, D>;
            fn try_build_on_device(device: &D) -> Result<Self::Built, D::Err> {
                Self::Built::try_build(device)
            }
        }
    };
}

mod attend;
mod batch_norm2d;
mod bias2d;
mod channels;
mod concat;
mod conv;
mod conv2d;
mod conv_transpose2d;
mod cross_entropy;
mod direct;
mod embedding_dots;
mod film;
mod im2col;
mod layer_norm1d;
mod layer_norm2d;
mod linear;
mod matmul;
mod op;
mod pool2d;
mod relu;
mod reshape;
mod residual;
mod simd;
mod swap_axes;
mod upsample;

pub use attend::{attend, attend_reference};
pub use batch_norm2d::{batch_norm2d_reference, BatchNorm2D};
pub use bias2d::{bias2d_reference, Bias2D};
pub use concat::{concat_channels, concat_channels_reference};
pub use conv2d::{conv2d, conv2d_reference, Conv2D, ConvSpec, Kernels};
pub use conv_transpose2d::{conv_transpose2d, conv_transpose2d_reference, ConvTranspose2D};
pub use cross_entropy::{masked_cross_entropy, masked_cross_entropy_reference};
pub use embedding_dots::{embedding_dots, embedding_dots_reference};
pub use film::{film, film_reference, PerChannel};
pub use layer_norm1d::{layer_norm1d_reference, LayerNorm1D};
pub use layer_norm2d::{layer_norm2d_reference, LayerNorm2D};
pub use linear::{linear, linear_reference, Features};
pub use pool2d::{pool2d, pool2d_reference, AvgPool2D, MaxPool2D, Pool};
pub use relu::{leaky_relu, relu, relu_reference, ReLU};
pub use reshape::{Flatten2D, Unflatten2D};
pub use residual::{add, add_reference, Residual};
pub use swap_axes::{swap_middle_axes, swap_middle_axes_reference};
pub use upsample::{upsample2d_reference, Upsample2D};

/// A batch of `C`-channel images whose height and width are known at run time: what
/// convolution and pooling return.
pub type Images<B, C, T> = dfdx::tensor::Tensor<(B, C, usize, usize), f32, dfdx::tensor::Cpu, T>;

/// Device- and dtype-free descriptions of the layers, to use in model types as dfdx's
/// `builders` are: `dev.build_module::<(Conv2D<1, 8, 3>, ReLU), f32>()`.
pub mod builders {
    pub use super::batch_norm2d::builder::BatchNorm2D;
    pub use super::bias2d::builder::Bias2D;
    pub use super::conv2d::builder::Conv2D;
    pub use super::conv_transpose2d::builder::ConvTranspose2D;
    pub use super::layer_norm1d::builder::LayerNorm1D;
    pub use super::layer_norm2d::builder::LayerNorm2D;
    pub use super::pool2d::{AvgPool2D, MaxPool2D};
    pub use super::relu::{LeakyReLU, ReLU};
    pub use super::reshape::{Flatten2D, Unflatten2D};
    pub use super::residual::Residual;
    pub use super::upsample::Upsample2D;
}
