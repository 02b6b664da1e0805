//! Notebook `01_backprop`: backpropagation from scratch.
//!
//! [`Value`] is a scalar autograd engine in the spirit of micrograd (Karpathy, 2020),
//! [`Mlp`] a network built from it, [`train`] fits it to two moons,
//! [`against_dfdx`] checks every gradient against dfdx's tape, and [`init`] measures how
//! the signal's size changes through a deep stack under each initialisation.

pub mod against_dfdx;
pub mod init;
mod mlp;
mod train;
mod value;

pub use mlp::{Layer, Mlp, Neuron};
pub use train::{hinge_loss, score, sgd_step, train, Step};
pub use value::Value;
