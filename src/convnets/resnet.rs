//! §4: residual connections (He, Zhang, Ren & Sun, 2016). A plain stack of convolutions
//! gets *harder to train* as it gets deeper, even with batch normalisation: the
//! degradation problem. Adding each block's input to its output (`x + F(x)`) removes it.

use crate::data::{ImageSet, MiniBatches};
use crate::nn::builders::{BatchNorm2D, Conv2D, Flatten2D, ReLU, Residual, Unflatten2D};
use crate::optim::Method;
use crate::runtime::device;
use crate::train::{fit, Classification, Classifier, History, Loss, TrainConfig};
use crate::Error;
use dfdx::prelude::*;

/// One layer of a plain stack: 3×3 convolution (8 → 8 channels, size kept), batch
/// normalisation, ReLU, as in the paper's plain nets.
pub type PlainLayer = (Conv2D<8, 8, 3, 1, 1>, BatchNorm2D<8>, ReLU);

/// The paper's basic residual block: two 3×3 convolutions with batch normalisation,
/// the block's input added before the last ReLU: `relu(x + bn(conv(relu(bn(conv(x))))))`.
pub type ResidualBlock = (
    Residual<(
        Conv2D<8, 8, 3, 1, 1>,
        BatchNorm2D<8>,
        ReLU,
        Conv2D<8, 8, 3, 1, 1>,
        BatchNorm2D<8>,
    )>,
    ReLU,
);

/// A deep, narrow network for 14×14 images: a stem convolution to 8 channels, `Body` (a
/// stack of layers that keep the shape 8×14×14), and a linear classifier.
pub type DeepNet<Body> = (
    Unflatten2D<1, 14, 14>,                        // 196 → 1×14×14
    (Conv2D<1, 8, 3, 1, 1>, BatchNorm2D<8>, ReLU), // → 8×14×14
    Body,                                          // → 8×14×14
    (Flatten2D<1568>, Linear<1568, 10>),           // → 10 logits
);

/// A plain net with `N` convolutions in its body.
pub type PlainNet<const N: usize> = DeepNet<Repeated<PlainLayer, N>>;

/// A residual net with `B` blocks, `2·B` convolutions, in its body: the same layers as
/// [`PlainNet<{2·B}>`](PlainNet), plus the shortcuts.
pub type ResNet<const B: usize> = DeepNet<Repeated<ResidualBlock, B>>;

/// Convolutions in the body of the shallow and the deep nets (the paper: 20 against 56).
pub const SHALLOW: usize = 4;
pub const DEEP: usize = 16;

/// With or without shortcuts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stack {
    Plain,
    Residual,
}

impl Stack {
    /// The net's name with its depth in weighted layers, as He et al. count them: the
    /// stem, the `depth` convolutions of the body and the linear classifier.
    pub fn name(self, depth: usize) -> String {
        let kind = match self {
            Stack::Plain => "plain",
            Stack::Residual => "residual",
        };
        format!("{kind}, {} layers", depth + 2)
    }
}

/// Trains a fresh net (`deep`: [`DEEP`] body convolutions, else [`SHALLOW`]) on 14×14
/// images for `epochs` epochs with SGD, momentum 0.9 and learning rate 0.05, batches of
/// 64, and returns what every step measured.
pub fn train_stack(
    train: &ImageSet,
    stack: Stack,
    deep: bool,
    epochs: usize,
    seed: u64,
) -> Result<History, Error> {
    let dev = device(seed);
    match (stack, deep) {
        (Stack::Plain, false) => {
            let model = dev.build_module::<PlainNet<SHALLOW>, f32>();
            train_net(model, train, epochs, seed)
        }
        (Stack::Plain, true) => {
            let model = dev.build_module::<PlainNet<DEEP>, f32>();
            train_net(model, train, epochs, seed)
        }
        (Stack::Residual, false) => {
            let mut model = dev.build_module::<ResNet<{ SHALLOW / 2 }>, f32>();
            for block in model.2.modules.iter_mut() {
                zero_last_scale(&dev, &mut block.0 .0 .4);
            }
            train_net(model, train, epochs, seed)
        }
        (Stack::Residual, true) => {
            let mut model = dev.build_module::<ResNet<{ DEEP / 2 }>, f32>();
            for block in model.2.modules.iter_mut() {
                zero_last_scale(&dev, &mut block.0 .0 .4);
            }
            train_net(model, train, epochs, seed)
        }
    }
}

/// Starts a residual block as the identity: the scale of its last batch norm at zero
/// (Goyal et al., 2017), so a deep residual net begins as its stem and head and grows
/// into its depth. Without it, at our few hundred steps, the deep residual net is still
/// catching up with the shallow one.
fn zero_last_scale(dev: &Cpu, bn: &mut crate::nn::BatchNorm2D<8, f32, Cpu>) {
    bn.scale = dev.zeros();
}

fn train_net<M: Classifier<196, 10> + 'static>(
    mut model: M,
    train: &ImageSet,
    epochs: usize,
    seed: u64,
) -> Result<History, Error> {
    let mut sgd = Method::Momentum.at(0.05).build(&model);
    let batches = MiniBatches::<196>::from_images(&Cpu::default(), train, 64, seed)?;
    // The comparison is read from the training steps: nothing to evaluate.
    let objective = Classification::<196, 10> {
        test: None,
        loss: Loss::CrossEntropy,
    };
    let config = TrainConfig::new(epochs).quiet();
    fit(&mut model, sgd.as_mut(), &batches, objective, &config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_nets_build_and_train_a_step() {
        let set = ImageSet {
            pixels: vec![0.5; 2 * 196],
            labels: vec![0, 1],
            height: 14,
            width: 14,
            class_names: (0..10).map(|d| d.to_string()).collect(),
        };
        for stack in [Stack::Plain, Stack::Residual] {
            for deep in [false, true] {
                let history = train_stack(&set, stack, deep, 1, 0).unwrap();
                assert_eq!(history.steps.len(), 1);
            }
        }
        let dev = Cpu::default();
        let plain = dev.build_module::<PlainNet<DEEP>, f32>();
        let residual = dev.build_module::<ResNet<{ DEEP / 2 }>, f32>();
        assert_eq!(
            plain.num_trainable_params(),
            residual.num_trainable_params(),
            "the shortcuts add no parameters"
        );
    }

    /// With every block's residual branch silenced (its last batch norm's scale and shift
    /// at zero), a block is `relu(x + 0)`, and its input already passed a ReLU: the body is
    /// the identity map. Without the shortcuts it would map everything to zero.
    #[test]
    fn silenced_branches_leave_the_shortcuts_as_the_identity() {
        let dev = Cpu::seed_from_u64(0);
        let mut net = dev.build_module::<ResNet<{ DEEP / 2 }>, f32>();
        for block in net.2.modules.iter_mut() {
            let last_norm = &mut block.0 .0 .4;
            last_norm.scale = dev.zeros();
            last_norm.bias = dev.zeros();
        }
        let x: Tensor<(usize, Const<196>), f32, Cpu> = dev.sample_normal_like(&(3, Const));
        let features = net.1.forward(net.0.forward(x));
        let through_body = net.2.forward(features.clone());
        assert!(features.as_vec().iter().any(|&f| f > 0.0));
        assert_eq!(through_body.as_vec(), features.as_vec());
    }
}
