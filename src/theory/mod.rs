//! Notebook `11_theory`: the theory behind the course, measured. One file per section:
//! [`pca`] (§1: the SVD of a data matrix, PCA, Eckart–Young and the linear autoencoder),
//! [`kl`] (§2: fitting a Gaussian to a two-mode mixture by forward and reverse KL),
//! [`bottleneck`] (§3: the information plane of a small network on the 12-bit task, and its
//! critique), [`expressivity`] (§4: linear pieces of ReLU networks, the sawtooth, and what
//! random networks actually do).

pub mod bottleneck;
pub mod expressivity;
pub mod kl;
pub mod pca;

/// The non-linearity between a network's layers (notebook `11_theory`, §3 and §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Relu,
    Tanh,
}

impl Activation {
    pub fn apply(self, z: f64) -> f64 {
        match self {
            Activation::Relu => z.max(0.0),
            Activation::Tanh => z.tanh(),
        }
    }
}
