//! What the crate's tests share: seeded inputs, central finite differences to hold a
//! gradient against, and comparisons that name the first index that differs.

use dfdx::prelude::*;
use rand::{rngs::StdRng, Rng, SeedableRng};

/// `n` values uniform in [-1, 1), the same for the same seed.
pub fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect()
}

/// ∂f/∂xᵢ for every i by central differences, (f(x + εeᵢ) − f(x − εeᵢ)) / 2ε. Exact, up
/// to rounding, for functions linear in x (a convolution in its image or its kernels), so
/// a large ε keeps rounding small.
pub fn finite_differences(x: &[f32], eps: f32, f: impl Fn(&[f32]) -> f64) -> Vec<f64> {
    let mut probe = x.to_vec();
    (0..x.len())
        .map(|i| {
            probe[i] = x[i] + eps;
            let up = f(&probe);
            probe[i] = x[i] - eps;
            let down = f(&probe);
            probe[i] = x[i];
            (up - down) / (2.0 * eps as f64)
        })
        .collect()
}

/// Fails with the first index where `got` and `expected` differ by more than `tol`.
pub fn assert_close(what: &str, got: &[f32], expected: &[f64], tol: f64) {
    assert_eq!(got.len(), expected.len(), "{what}: lengths");
    for (i, (&g, &e)) in got.iter().zip(expected).enumerate() {
        assert!(
            (g as f64 - e).abs() <= tol * (1.0 + e.abs()),
            "{what}[{i}]: got {g}, expected {e}"
        );
    }
}

/// Σ out · r: a loss whose gradient with respect to `out` is the fixed random `r`, so a
/// wrong entry anywhere in a backward pass shows.
pub fn weighted_sum(out: &[f32], r: &[f32]) -> f64 {
    out.iter().zip(r).map(|(&o, &r)| o as f64 * r as f64).sum()
}

/// [`assert_close`] against values computed in `f32` (another op's, dfdx's).
pub fn assert_close_f32(what: &str, got: &[f32], expected: &[f32], tol: f64) {
    let expected: Vec<f64> = expected.iter().map(|&e| e as f64).collect();
    assert_close(what, got, &expected, tol);
}

/// A batch of images, or kernels, with every size known at run time, as the tests of
/// `nn`'s image ops build their inputs.
type Images = crate::nn::Kernels;

/// [`Images`] recorded on a tape.
type Traced = Tensor<(usize, usize, usize, usize), f32, Cpu, OwnedTape<f32, Cpu>>;

/// [`noise`] in the given shape.
pub fn noise_images(dev: &Cpu, shape: (usize, usize, usize, usize), seed: u64) -> Images {
    dev.tensor_from_vec(noise(shape.num_elements(), seed), shape)
}

/// `x = arange(…)/10` with PyTorch's shape, in row-major order: the inputs of the script
/// in `conv2d`'s `matches_pytorch`, and the weights of its loss.
pub fn arange(dev: &Cpu, shape: (usize, usize, usize, usize)) -> Images {
    let n = shape.num_elements();
    dev.tensor_from_vec((0..n).map(|i| i as f32 / 10.0).collect(), shape)
}

/// How close an op's output and its inputs' gradients must come to the expected ones, each
/// value within `tol · (1 + |expected|)`.
pub struct Tolerance {
    pub values: f64,
    pub gradients: f64,
}

/// `op`'s output on `inputs`, the weights `r` of the loss Σ out · r (made from the output's
/// shape), and each input's gradient under that loss.
fn output_and_gradients<const N: usize>(
    inputs: &[Images; N],
    op: impl FnOnce([Traced; N]) -> Traced,
    weights: impl FnOnce((usize, usize, usize, usize)) -> Images,
) -> (Vec<f32>, Vec<f32>, [Vec<f32>; N]) {
    let out = op(inputs.each_ref().map(|x| x.leaky_trace()));
    let (values, r) = (out.as_vec(), weights(*out.shape()));
    let grads = (out * r.clone()).sum().backward();
    let input_grads = inputs.each_ref().map(|x| grads.get(x).as_vec());
    (values, r.as_vec(), input_grads)
}

/// A fast image op against its readable reference: the same output, and each input's
/// gradient under Σ out · r (`r` seeded noise) the reference's by central differences with
/// the given step.
pub fn assert_matches_reference<const N: usize>(
    what: &str,
    inputs: [Images; N],
    op: impl FnOnce([Traced; N]) -> Traced,
    reference: impl Fn([&Images; N]) -> Images,
    seed: u64,
    step: f32,
    tol: Tolerance,
) {
    let dev = inputs[0].device().clone();
    let (out, r, grads) = output_and_gradients(&inputs, op, |s| noise_images(&dev, s, seed));
    let expected = reference(inputs.each_ref()).as_vec();
    assert_close_f32(&format!("{what}: out"), &out, &expected, tol.values);
    for (i, grad) in grads.iter().enumerate() {
        let loss = |probe: &[f32]| {
            let probe = dev.tensor_from_vec(probe.to_vec(), *inputs[i].shape());
            let mut args = inputs.each_ref();
            args[i] = &probe;
            weighted_sum(&reference(args).as_vec(), &r)
        };
        let expected = finite_differences(&inputs[i].as_vec(), step, loss);
        let what = format!("{what}: ∂/∂input {i}");
        assert_close(&what, grad, &expected, tol.gradients);
    }
}

/// A fast image op against PyTorch's numbers for the same inputs: its output `out`, and
/// `grads[i]` the gradient of input `i` under the loss Σ out · arange/10 (the `run` of the
/// script in `conv2d`'s `matches_pytorch`).
pub fn assert_matches_pytorch<const N: usize>(
    what: &str,
    inputs: [Images; N],
    op: impl FnOnce([Traced; N]) -> Traced,
    out: &[f32],
    grads: [&[f32]; N],
    tol: Tolerance,
) {
    let dev = inputs[0].device().clone();
    let (got, _, got_grads) = output_and_gradients(&inputs, op, |shape| arange(&dev, shape));
    assert_close_f32(&format!("{what}: out"), &got, out, tol.values);
    for (i, (got, expected)) in got_grads.iter().zip(grads).enumerate() {
        assert_close_f32(
            &format!("{what}: ∂/∂input {i}"),
            got,
            expected,
            tol.gradients,
        );
    }
}
