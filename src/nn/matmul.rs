//! The one matrix product behind every convolution here: a safe view over the `gemm`
//! crate, whose kernels take raw pointers and strides.

use gemm::Parallelism;

/// A read-only matrix: element (i, j) is `data[i * row_stride + j * col_stride]`.
/// Transposing is swapping the strides, so no product ever copies its operands.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Mat<'a> {
    /// `rows × cols` stored row after row, the layout of every buffer in this module.
    pub(crate) fn rows(data: &'a [f32], rows: usize, cols: usize) -> Mat<'a> {
        assert_eq!(data.len(), rows * cols, "a {rows}x{cols} matrix");
        Mat {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    pub(crate) fn t(self) -> Mat<'a> {
        Mat {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }
}

/// `out = a · b`, or `out += a · b` when `accumulate`; `out` is row-major `a.rows × b.cols`.
/// `threads` > 1 splits this one product across rayon's pool; callers that already run one
/// product per thread pass 1.
pub(crate) fn matmul(out: &mut [f32], a: Mat, b: Mat, accumulate: bool, threads: usize) {
    assert_eq!(a.cols, b.rows, "inner dimensions of a matrix product");
    assert_eq!(out.len(), a.rows * b.cols, "output of a matrix product");
    if out.is_empty() {
        return;
    }
    let parallelism = if threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    // SAFETY: the asserts above and `Mat::rows` bound every index the kernel touches by the
    // lengths of `out`, `a.data` and `b.data`; `out` is borrowed mutably, so it aliases neither.
    unsafe {
        gemm::gemm(
            a.rows,
            b.cols,
            a.cols,
            out.as_mut_ptr(),
            1,
            b.cols as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        out
    }

    #[test]
    fn products_and_transposes_match_the_definition() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        let expected = naive(&a, &b, m, k, n);
        let mut out = vec![0.0; m * n];
        matmul(&mut out, Mat::rows(&a, m, k), Mat::rows(&b, k, n), false, 1);
        for (x, y) in out.iter().zip(&expected) {
            assert!((x - y).abs() < 1e-5);
        }
        // (bᵀ aᵀ)ᵀ = a b: the transposed views, accumulated onto a copy of the result.
        let mut twice = vec![0.0; n * m];
        for threads in [1, 2] {
            matmul(
                &mut twice,
                Mat::rows(&b, k, n).t(),
                Mat::rows(&a, m, k).t(),
                true,
                threads,
            );
        }
        for i in 0..m {
            for j in 0..n {
                assert!((twice[j * m + i] - 2.0 * expected[i * n + j]).abs() < 1e-4);
            }
        }
    }
}
