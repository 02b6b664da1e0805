//! The same computations on dfdx's tape-based autodiff: the established implementation
//! our from-scratch engine is checked against (as micrograd checks itself against PyTorch).

use super::{hinge_loss, Layer, Mlp, Value};
use crate::data::Points2d;
use crate::Error;
use dfdx::prelude::*;

/// An expression that uses every operation of [`Value`]:
/// `relu(tanh(a·b + b³) + exp(a/2) - b) + ln(a·a)`.
pub fn showcase(a: &Value, b: &Value) -> Value {
    let c = a * b + b.pow(3.0);
    let d = c.tanh() + (a / 2.0).exp();
    (d - b).relu() + (a * a).log()
}

/// [`showcase`] computed by dfdx: returns the value and `[d/da, d/db]`.
///
/// Each use of a leaf is traced separately; dfdx adds up the gradients of every use by
/// the tensor's id, just as [`Value`] adds them with `+=`.
pub fn showcase_dfdx(a: f64, b: f64) -> (f64, [f64; 2]) {
    let dev = Cpu::default();
    let (a, b): (Tensor<Rank0, f64, _>, Tensor<Rank0, f64, _>) = (dev.tensor(a), dev.tensor(b));
    let c = a.leaky_trace() * b.leaky_trace() + b.leaky_trace().powi(3);
    let d = c.tanh() + (a.leaky_trace() / 2.0).exp();
    // dfdx's binary ops need two different tensors, so `a·a` is written `square`.
    let out = (d - b.leaky_trace()).relu() + a.leaky_trace().square().ln();
    let value = out.array();
    let grads = out.backward();
    (value, [grads.get(&a).array(), grads.get(&b).array()])
}

/// micrograd's moons network as a dfdx model: the compiler knows every layer's shape.
pub type MoonsMlp = (Linear<2, 16>, ReLU, Linear<16, 16>, ReLU, Linear<16, 1>);

/// Gradient of the mean hinge loss (no L2 term) with respect to every parameter of `mlp`,
/// computed by dfdx on a copy of its weights, in the order of [`Mlp::parameters`].
pub fn mlp_gradients_dfdx(mlp: &Mlp, data: &Points2d) -> Result<Vec<f64>, Error> {
    let expected = vec![2, 16, 16, 1];
    if mlp.sizes() != expected {
        return Err(Error::ShapeMismatch {
            what: "the MLP's layer sizes",
            expected: format!("{expected:?}"),
            got: format!("{:?}", mlp.sizes()),
        });
    }
    let dev = Cpu::default();
    let mut model = dev.build_module::<MoonsMlp, f64>();
    load_linear(&mut model.0, &mlp.layers[0]);
    load_linear(&mut model.2, &mlp.layers[1]);
    load_linear(&mut model.4, &mlp.layers[2]);

    let n = data.len();
    let x = dev.tensor_from_vec(data.xy.concat(), (n, Const::<2>));
    let signs = data
        .labels
        .iter()
        .map(|&l| if l == 1 { 1.0 } else { -1.0 })
        .collect();
    let y = dev.tensor_from_vec(signs, (n, Const::<1>));
    let scores = model.forward(x.traced(model.alloc_grads())); // (n, 1)
    let loss = (-(scores * y) + 1.0).relu().mean();
    let grads = loss.backward();

    let mut flat = linear_grads(&model.0, &grads);
    flat.extend(linear_grads(&model.2, &grads));
    flat.extend(linear_grads(&model.4, &grads));
    Ok(flat)
}

/// Our engine's gradients for the same loss as [`mlp_gradients_dfdx`].
pub fn mlp_gradients(mlp: &Mlp, data: &Points2d) -> Vec<f64> {
    mlp.zero_grad();
    hinge_loss(mlp, data, 0.0).0.backward();
    mlp.parameters().iter().map(Value::grad).collect()
}

/// Copies a layer's weights into a dfdx `Linear`, whose weight matrix is (out, in).
fn load_linear<const I: usize, const O: usize>(
    linear: &mut modules::Linear<I, O, f64, Cpu>,
    layer: &Layer,
) {
    let w: Vec<f64> = layer
        .neurons
        .iter()
        .flat_map(|n| n.w.iter().map(Value::data))
        .collect();
    let b: Vec<f64> = layer.neurons.iter().map(|n| n.b.data()).collect();
    linear.weight.copy_from(&w);
    linear.bias.copy_from(&b);
}

/// A `Linear`'s gradients in [`Mlp::parameters`] order: each neuron's weights, then its bias.
fn linear_grads<const I: usize, const O: usize>(
    linear: &modules::Linear<I, O, f64, Cpu>,
    grads: &Gradients<f64, Cpu>,
) -> Vec<f64> {
    let (w, b) = (
        grads.get(&linear.weight).as_vec(),
        grads.get(&linear.bias).as_vec(),
    );
    w.chunks(I)
        .zip(b)
        .flat_map(|(row, b)| row.iter().copied().chain([b]))
        .collect()
}

