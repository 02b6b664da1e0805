//! Feature-wise linear modulation (FiLM; Perez, Strub, de Vries, Dumoulin & Courville,
//! 2018) as one op: each image's channels shifted, and optionally scaled, by values of
//! its own, how a diffusion U-Net tells every block the time and the condition. dfdx
//! broadcasts the `(batch, channels)` values over the pixels and adds (and multiplies)
//! through its generic kernels, one strided index per value on one thread, and sums the
//! gradients back the same way; here each pass is a loop per channel plane, shared among
//! rayon's threads.

use super::channels::Channels;
use super::op::{output_buffer, param, record, shape_error, values};
use super::residual::add_to;
use super::Images;
use crate::Error;
use dfdx::prelude::*;

/// Per-image channel values, one row of `C` per image.
pub type PerChannel<const C: usize, T> = Tensor<(usize, Const<C>), f32, Cpu, T>;

/// `(maps[n][c] + shift[n][c]) · gain[n][c]` at every pixel of channel `c` of image `n`,
/// or `maps[n][c] + shift[n][c]` without a `gain`, recorded on all the inputs' tapes. The
/// gradients: `∂L/∂maps = g·gain`, `∂L/∂shift[n][c] = gain[n][c]·Σ g` and
/// `∂L/∂gain[n][c] = Σ g·(maps + shift[n][c])`, the sums over the plane's pixels.
/// Notebook `09_diffusion` §5 (the time reaching each block of the U-Net) and
/// `10_guided_latent_diffusion` §2–4 (the condition's shift and scale).
pub fn film<const C: usize, T: Tape<f32, Cpu> + Merge<T>>(
    maps: Images<usize, Const<C>, T>,
    shift: PerChannel<C, T>,
    gain: Option<PerChannel<C, T>>,
) -> Result<Images<usize, Const<C>, T>, Error> {
    let [batch, _, h, w] = maps.shape().concrete();
    for (what, rows) in [("the shifts", Some(&shift)), ("the gains", gain.as_ref())] {
        if let Some(rows) = rows.filter(|r| r.shape().0 != batch) {
            let (expected, got) = (format!("{batch} rows, one per image"), rows.shape().0);
            return Err(shape_error(what, expected, format!("{got} rows")));
        }
    }
    let layout = Channels {
        channels: C,
        pixels: h * w,
    };
    let (x, x_tape) = maps.try_contiguous()?.split_tape();
    let (shift, shift_tape) = shift.split_tape();
    let (x_values, s) = (values(&x), values(&shift));
    let mut out = output_buffer(x.device(), x_values.len())?;
    let shape = *x.shape();
    let tape = x_tape.merge(shift_tape);
    let Some(gain) = gain else {
        layout.add_map(&x_values, &x_values, &mut out, |n, c| {
            let s = s[n * C + c];
            move |x, _| x + s
        });
        return Ok(record(
            &x,
            [param(&shift)],
            tape,
            out,
            shape,
            move |g, gx, [gs]| {
                add_to(gx, g);
                let sums = layout.image_sums(g, g, |_, _| |g, _| [g]);
                for (gs, [sum]) in gs.iter_mut().zip(sums.into_iter().flatten()) {
                    *gs += sum as f32;
                }
            },
        )?);
    };
    let (gain, gain_tape) = gain.split_tape();
    let k = values(&gain);
    layout.add_map(&x_values, &x_values, &mut out, |n, c| {
        let (s, k) = (s[n * C + c], k[n * C + c]);
        move |x, _| (x + s) * k
    });
    let tape = tape.merge(gain_tape);
    let params = [param(&shift), param(&gain)];
    Ok(record(
        &x,
        params,
        tape,
        out,
        shape,
        move |g, gx, [gs, gk]| {
            layout.add_map(g, g, gx, |n, c| {
                let k = k[n * C + c];
                move |g, _| g * k
            });
            let sums = layout.image_sums(g, &x_values, |_, _| |g, x| [g, g * x]);
            for (i, [g, gx]) in sums.into_iter().flatten().enumerate() {
                gs[i] += (k[i] as f64 * g) as f32;
                gk[i] += (gx + s[i] as f64 * g) as f32;
            }
        },
    )?)
}

/// The readable version of [`film`]: dfdx's broadcasts of the per-image values over the
/// pixels, a sum and a product, as notebook `09_diffusion` §5 writes the time's shift.
pub fn film_reference<const C: usize, T: Tape<f32, Cpu> + Merge<T>>(
    maps: Images<usize, Const<C>, T>,
    shift: PerChannel<C, T>,
    gain: Option<PerChannel<C, T>>,
) -> Images<usize, Const<C>, T> {
    let shape = *maps.shape();
    let shifted = maps + shift.broadcast_like::<_, Axes2<2, 3>>(&shape);
    match gain {
        Some(gain) => shifted * gain.broadcast_like::<_, Axes2<2, 3>>(&shape),
        None => shifted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::assert_close_f32;

    type Maps = Images<usize, Const<3>, NoneTape>;

    /// Both versions on the same inputs, with and without a gain: outputs and the
    /// gradients of a weighted sum of them, for all three inputs.
    fn compare(with_gain: bool) {
        let dev = Cpu::seed_from_u64(1);
        let x: Maps = dev.sample_normal_like(&(4, Const, 5, 6));
        let r: Maps = dev.sample_normal_like(&(4, Const, 5, 6));
        let s: PerChannel<3, NoneTape> = dev.sample_normal_like(&(4, Const));
        let k: PerChannel<3, NoneTape> = dev.sample_normal_like(&(4, Const));
        let run = |fused: bool| {
            let gain = with_gain.then(|| k.leaky_trace());
            let (x, s) = (x.leaky_trace(), s.leaky_trace());
            let out = if fused {
                film(x, s, gain).unwrap()
            } else {
                film_reference(x, s, gain)
            };
            let values = out.as_vec();
            (values, (out * r.clone()).sum().backward())
        };
        let ((ours, g), (theirs, e)) = (run(true), run(false));
        assert_close_f32("film", &ours, &theirs, 1e-6);
        assert_close_f32("∂/∂maps", &g.get(&x).as_vec(), &e.get(&x).as_vec(), 1e-6);
        assert_close_f32("∂/∂shift", &g.get(&s).as_vec(), &e.get(&s).as_vec(), 1e-5);
        if with_gain {
            assert_close_f32("∂/∂gain", &g.get(&k).as_vec(), &e.get(&k).as_vec(), 1e-5);
        }
    }

    #[test]
    fn a_shift_matches_the_reference_in_values_and_gradients() {
        compare(false);
    }

    #[test]
    fn a_shift_and_gain_match_the_reference_in_values_and_gradients() {
        compare(true);
    }

    #[test]
    fn a_row_count_other_than_the_batch_is_an_error_naming_both() {
        let dev = Cpu::default();
        let x: Maps = dev.zeros_like(&(4, Const, 2, 2));
        let s: PerChannel<3, NoneTape> = dev.zeros_like(&(3, Const));
        let message = film(x, s, None).unwrap_err().to_string();
        assert!(
            message.contains("4 rows") && message.contains("3 rows"),
            "{message}"
        );
    }
}
