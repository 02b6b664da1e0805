//! §2: convolution arithmetic. How stride, padding and dilation set a convolution's output
//! size (Dumoulin & Visin, 2016, "A guide to convolution arithmetic"), checked against the
//! op itself, and how dilation widens the receptive field without more weights (Yu &
//! Koltun, 2016).

use crate::nn::{conv2d, ConvSpec};
use crate::Error;
use dfdx::prelude::*;

/// The output size along one axis: ⌊(n + 2p − d·(k − 1) − 1) / s⌋ + 1 for input size `n`,
/// kernel size `k`, and the spec's stride `s`, padding `p` and dilation `d`; `None` when
/// the dilated kernel does not fit in the padded input.
pub fn output_size(n: usize, k: usize, spec: ConvSpec) -> Option<usize> {
    let span = spec.dilation * (k.max(1) - 1) + 1;
    let padded = n + 2 * spec.padding;
    (padded >= span && spec.stride > 0).then(|| (padded - span) / spec.stride + 1)
}

/// One setting of the grid: what the formula says and what the op returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SizeCheck {
    pub input: usize,
    pub kernel: usize,
    pub spec: ConvSpec,
    pub formula: usize,
    pub measured: usize,
}

/// Runs [`conv2d`] on an `n × n` image for every input size in {7, 12, 28}, kernel in
/// {1, 3, 5}, stride, padding − 0 to 2 − and dilation in {1, 2, 3} where the kernel fits,
/// and records the output's height next to [`output_size`].
pub fn size_grid() -> Result<Vec<SizeCheck>, Error> {
    let dev = Cpu::default();
    let mut checks = Vec::new();
    for input in [7, 12, 28] {
        for kernel in [1, 3, 5] {
            for stride in 1..=3 {
                for padding in 0..=2 {
                    for dilation in 1..=3 {
                        let spec = ConvSpec::default()
                            .stride(stride)
                            .padding(padding)
                            .dilation(dilation);
                        let Some(formula) = output_size(input, kernel, spec) else {
                            continue;
                        };
                        let x = dev.zeros_like(&(1, 1, input, input));
                        let w = dev.zeros_like(&(1, 1, kernel, kernel));
                        let [_, _, measured, _] = conv2d(x, w, spec)?.shape().concrete();
                        checks.push(SizeCheck {
                            input,
                            kernel,
                            spec,
                            formula,
                            measured,
                        });
                    }
                }
            }
        }
    }
    Ok(checks)
}

/// The receptive field of the centre pixel after a stack of 3×3 convolutions (all weights
/// 1, stride 1, padding = dilation so the size stays `size × size`), one per entry of
/// `dilations`: how much each input pixel moves that output, the gradient of the output
/// with respect to the input, scaled to a maximum of 1. Row-major `size × size`.
pub fn receptive_field(dilations: &[usize], size: usize) -> Result<Vec<f32>, Error> {
    let dev = Cpu::default();
    let x = dev.zeros_like(&(1, 1, size, size));
    let mut y = x.leaky_trace();
    for &d in dilations {
        let w = dev.ones_like(&(1, 1, 3, 3));
        y = conv2d(y, w, ConvSpec::default().padding(d).dilation(d))?;
    }
    let mut centre = vec![0.0; size * size];
    centre[size / 2 * size + size / 2] = 1.0;
    let pick = dev.tensor_from_vec(centre, (1, 1, size, size));
    let grads = (y * pick).sum().backward();
    let field = grads.get(&x).as_vec();
    let max = field
        .iter()
        .fold(0f32, |m, &v| m.max(v))
        .max(f32::MIN_POSITIVE);
    Ok(field.iter().map(|v| v / max).collect())
}

/// The width of the non-zero part of the middle row of a [`receptive_field`].
pub fn measured_span(field: &[f32], size: usize) -> usize {
    let row = &field[size / 2 * size..][..size];
    match (
        row.iter().position(|&v| v > 0.0),
        row.iter().rposition(|&v| v > 0.0),
    ) {
        (Some(first), Some(last)) => last - first + 1,
        _ => 0,
    }
}

/// The receptive field's width by the formula: 1 + Σ d·(k − 1) for 3×3 kernels.
pub fn span(dilations: &[usize]) -> usize {
    1 + dilations.iter().map(|d| 2 * d).sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_formula_matches_the_op_and_known_cases() {
        let spec = ConvSpec::default();
        assert_eq!(output_size(28, 5, spec), Some(24));
        assert_eq!(output_size(28, 5, spec.padding(2)), Some(28));
        assert_eq!(output_size(7, 3, spec.stride(2)), Some(3));
        assert_eq!(output_size(5, 3, spec.dilation(3)), None);
        let grid = size_grid().unwrap();
        assert!(grid.len() > 150);
        assert!(grid.iter().all(|c| c.formula == c.measured));
    }

    #[test]
    fn dilation_widens_the_receptive_field() {
        for dilations in [vec![1, 1, 1], vec![1, 2, 4]] {
            let field = receptive_field(&dilations, 31).unwrap();
            assert_eq!(measured_span(&field, 31), span(&dilations));
        }
        assert_eq!(span(&[1, 2, 4]), 15);
    }
}
