//! Where a sliding kernel's taps land on an image, and `im2col`: copying every patch a
//! convolution sees into the column of a matrix, so that the whole convolution becomes one
//! matrix product (Chellapilla, Puri & Simard, 2006). Shared by convolution, transposed
//! convolution and pooling.

use std::ops::Range;

/// A kernel sliding along one axis: `kernel` taps `dilation` apart, moved `stride` at a
/// time, over an input with `padding` zeros on each side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Window {
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
}

impl Window {
    /// Positions along an axis of `len` inputs, or `None` when not even one fits.
    pub fn out_len(&self, len: usize) -> Option<usize> {
        let span = self.dilation * (self.kernel - 1) + 1;
        (len + 2 * self.padding)
            .checked_sub(span)
            .map(|room| room / self.stride + 1)
    }

    /// The input index tap `tap` reads at output position `o` (may be in the padding).
    pub fn input_index(&self, o: usize, tap: usize) -> isize {
        (o * self.stride + tap * self.dilation) as isize - self.padding as isize
    }

    /// The inputs an undilated window at output position `o` covers, padding left out.
    pub fn span(&self, o: usize, in_len: usize) -> Range<usize> {
        debug_assert_eq!(self.dilation, 1, "pooling windows are not dilated");
        let start = self.input_index(o, 0);
        let end = (start + self.kernel as isize).clamp(0, in_len as isize) as usize;
        (start.max(0) as usize).min(end)..end
    }

    /// The output positions at which tap `tap` reads a real input, not padding.
    pub fn valid(&self, tap: usize, out_len: usize, in_len: usize) -> Range<usize> {
        let offset = (tap * self.dilation) as isize - self.padding as isize;
        let stride = self.stride as isize;
        let first = if offset >= 0 {
            0
        } else {
            (-offset + stride - 1) / stride
        };
        let end = (in_len as isize - offset + stride - 1).max(0) / stride;
        let end = (end as usize).min(out_len);
        (first as usize).min(end)..end
    }
}

/// A tap's index along one axis, and the output positions at which it reads a real pixel.
type Tap<'a> = (usize, &'a Range<usize>);

/// One image's planes (`channels × height × width`) seen through a square window, and the
/// `out_h × out_w` positions the window takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Plane {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub window: Window,
}

impl Plane {
    /// `None` when the window does not fit the image.
    pub fn new(channels: usize, height: usize, width: usize, window: Window) -> Option<Plane> {
        Some(Plane {
            channels,
            height,
            width,
            out_h: window.out_len(height)?,
            out_w: window.out_len(width)?,
            window,
        })
    }

    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Rows of the patch matrix: one per (channel, tap row, tap column).
    pub fn patch_len(&self) -> usize {
        self.channels * self.window.kernel * self.window.kernel
    }

    pub fn positions(&self) -> usize {
        self.out_h * self.out_w
    }

    /// Fills `cols` (`patch_len × positions`, row-major) with the patches of `image`;
    /// padding reads as zero.
    pub fn im2col(&self, image: &[f32], cols: &mut [f32]) {
        let (w, positions) = (self.window, self.positions());
        self.for_each_tap(|row, c, (ky, rows), (kx, columns)| {
            let cols_row = &mut cols[row * positions..][..positions];
            for (oy, out) in cols_row.chunks_exact_mut(self.out_w).enumerate() {
                if !rows.contains(&oy) {
                    out.fill(0.0);
                    continue;
                }
                let y = w.input_index(oy, ky) as usize;
                let line = &image[(c * self.height + y) * self.width..][..self.width];
                out[..columns.start].fill(0.0);
                out[columns.end..].fill(0.0);
                let x0 = w.input_index(columns.start, kx) as usize;
                let out = &mut out[columns.clone()];
                if w.stride == 1 {
                    out.copy_from_slice(&line[x0..x0 + out.len()]);
                } else {
                    // Indexed, not `step_by`, whose length costs a division per line.
                    let src = &line[x0..];
                    out.iter_mut()
                        .enumerate()
                        .for_each(|(j, o)| *o = src[j * w.stride]);
                }
            }
        });
    }

