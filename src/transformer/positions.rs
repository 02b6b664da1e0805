//! Taught in notebook `05_attention` §4; `06_embeddings` §6 builds BERT from it.
//!
//! Positional encodings. Attention itself ignores order (permute
//! the keys and values together and the output is the same), so the position of each token
//! must be added to its embedding.

use super::Seqs;
use crate::Error;
#[cfg(test)]
use dfdx::nn::builders as builder;
use dfdx::nn::modules::Embedding;
use dfdx::prelude::*;

/// How a model learns where each token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Positions {
    /// Nothing: the model sees a bag of tokens.
    None,
    /// The fixed sines and cosines of Vaswani et al. (2017, §3.5), defined at every position.
    Sinusoidal,
    /// A trained vector per position (as in BERT and GPT), defined only up to the table's
    /// length and trained only at the positions the training sequences reach.
    Learned,
}

impl Positions {
    pub const ALL: [Positions; 3] = [Positions::None, Positions::Sinusoidal, Positions::Learned];

    pub fn name(&self) -> &'static str {
        match self {
            Positions::None => "no positions",
            Positions::Sinusoidal => "sinusoidal",
            Positions::Learned => "learned",
        }
    }
}

/// The sinusoidal encoding, `n` positions × `m` dimensions row-major:
/// PE(p, 2i) = sin(p / 10000^(2i/m)), PE(p, 2i+1) = cos(p / 10000^(2i/m)). Each pair of
/// dimensions is a clock at its own frequency, so PE(p + k) is a rotation of PE(p).
pub fn sinusoidal(n: usize, m: usize) -> Vec<f32> {
    let mut pe = vec![0.0f32; n * m];
    for p in 0..n {
        for i in 0..m {
            let pair = (i / 2 * 2) as f64;
            let angle = p as f64 / 10000f64.powf(pair / m as f64);
            pe[p * m + i] = if i % 2 == 0 { angle.sin() } else { angle.cos() } as f32;
        }
    }
    pe
}

/// Adds positional encodings to token embeddings `x` (batch, n, M): none, the sinusoids
/// ([`add_sinusoidal`]) or rows of the learned `table` ([`add_learned`]).
pub fn add_positions<const P: usize, const M: usize, T: Tape<f32, Cpu> + Merge<T>>(
    x: Seqs<M, T>,
    kind: Positions,
    table: &Embedding<P, M, f32, Cpu>,
) -> Result<Seqs<M, T>, Error> {
    match kind {
        Positions::None => Ok(x),
        Positions::Sinusoidal => add_sinusoidal(x),
        Positions::Learned => add_learned(x, table),
    }
}

/// `x` (batch, n, M) plus the sinusoidal encoding of positions `0..n`.
pub fn add_sinusoidal<const M: usize, T: Tape<f32, Cpu> + Merge<T>>(
    x: Seqs<M, T>,
) -> Result<Seqs<M, T>, Error> {
    let shape = *x.shape();
    let n = shape.1;
    let pe: Tensor<(usize, Const<M>), f32, Cpu> = x
        .device()
        .tensor_from_vec(sinusoidal(n, M), (n, Const::<M>));
    Ok(x.try_add(pe.try_broadcast_like::<_, Axis<0>>(&shape)?)?)
}

/// `x` (batch, n, M) plus rows `0..n` of the learned `table`, which has `P` rows: a longer
/// sequence is an error, there is nothing to add for its later positions.
pub fn add_learned<const P: usize, const M: usize, T: Tape<f32, Cpu> + Merge<T>>(
    x: Seqs<M, T>,
    table: &Embedding<P, M, f32, Cpu>,
) -> Result<Seqs<M, T>, Error> {
    let shape = *x.shape();
    let n = shape.1;
    if n > P {
        return Err(Error::InvalidArgument {
            what: "a sequence for learned positions",
            expected: "no longer than the position table",
            got: format!("{n} tokens for a table of {P}"),
        });
    }
    let at: Tensor<(usize,), usize, Cpu> = x.device().tensor_from_vec((0..n).collect(), (n,));
    // Rows 0..n of the table, (n, M), on `x`'s tape so the table learns.
    let pe = table.weight.retaped::<T>().try_gather(at)?;
    Ok(x.try_add(pe.try_broadcast_like::<_, Axis<0>>(&shape)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sinusoids_start_at_sin_0_and_cos_0_and_stay_bounded() {
        let pe = sinusoidal(50, 8);
        assert_eq!(&pe[..4], &[0.0, 1.0, 0.0, 1.0]);
        assert!(pe.iter().all(|v| v.abs() <= 1.0));
    }

    #[test]
    fn learned_positions_refuse_sequences_longer_than_the_table() {
        let dev = Cpu::default();
        let table = dev.build_module::<builder::Embedding<4, 8>, f32>();
        let x: Seqs<8> = dev.zeros_like(&(1, 5, Const::<8>));
        assert!(add_positions(x, Positions::Learned, &table).is_err());
    }
}
