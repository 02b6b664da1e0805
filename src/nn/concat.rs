//! A U-Net's skip connection: two batches of feature maps stacked along the channels, as
//! one op. dfdx's `concat_along` copies (and, backward, adds) one value at a time through
//! generic strided indices on one thread; here each image is two contiguous copies, and
//! the images are shared among rayon's threads.

use super::op::{chunks_per_task, output_buffer, param, record, shape_error, values};
use super::residual::add_to;
use crate::Error;
use dfdx::prelude::*;
use rayon::prelude::*;

/// Feature maps with a run-time channel count, what [`concat_channels`] gives.
type AnyChannels<T> = Tensor<(usize, usize, usize, usize), f32, Cpu, T>;

/// `a`'s `A` channels then `b`'s `B`, image by image, recorded on both tapes; each
/// input's gradient is its channels' part of the output's. The channel count comes out as
/// a run-time size, since stable Rust cannot add two in a type. Notebook `04_convnets` §6
/// and notebook `09_diffusion` §5.
pub fn concat_channels<const A: usize, const B: usize, T>(
    a: Tensor<(usize, Const<A>, usize, usize), f32, Cpu, T>,
    b: Tensor<(usize, Const<B>, usize, usize), f32, Cpu, T>,
) -> Result<AnyChannels<T>, Error>
where
    T: Tape<f32, Cpu> + Merge<T>,
{
    let ([n, _, h, w], [bn, _, bh, bw]) = (a.shape().concrete(), b.shape().concrete());
    if (bn, bh, bw) != (n, h, w) {
        return Err(shape_error(
            "the second maps of a channel concatenation",
            format!("{n} images of {h}×{w}, as the first"),
            format!("{bn} images of {bh}×{bw}"),
        ));
    }
    let (a, a_tape) = a.try_contiguous()?.split_tape();
    let (b, b_tape) = b.try_contiguous()?.split_tape();
    let (a_len, b_len) = (A * h * w, B * h * w);
    let mut out = output_buffer(a.device(), n * (a_len + b_len))?;
    let (a_values, b_values) = (values(&a), values(&b));
    let parts = a_values.par_chunks(a_len).zip(b_values.par_chunks(b_len));
    out.par_chunks_mut(a_len + b_len)
        .zip(parts)
        .with_min_len(chunks_per_task(a_len + b_len))
        .for_each(|(image, (a, b))| {
            let (to_a, to_b) = image.split_at_mut(a_len);
            to_a.copy_from_slice(a);
            to_b.copy_from_slice(b);
        });
    let tape = a_tape.merge(b_tape);
    let shape = (n, A + B, h, w);
    Ok(record(
        &a,
        [param(&b)],
        tape,
        out,
        shape,
        move |g, ga, [gb]| {
            let ga = ga.par_chunks_mut(a_len).zip(gb.par_chunks_mut(b_len));
            ga.zip(g.par_chunks(a_len + b_len))
                .with_min_len(chunks_per_task(a_len + b_len))
                .for_each(|((ga, gb), g)| {
                    let (g_a, g_b) = g.split_at(a_len);
                    add_to(ga, g_a);
                    add_to(gb, g_b);
                });
        },
    )?)
}

/// The readable version of [`concat_channels`]: dfdx's `concat_along` the channel axis,
/// once both channel counts are run-time sizes.
pub fn concat_channels_reference<const A: usize, const B: usize, T>(
    a: Tensor<(usize, Const<A>, usize, usize), f32, Cpu, T>,
    b: Tensor<(usize, Const<B>, usize, usize), f32, Cpu, T>,
) -> AnyChannels<T>
where
    T: Tape<f32, Cpu> + Merge<T> + std::fmt::Debug,
{
    let a = a.realize::<(usize, usize, usize, usize)>();
    let b = b.realize::<(usize, usize, usize, usize)>();
    (a, b).concat_along(Axis::<1>)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_in_values_and_gradients() {
        let dev = Cpu::seed_from_u64(2);
        let a: Tensor<(usize, Const<2>, usize, usize), f32, Cpu> =
            dev.sample_normal_like(&(3, Const, 4, 5));
        let b: Tensor<(usize, Const<3>, usize, usize), f32, Cpu> =
            dev.sample_normal_like(&(3, Const, 4, 5));
        let r: AnyChannels<NoneTape> = dev.sample_normal_like(&(3, 5, 4, 5));
        let ours = concat_channels(a.leaky_trace(), b.leaky_trace()).unwrap();
        let theirs = concat_channels_reference(a.leaky_trace(), b.leaky_trace());
        assert_eq!(ours.shape().concrete(), [3, 5, 4, 5]);
        assert_eq!(ours.as_vec(), theirs.as_vec());
        let g = (ours * r.clone()).sum().backward();
        let e = (theirs * r).sum().backward();
        assert_eq!(g.get(&a).as_vec(), e.get(&a).as_vec());
        assert_eq!(g.get(&b).as_vec(), e.get(&b).as_vec());
    }

    #[test]
    fn maps_of_other_sizes_are_an_error_naming_both() {
        let dev = Cpu::default();
        let a: Tensor<(usize, Const<2>, usize, usize), f32, Cpu> =
            dev.zeros_like(&(3, Const, 4, 5));
        let b: Tensor<(usize, Const<1>, usize, usize), f32, Cpu> =
            dev.zeros_like(&(3, Const, 4, 4));
        let message = concat_channels(a, b).unwrap_err().to_string();
        assert!(
            message.contains("4×5") && message.contains("4×4"),
            "{message}"
        );
    }
}
