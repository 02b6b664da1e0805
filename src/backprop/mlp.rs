//! A multi-layer perceptron made of [`Value`]s: every weight is a node of the graph, so
//! one `backward()` on the loss gives the gradient of every parameter.

use super::Value;
use crate::Error;
use rand::Rng;
use rand_distr::Uniform;

/// One neuron: `relu(w · x + b)`, or `w · x + b` in the output layer.
pub struct Neuron {
    pub w: Vec<Value>,
    pub b: Value,
    pub relu: bool,
}

impl Neuron {
    /// Weights drawn uniformly from [-1, 1] as in micrograd; the bias starts at 0.
    pub fn new(inputs: usize, relu: bool, rng: &mut impl Rng) -> Neuron {
        let uniform = Uniform::new_inclusive(-1.0, 1.0);
        let w = (0..inputs)
            .map(|_| Value::new(rng.sample(uniform)))
            .collect();
        Neuron {
            w,
            b: Value::new(0.0),
            relu,
        }
    }

    pub fn forward(&self, x: &[Value]) -> Value {
        let act = self
            .w
            .iter()
            .zip(x)
            .fold(self.b.clone(), |sum, (w, x)| sum + w * x);
        if self.relu {
            act.relu()
        } else {
            act
        }
    }
}

/// A fully connected layer: `outputs` neurons that all read the same inputs.
pub struct Layer {
    pub neurons: Vec<Neuron>,
}

impl Layer {
    pub fn new(inputs: usize, outputs: usize, relu: bool, rng: &mut impl Rng) -> Layer {
        let neurons = (0..outputs)
            .map(|_| Neuron::new(inputs, relu, rng))
            .collect();
        Layer { neurons }
    }

    pub fn forward(&self, x: &[Value]) -> Vec<Value> {
        self.neurons.iter().map(|n| n.forward(x)).collect()
    }
}

/// micrograd's MLP (Karpathy, 2020): ReLU hidden layers and a linear output layer.
///
/// `Mlp::new(&[2, 16, 16, 1], rng)` maps 2 inputs through two hidden layers of 16 to one
/// score. Taught in notebook `01_backprop`; `sizes` has the input width first.
pub struct Mlp {
    pub layers: Vec<Layer>,
}

impl Mlp {
    /// An MLP with layer widths `sizes`, input first: at least two widths, none zero.
    pub fn new(sizes: &[usize], rng: &mut impl Rng) -> Result<Mlp, Error> {
        if sizes.len() < 2 || sizes.contains(&0) {
            return Err(Error::InvalidArgument {
                what: "the MLP's layer sizes",
                expected:
                    "an input width then at least one layer width, none zero, such as [2, 16, 1]",
                got: format!("{sizes:?}"),
            });
        }
        let last = sizes.len() - 2;
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(i, io)| Layer::new(io[0], io[1], i != last, rng))
            .collect();
        Ok(Mlp { layers })
    }

    /// The layer widths, input first: the inverse of [`Mlp::new`].
    pub fn sizes(&self) -> Vec<usize> {
        let inputs = self.layers[0].neurons[0].w.len();
        std::iter::once(inputs)
            .chain(self.layers.iter().map(|l| l.neurons.len()))
            .collect()
    }

    pub fn forward(&self, x: &[Value]) -> Vec<Value> {
        self.layers
            .iter()
            .fold(x.to_vec(), |h, layer| layer.forward(&h))
    }

    /// Every weight and bias, layer by layer, neuron by neuron, weights before bias.
    pub fn parameters(&self) -> Vec<Value> {
        let neurons = self.layers.iter().flat_map(|l| &l.neurons);
        neurons
            .flat_map(|n| n.w.iter().chain([&n.b]).cloned())
            .collect()
    }

    pub fn zero_grad(&self) {
        self.parameters().iter().for_each(Value::zero_grad);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn counts_parameters_like_micrograd() {
        let mlp = Mlp::new(&[2, 16, 16, 1], &mut StdRng::seed_from_u64(0)).unwrap();
        // (2*16 + 16) + (16*16 + 16) + (16*1 + 1)
        assert_eq!(mlp.parameters().len(), 337);
        assert_eq!(mlp.sizes(), vec![2, 16, 16, 1]);
    }

    #[test]
    fn too_few_or_empty_layers_are_an_error() {
        let mut rng = StdRng::seed_from_u64(0);
        assert!(Mlp::new(&[2], &mut rng).is_err());
        let err = Mlp::new(&[2, 0, 1], &mut rng).err().unwrap();
        assert!(err.to_string().contains("but got [2, 0, 1]"), "{err}");
    }

    #[test]
    fn hidden_layers_use_relu_and_the_output_is_linear() {
        let mlp = Mlp::new(&[3, 4, 2], &mut StdRng::seed_from_u64(1)).unwrap();
        assert!(mlp.layers[0].neurons.iter().all(|n| n.relu));
        assert!(mlp.layers[1].neurons.iter().all(|n| !n.relu));
    }
}