    /// The adjoint of [`Plane::im2col`]: adds every patch entry of `cols` back onto the
    /// pixel it was copied from (entries that came from padding are dropped).
    pub fn col2im(&self, cols: &[f32], image: &mut [f32]) {
        let (w, positions) = (self.window, self.positions());
        self.for_each_tap(|row, c, (ky, rows), (kx, columns)| {
            let cols_row = &cols[row * positions..][..positions];
            for oy in rows.clone() {
                let y = w.input_index(oy, ky) as usize;
                let line = &mut image[(c * self.height + y) * self.width..][..self.width];
                let src = &cols_row[oy * self.out_w..][columns.clone()];
                let x0 = w.input_index(columns.start, kx) as usize;
                if w.stride == 1 {
                    let dst = &mut line[x0..x0 + src.len()];
                    dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
                } else {
                    let dst = &mut line[x0..];
                    src.iter()
                        .enumerate()
                        .for_each(|(j, s)| dst[j * w.stride] += s);
                }
            }
        });
    }

    /// Calls `f(row, c, (ky, rows), (kx, columns))` for each row of the patch matrix, one
    /// per channel `c` and tap `(ky, kx)`, with the output rows and columns at which the tap
    /// reads a real pixel: worked out once per tap rather than per row, as they take
    /// divisions.
    fn for_each_tap(&self, mut f: impl FnMut(usize, usize, Tap, Tap)) {
        let (w, k) = (self.window, self.window.kernel);
        let ys: Vec<_> = (0..k)
            .map(|t| w.valid(t, self.out_h, self.height))
            .collect();
        let xs: Vec<_> = (0..k).map(|t| w.valid(t, self.out_w, self.width)).collect();
        let mut row = 0;
        for c in 0..self.channels {
            for (ky, rows) in ys.iter().enumerate() {
                for (kx, columns) in xs.iter().enumerate() {
                    f(row, c, (ky, rows), (kx, columns));
                    row += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(kernel: usize, stride: usize, padding: usize, dilation: usize) -> Window {
        Window {
            kernel,
            stride,
            padding,
            dilation,
        }
    }

    #[test]
    fn output_lengths_follow_the_usual_formula() {
        // ⌊(n + 2p − d(k − 1) − 1) / s⌋ + 1
        assert_eq!(window(3, 1, 0, 1).out_len(28), Some(26));
        assert_eq!(window(3, 2, 1, 1).out_len(28), Some(14));
        assert_eq!(window(5, 1, 2, 1).out_len(28), Some(28));
        assert_eq!(window(3, 1, 2, 2).out_len(7), Some(7));
        assert_eq!(window(5, 1, 0, 1).out_len(4), None);
    }

    #[test]
    fn valid_ranges_are_exactly_the_in_bounds_positions() {
        for (k, s, p, d) in [
            (3, 1, 1, 1),
            (3, 2, 1, 1),
            (3, 2, 2, 2),
            (5, 3, 2, 1),
            (2, 2, 0, 1),
        ] {
            let w = window(k, s, p, d);
            for len in 1..12 {
                let Some(out) = w.out_len(len) else { continue };
                for tap in 0..k {
                    let expected: Vec<usize> = (0..out)
                        .filter(|&o| (0..len as isize).contains(&w.input_index(o, tap)))
                        .collect();
                    let got: Vec<usize> = w.valid(tap, out, len).collect();
                    assert_eq!(got, expected, "k{k} s{s} p{p} d{d} len{len} tap{tap}");
                }
            }
        }
    }

    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        // <im2col(x), y> = <x, col2im(y)> for every x, y: the defining property of the
        // backward pass, checked on a strided, padded, dilated window.
        let plane = Plane::new(2, 7, 6, window(3, 2, 2, 2)).unwrap();
        let x: Vec<f32> = (0..plane.image_len())
            .map(|i| (i as f32 * 0.7).sin())
            .collect();
        let y: Vec<f32> = (0..plane.patch_len() * plane.positions())
            .map(|i| (i as f32 * 0.3).cos())
            .collect();
        let mut cols = vec![f32::NAN; y.len()];
        plane.im2col(&x, &mut cols);
        let mut back = vec![0.0; x.len()];
        plane.col2im(&y, &mut back);
        let lhs: f32 = cols.iter().zip(&y).map(|(a, b)| a * b).sum();
        let rhs: f32 = x.iter().zip(&back).map(|(a, b)| a * b).sum();
        assert!((lhs - rhs).abs() < 1e-3, "{lhs} vs {rhs}");
    }
}
