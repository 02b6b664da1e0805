//! The rectified linear unit, `max(0, x)`, and its leaky variant, each as one recorded op.
//! dfdx's ReLU computes the same values, but its backward pass reads each value through a
//! bounds-checked index, one scalar at a time, on one thread; its leaky ReLU (`prelu`) is
//! five ops (a comparison, a broadcast product, a choice, and their backward passes), each
//! a pass over memory. Here both passes are vectorised loops shared among rayon's threads,
//! the backward one over a byte mask kept from the forward pass.

use super::op::{output_buffer, record, GRAIN};
use dfdx::prelude::*;
use dfdx::tensor::CpuError;
use rayon::prelude::*;

/// `max(0, x)` elementwise, dfdx's `ReLU` with a faster backward pass (the same numbers).
/// Every model of the course uses it; `mustknow::prelude` exports it in place of dfdx's.
#[derive(Default, Debug, Clone, Copy)]
pub struct ReLU;

impl ZeroSizedModule for ReLU {}
impl NonMutableModule for ReLU {}

impl<S: Shape, T: Tape<f32, Cpu>> Module<Tensor<S, f32, Cpu, T>> for ReLU {
    type Output = Tensor<S, f32, Cpu, T>;
    type Error = CpuError;

    fn try_forward(&self, x: Tensor<S, f32, Cpu, T>) -> Result<Self::Output, CpuError> {
        relu(x)
    }
}

/// The leaky ReLU, `x` for `x > 0` and `x · PERCENT / 100` otherwise ([`leaky_relu`]), its
/// slope fixed in the type: dfdx's `LeakyReLU` keeps the slope in a field, which
/// `build_module` and `to_device` reset to 0.05, so a copy of a network (the GAN's frozen
/// discriminator, notebook `08_vae_gan` §5) would compute another function.
#[derive(Default, Debug, Clone, Copy)]
pub struct LeakyReLU<const PERCENT: usize>;

impl<const PERCENT: usize> ZeroSizedModule for LeakyReLU<PERCENT> {}
impl<const PERCENT: usize> NonMutableModule for LeakyReLU<PERCENT> {}

impl<S: Shape, T: Tape<f32, Cpu>, const PERCENT: usize> Module<Tensor<S, f32, Cpu, T>>
    for LeakyReLU<PERCENT>
{
    type Output = Tensor<S, f32, Cpu, T>;
    type Error = CpuError;

    fn try_forward(&self, x: Tensor<S, f32, Cpu, T>) -> Result<Self::Output, CpuError> {
        leaky_relu(x, PERCENT as f32 / 100.0)
    }
}

/// `max(0, x)` elementwise, recorded on `x`'s tape. The gradient passes where `x > 0`
/// and is 0 elsewhere (at 0 too, as in dfdx and PyTorch).
pub fn relu<S: Shape, T: Tape<f32, Cpu>>(
    x: Tensor<S, f32, Cpu, T>,
) -> Result<Tensor<S, f32, Cpu, T>, CpuError> {
    leaky_relu(x, 0.0)
}

/// `max(0, x) + slope · min(0, x)` elementwise (dfdx's formula for `prelu`, its readable
/// reference), recorded on `x`'s tape; its gradient is 1 where `x > 0` and `slope`
/// elsewhere (at 0 too, as PyTorch's `leaky_relu`; dfdx's `prelu` passes the whole
/// gradient there). [`relu`] is the case `slope = 0`. Notebook `08_vae_gan` §5.
pub fn leaky_relu<S: Shape, T: Tape<f32, Cpu>>(
    x: Tensor<S, f32, Cpu, T>,
    slope: f32,
) -> Result<Tensor<S, f32, Cpu, T>, CpuError> {
    let (x, tape) = x.try_contiguous()?.split_tape();
    // Copied into a buffer from dfdx's cache: a fresh one of a big layer's size would be
    // new memory from the system at every step.
    let mut out = output_buffer(x.device(), x.shape().num_elements())?;
    x.copy_into(&mut out);
    let mut positive = vec![0u8; out.len()];
    out.par_chunks_mut(GRAIN)
        .zip(positive.par_chunks_mut(GRAIN))
        .for_each(|(out, positive)| {
            for (v, p) in out.iter_mut().zip(positive) {
                *p = u8::from(*v > 0.0);
                *v = v.max(0.0) + slope * v.min(0.0);
            }
        });
    let shape = *x.shape();
    record(&x, [], tape, out, shape, move |g, gx, []| {
        gx.par_chunks_mut(GRAIN)
            .zip(g.par_chunks(GRAIN).zip(positive.par_chunks(GRAIN)))
            .for_each(|(gx, (g, positive))| {
                // dfdx's own rule, `gx += df · g`: the same rounding, −0 included. `df` is
                // exactly 1 or `slope`, written as arithmetic so that the loop vectorises.
                for ((gx, &g), &p) in gx.iter_mut().zip(g).zip(positive) {
                    let (p, n) = (f32::from(p), f32::from(1 - p));
                    *gx += (p + slope * n) * g;
                }
            });
    })
}

/// The readable version of [`relu`]: dfdx's own `relu`, `max(0, x)` value by value, whose
/// gradient is 1 where `x > 0` and 0 elsewhere. Notebook `01_backprop` §4.
pub fn relu_reference<S: Shape, T: Tape<f32, Cpu>>(
    x: Tensor<S, f32, Cpu, T>,
) -> Tensor<S, f32, Cpu, T> {
    x.relu()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_in_values_and_gradients_to_the_bit() {
        let dev = Cpu::seed_from_u64(0);
        let mut x: Tensor<Rank2<7, 9>, f32, Cpu> = dev.sample_normal();
        // Zeros and negative zeros, where the gradient is 0 too.
        let mut v = x.as_vec();
        v[..4].copy_from_slice(&[0.0, -0.0, 0.0, -0.0]);
        x.copy_from(&v);
        let r: Tensor<Rank2<7, 9>, f32, Cpu> = dev.sample_normal();
        let ours = ReLU.forward(x.leaky_trace());
        let theirs = relu_reference(x.leaky_trace());
        assert_eq!(ours.as_vec(), theirs.as_vec());
        let ours = (ours * r.clone()).sum().backward();
        let theirs = (theirs * r).sum().backward();
        let bits = |g: Vec<f32>| g.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(ours.get(&x).as_vec()), bits(theirs.get(&x).as_vec()));
    }

    #[test]
    fn the_leaky_relu_is_dfdxs_prelu_in_values_and_gradients() {
        let dev = Cpu::seed_from_u64(1);
        let x: Tensor<Rank2<7, 9>, f32, Cpu> = dev.sample_normal();
        let r: Tensor<Rank2<7, 9>, f32, Cpu> = dev.sample_normal();
        let ours = LeakyReLU::<20>.forward(x.leaky_trace());
        let theirs = x.leaky_trace().prelu(0.2);
        assert_eq!(ours.as_vec(), theirs.as_vec());
        assert!(x.as_vec().iter().all(|&v| v != 0.0), "no input at the kink");
        let ours = (ours * r.clone()).sum().backward();
        let theirs = (theirs * r).sum().backward();
        assert_eq!(ours.get(&x).as_vec(), theirs.get(&x).as_vec());
    }
}
