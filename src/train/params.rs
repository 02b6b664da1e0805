//! A model's weights and gradients as one flat vector, in dfdx's visiting order: for
//! experiments that compare trajectories (notebook `02_optimization` §4), write an update
//! rule by hand (§3) or prune weights (notebook `03_generalization` §6).

use crate::Error;
use dfdx::prelude::*;
use dfdx::tensor::CpuError;

/// Every trainable number of `model`, tensor by tensor in dfdx's visiting order (for a
/// `Linear`: the weight row by row, then the bias).
pub fn parameters<M: TensorCollection<f32, Cpu>>(model: &M) -> Vec<f32> {
    let mut flat = Flatten(Vec::new());
    let walked = M::iter_tensors(&mut RecursiveWalker {
        m: model,
        f: &mut flat,
    });
    match walked {
        Ok(_) => flat.0,
        Err(never) => match never {},
    }
}

/// Overwrites the trainable numbers of `model` with `values`, in the order of
/// [`parameters`]. The tensors keep their identity, so an optimizer's state still fits them.
pub fn set_parameters<M: TensorCollection<f32, Cpu>>(
    model: &mut M,
    values: &[f32],
) -> Result<(), Error> {
    let count = model.num_trainable_params();
    if values.len() != count {
        return Err(Error::ShapeMismatch {
            what: "the parameter values",
            expected: format!("{count}, one per trainable number of the model"),
            got: values.len().to_string(),
        });
    }
    let walked = M::iter_tensors(&mut RecursiveWalker {
        m: model,
        f: &mut Overwrite(values),
    });
    match walked {
        Ok(_) => Ok(()),
        Err(never) => match never {},
    }
}

/// The gradient of every trainable number of `model` in `grads`, in the order of
/// [`parameters`]; a tensor that `grads` holds no gradient for counts as zero.
pub fn gradients<M: TensorCollection<f32, Cpu>>(
    model: &M,
    grads: &Gradients<f32, Cpu>,
) -> Result<Vec<f32>, Error> {
    flat_gradients(model, grads).map_err(Error::Device)
}

/// [`gradients`] with dfdx's error, for code that reports errors as dfdx does.
pub(crate) fn flat_gradients<M: TensorCollection<f32, Cpu>>(
    model: &M,
    grads: &Gradients<f32, Cpu>,
) -> Result<Vec<f32>, CpuError> {
    let mut read = ReadGradients {
        grads: grads.clone(),
        flat: Vec::new(),
    };
    M::iter_tensors(&mut RecursiveWalker {
        m: model,
        f: &mut read,
    })?;
    Ok(read.flat)
}

/// The Euclidean norm of a vector.
pub fn norm(values: &[f32]) -> f32 {
    values.iter().map(|v| v * v).sum::<f32>().sqrt()
}

/// Appends each trainable tensor's values.
struct Flatten(Vec<f32>);

impl TensorVisitor<f32, Cpu> for Flatten {
    type Viewer = ViewTensorRef;
    type Err = std::convert::Infallible;
    type E2 = f32;
    type D2 = Cpu;

    fn visit<S: Shape>(
        &mut self,
        opts: TensorOptions<S, f32, Cpu>,
        t: &Tensor<S, f32, Cpu>,
    ) -> Result<Option<Tensor<S, f32, Cpu>>, Self::Err> {
        if opts.do_gradient_update {
            self.0.extend(t.as_vec());
        }
        Ok(None)
    }
}

/// Copies successive slices of its values into each trainable tensor.
struct Overwrite<'a>(&'a [f32]);

impl TensorVisitor<f32, Cpu> for Overwrite<'_> {
    type Viewer = ViewTensorMut;
    type Err = std::convert::Infallible;
    type E2 = f32;
    type D2 = Cpu;

    fn visit<S: Shape>(
        &mut self,
        opts: TensorOptions<S, f32, Cpu>,
        t: &mut Tensor<S, f32, Cpu>,
    ) -> Result<Option<Tensor<S, f32, Cpu>>, Self::Err> {
        if opts.do_gradient_update {
            let (head, rest) = self.0.split_at(t.shape().num_elements());
            t.copy_from(head);
            self.0 = rest;
        }
        Ok(None)
    }
}

/// Appends each trainable tensor's gradient, zeros where there is none.
struct ReadGradients {
    grads: Gradients<f32, Cpu>,
    flat: Vec<f32>,
}

impl TensorVisitor<f32, Cpu> for ReadGradients {
    type Viewer = ViewTensorRef;
    type Err = CpuError;
    type E2 = f32;
    type D2 = Cpu;

    fn visit<S: Shape>(
        &mut self,
        opts: TensorOptions<S, f32, Cpu>,
        t: &Tensor<S, f32, Cpu>,
    ) -> Result<Option<Tensor<S, f32, Cpu>>, Self::Err> {
        if opts.do_gradient_update {
            self.flat.extend(self.grads.get_or_alloc_mut(t)?.iter());
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::ReLU;

    type Net = (Linear<2, 16>, ReLU, Linear<16, 2>);

    #[test]
    fn parameters_read_and_write_every_trainable_number_in_order() {
        let dev = Cpu::seed_from_u64(0);
        let mut model = dev.build_module::<Net, f32>();
        let flat = parameters(&model);
        assert_eq!(flat.len(), 2 * 16 + 16 + 16 * 2 + 2);
        assert_eq!(flat[..32], model.0.weight.as_vec()[..]);
        assert_eq!(flat[32..48], model.0.bias.as_vec()[..]);
        let doubled: Vec<f32> = flat.iter().map(|v| 2.0 * v).collect();
        set_parameters(&mut model, &doubled).unwrap();
        assert_eq!(parameters(&model), doubled);
        assert_eq!(model.2.bias.as_vec(), doubled[flat.len() - 2..]);
        let err = set_parameters(&mut model, &flat[1..]).unwrap_err();
        assert!(err.to_string().contains("should be 82"), "{err}");
        assert!((norm(&[3.0, 4.0]) - 5.0).abs() < 1e-6);
    }

    #[test]
    fn gradients_follow_the_parameter_order_and_missing_ones_are_zero() {
        let dev = Cpu::seed_from_u64(0);
        let model = dev.build_module::<Net, f32>();
        let x: Tensor<Rank2<3, 2>, f32, Cpu> = dev.sample_normal();
        let grads = model
            .forward(x.traced(model.alloc_grads()))
            .square()
            .mean()
            .backward();
        let flat = gradients(&model, &grads).unwrap();
        assert_eq!(flat.len(), parameters(&model).len());
        assert_eq!(flat[..32], grads.get(&model.0.weight).as_vec()[..]);
        assert_eq!(flat[80..], grads.get(&model.2.bias).as_vec()[..]);
        assert!(flat.iter().any(|g| g.abs() > 1e-4));
        let none = gradients(&model, &Gradients::leaky()).unwrap();
        assert_eq!(none, vec![0.0; flat.len()]);
    }
}
