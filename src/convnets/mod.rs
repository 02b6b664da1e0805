//! Notebook `04_convnets`: convolutional networks, built from the layers in [`crate::nn`].

mod lenet;

pub use lenet::{train_lenet, LeNet};