/// The gradients of `L = ½ Σ (h·Wᵀ + b − t)²` (summed over the batch) with respect to the
/// layer's weight W `(O, I)`, its bias b `(O,)` and its input h `(B, I)`, as dfdx's
/// autograd computes them through `layer`'s own forward. The reference §7's three matrix
/// formulas are checked against; taught in notebook `01_backprop`, §7.
pub fn linear_gradients_dfdx<const B: usize, const I: usize, const O: usize>(
    layer: &modules::Linear<I, O, f64, Cpu>,
    h: &Tensor<Rank2<B, I>, f64, Cpu>,
    t: &Tensor<Rank2<B, O>, f64, Cpu>,
) -> LinearGradients<B, I, O> {
    let y = layer.forward(h.leaky_trace()); // (B, O)
    let loss = (y - t.clone()).square().sum() * 0.5;
    let grads = loss.backward();
    LinearGradients {
        w: grads.get(&layer.weight),
        b: grads.get(&layer.bias),
        h: grads.get(h),
    }
}

/// ∂L/∂W, ∂L/∂b and ∂L/∂h of one linear layer, from [`linear_gradients_dfdx`].
pub struct LinearGradients<const B: usize, const I: usize, const O: usize> {
    pub w: Tensor<Rank2<O, I>, f64, Cpu>,
    pub b: Tensor<Rank1<O>, f64, Cpu>,
    pub h: Tensor<Rank2<B, I>, f64, Cpu>,
}

/// How far apart two gradient vectors are, relative to their scale:
/// `max |aᵢ - bᵢ| / max |bᵢ|`. Per-element ratios would be misleading: a gradient that
/// cancels to 1e-17 in one summation order can be -1e-17 in another.
pub fn relative_difference(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "comparing gradients of different lengths");
    let scale = b
        .iter()
        .fold(0.0, |m: f64, x| m.max(x.abs()))
        .max(f64::MIN_POSITIVE);
    a.iter()
        .zip(b)
        .fold(0.0, |m: f64, (x, y)| m.max((x - y).abs()))
        / scale
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::two_moons;
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn the_showcase_gradients_match_dfdx() {
        for (a0, b0) in [(2.0, -3.0), (0.7, 0.4), (-1.5, 2.0)] {
            let (a, b) = (Value::new(a0), Value::new(b0));
            let out = showcase(&a, &b);
            out.backward();
            let (value, grads) = showcase_dfdx(a0, b0);
            assert!((out.data() - value).abs() < 1e-12);
            assert!(
                relative_difference(&[a.grad(), b.grad()], &grads) < 1e-10,
                "{a:?} {b:?} vs {grads:?}"
            );
        }
    }

    #[test]
    fn the_mlp_gradients_match_dfdx() {
        let data = two_moons(30, 0.1, 1).unwrap();
        let mlp = Mlp::new(&[2, 16, 16, 1], &mut StdRng::seed_from_u64(1)).unwrap();
        let ours = mlp_gradients(&mlp, &data);
        let theirs = mlp_gradients_dfdx(&mlp, &data).unwrap();
        assert!(
            ours.iter().any(|g| g.abs() > 1e-3),
            "a test on all-zero gradients proves nothing"
        );
        assert!(relative_difference(&ours, &theirs) < 1e-10);
    }

    #[test]
    fn the_matrix_formulas_give_dfdxs_linear_gradients() {
        let dev = Cpu::seed_from_u64(2);
        let layer = dev.build_module::<Linear<5, 3>, f64>();
        let h: Tensor<Rank2<8, 5>, f64, _> = dev.sample_normal();
        let t: Tensor<Rank2<8, 3>, f64, _> = dev.sample_normal();
        let dfdx = linear_gradients_dfdx(&layer, &h, &t);
        // δ = ∂L/∂y, then ∂L/∂W = δᵀ·h, ∂L/∂b = Σ δ over the batch, ∂L/∂h = δ·W.
        let y = h.clone().matmul(layer.weight.clone().permute()) + layer.bias.clone().broadcast();
        let delta = y - t;
        let dw = delta.clone().permute().matmul(h);
        let db = delta.clone().sum::<Rank1<3>, _>();
        let dh = delta.matmul(layer.weight.clone());
        for (ours, theirs) in [
            (dw.as_vec(), dfdx.w.as_vec()),
            (db.as_vec(), dfdx.b.as_vec()),
            (dh.as_vec(), dfdx.h.as_vec()),
        ] {
            assert!(
                relative_difference(&ours, &theirs) < 1e-12,
                "{ours:?} vs {theirs:?}"
            );
        }
    }

    #[test]
    fn a_wrong_shape_is_an_error_not_a_panic() {
        let mlp = Mlp::new(&[2, 8, 1], &mut StdRng::seed_from_u64(0)).unwrap();
        let err = mlp_gradients_dfdx(&mlp, &two_moons(4, 0.1, 0).unwrap()).unwrap_err();
        assert!(err.to_string().contains("[2, 16, 16, 1]"), "{err}");
    }

    #[test]
    fn relative_difference_is_scaled_by_the_largest_gradient() {
        assert_eq!(relative_difference(&[0.0, 2.0], &[0.0, 2.0]), 0.0);
        assert!((relative_difference(&[1e-17, 2.0], &[-1e-17, 2.0]) - 1e-17).abs() < 1e-30);
        assert!((relative_difference(&[1.0, 2.002], &[1.0, 2.0]) - 1e-3).abs() < 1e-12);
    }
}
