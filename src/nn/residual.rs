//! The residual connection, `F(x) + x` (He, Zhang, Ren & Sun, 2016; notebook 04). dfdx's
//! `Residual` adds through its generic broadcasting kernels, one strided index per value in
//! both passes; here the sum is one recorded op whose passes are vectorised loops shared
//! among rayon's threads.

use super::op::{layer_result, output_buffer, param, record, shape_error, values, GRAIN};
use crate::Error;
use dfdx::prelude::*;
use dfdx::tensor::CpuError;
use rayon::prelude::*;

/// A residual connection around `F`: `F(x) + x`, dfdx's `Residual` on a faster sum (the
/// same numbers). `F` must keep its input's shape.
#[derive(Debug, Clone, Default)]
pub struct Residual<F>(pub F);

impl<D: Device<E>, E: Dtype, F: BuildOnDevice<D, E>> BuildOnDevice<D, E> for Residual<F> {
    type Built = Residual<F::Built>;
}

impl<E: Dtype, D: Device<E>, F: TensorCollection<E, D>> TensorCollection<E, D> for Residual<F> {
    type To<E2: Dtype, D2: Device<E2>> = Residual<F::To<E2, D2>>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(Self::module("0", |s| &s.0, |s| &mut s.0), Residual)
    }
}

impl<S: Shape, T: Tape<f32, Cpu> + Merge<T>, F> Module<Tensor<S, f32, Cpu, T>> for Residual<F>
where
    F: Module<Tensor<S, f32, Cpu, T>, Output = Tensor<S, f32, Cpu, T>, Error = CpuError>,
{
    type Output = Tensor<S, f32, Cpu, T>;
    type Error = CpuError;

    fn try_forward(&self, x: Tensor<S, f32, Cpu, T>) -> Result<Self::Output, CpuError> {
        let fx = self.0.try_forward(x.with_empty_tape())?;
        layer_result("Residual", add(fx, x))
    }
}

impl<S: Shape, T: Tape<f32, Cpu> + Merge<T>, F> ModuleMut<Tensor<S, f32, Cpu, T>> for Residual<F>
where
    F: ModuleMut<Tensor<S, f32, Cpu, T>, Output = Tensor<S, f32, Cpu, T>, Error = CpuError>,
{
    type Output = Tensor<S, f32, Cpu, T>;
    type Error = CpuError;

    fn try_forward_mut(&mut self, x: Tensor<S, f32, Cpu, T>) -> Result<Self::Output, CpuError> {
        let fx = self.0.try_forward_mut(x.with_empty_tape())?;
        layer_result("Residual", add(fx, x))
    }
}

/// `a + b` for two tensors of one shape, recorded on both tapes: the gradient reaches
/// each unchanged.
pub fn add<S: Shape, T: Tape<f32, Cpu> + Merge<T>>(
    a: Tensor<S, f32, Cpu, T>,
    b: Tensor<S, f32, Cpu, T>,
) -> Result<Tensor<S, f32, Cpu, T>, Error> {
    if a.shape().concrete() != b.shape().concrete() {
        return Err(shape_error(
            "the second term of a sum",
            format!("{:?}, as the first", a.shape().concrete()),
            format!("{:?}", b.shape().concrete()),
        ));
    }
    let (a, a_tape) = a.try_contiguous()?.split_tape();
    let (b, b_tape) = b.try_contiguous()?.split_tape();
    let mut out = output_buffer(a.device(), a.shape().num_elements())?;
    a.copy_into(&mut out);
    add_to(&mut out, &values(&b));
    let shape = *a.shape();
    let tape = a_tape.merge(b_tape);
    let out = record(&a, [param(&b)], tape, out, shape, |g, ga, [gb]| {
        add_to(ga, g);
        add_to(gb, g);
    })?;
    Ok(out)
}

/// The readable version of [`add`]: dfdx's `a + b`, whose gradient reaches both terms
/// unchanged. Notebook `04_convnets` §4 (the residual connection).
pub fn add_reference<S: Shape, T: Tape<f32, Cpu> + Merge<T>>(
    a: Tensor<S, f32, Cpu, T>,
    b: Tensor<S, f32, Cpu, T>,
) -> Tensor<S, f32, Cpu, T> {
    a + b
}

/// `dst += src`, value by value, shared among rayon's threads.
pub(super) fn add_to(dst: &mut [f32], src: &[f32]) {
    dst.par_chunks_mut(GRAIN)
        .zip(src.par_chunks(GRAIN))
        .for_each(|(dst, src)| dst.iter_mut().zip(src).for_each(|(d, s)| *d += s));
}

#[cfg(test)]
mod tests {
    use super::*;

    type Block = (Linear<5, 5>, ReLU);

    #[test]
    fn values_and_gradients_are_dfdx_residuals_to_the_bit() {
        let dev = Cpu::seed_from_u64(0);
        let theirs = dev.build_module::<dfdx::nn::builders::Residual<Block>, f32>();
        let ours = Residual(theirs.0.clone());
        let x: Tensor<Rank2<3, 5>, f32, Cpu> = dev.sample_normal();
        let r: Tensor<Rank2<3, 5>, f32, Cpu> = dev.sample_normal();
        let bits = |v: Vec<f32>| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        let (y, expected) = (
            ours.forward(x.leaky_trace()),
            theirs.forward(x.leaky_trace()),
        );
        assert_eq!(bits(y.as_vec()), bits(expected.as_vec()));
        let g = (y * r.clone()).sum().backward();
        let e = (expected * r).sum().backward();
        assert_eq!(bits(g.get(&x).as_vec()), bits(e.get(&x).as_vec()));
        assert_eq!(
            bits(g.get(&ours.0 .0.weight).as_vec()),
            bits(e.get(&theirs.0 .0.weight).as_vec())
        );
    }

    #[test]
    fn add_matches_the_reference_in_values_and_gradients_to_the_bit() {
        let dev = Cpu::seed_from_u64(0);
        let a: Tensor<Rank2<3, 5>, f32, Cpu> = dev.sample_normal();
        let b: Tensor<Rank2<3, 5>, f32, Cpu> = dev.sample_normal();
        let r: Tensor<Rank2<3, 5>, f32, Cpu> = dev.sample_normal();
        let ours = add(a.leaky_trace(), b.leaky_trace()).unwrap();
        let theirs = add_reference(a.leaky_trace(), b.leaky_trace());
        assert_eq!(ours.as_vec(), theirs.as_vec());
        let g = (ours * r.clone()).sum().backward();
        let e = (theirs * r).sum().backward();
        assert_eq!(g.get(&a).as_vec(), e.get(&a).as_vec());
        assert_eq!(g.get(&b).as_vec(), e.get(&b).as_vec());
    }

    #[test]
    fn terms_of_different_shapes_are_refused() {
        let dev = Cpu::default();
        let a: Tensor<(usize,), f32, Cpu> = dev.zeros_like(&(3,));
        let b: Tensor<(usize,), f32, Cpu> = dev.zeros_like(&(4,));
        let err = add(a, b).unwrap_err().to_string();
        assert!(err.contains("second term"), "{err}");
    }
}
