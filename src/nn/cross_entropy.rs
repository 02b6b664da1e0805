//! The mean cross-entropy of a language model's scores over the positions that have a
//! target, as one op, and [`masked_cross_entropy_reference`], the same from dfdx's
//! log-softmax. Notebook `05_attention` §6–§7 trains with it.

use super::op::{record, shape_error, values};
use crate::Error;
use dfdx::prelude::*;

/// Scores over a vocabulary of `V` tokens at every position: (batch, sequence, V).
type Logits<const V: usize, T> = Tensor<(usize, usize, Const<V>), f32, Cpu, T>;

/// The mean cross-entropy of `logits` (batch, seq, V) over the positions that have a
/// target; `targets` holds one entry per position, `None` where nothing is predicted.
///
/// One recorded op: per position `log Σ exp(x) − x[target]`, computed around the row's
/// maximum so that `exp` cannot overflow; its gradient is `(softmax(x) − one_hot(target))`
/// over the number of targets, and zero where there is none. dfdx's log-softmax, one-hot
/// product and sum ([`masked_cross_entropy_reference`]) pass over the logits eight times.
/// Notebook `05_attention` §6–§7.
pub fn masked_cross_entropy<const V: usize, T: Tape<f32, Cpu>>(
    logits: Logits<V, T>,
    targets: &[Option<usize>],
) -> Result<Tensor<Rank0, f32, Cpu, T>, Error> {
    let counted = check_targets::<V>(logits.shape(), targets)?;
    let (logits, tape) = logits.try_contiguous()?.split_tape();
    let mut softmax = values(&logits);
    let mut total = 0.0f64;
    for (row, target) in softmax.chunks_exact_mut(V).zip(targets) {
        let Some(target) = *target else { continue };
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        let picked = row[target];
        row.iter_mut().for_each(|x| *x = (*x - max).exp());
        let sum: f32 = row.iter().sum();
        row.iter_mut().for_each(|p| *p /= sum);
        total += (max + sum.ln() - picked) as f64;
    }
    let targets = targets.to_vec();
    let loss = vec![(total / counted as f64) as f32];
    Ok(record(&logits, [], tape, loss, (), move |g, gx, []| {
        let scale = g[0] / counted;
        let rows = gx.chunks_exact_mut(V).zip(softmax.chunks_exact(V));
        for ((gx, p), target) in rows.zip(&targets) {
            let Some(target) = *target else { continue };
            gx.iter_mut().zip(p).for_each(|(gx, p)| *gx += scale * p);
            gx[target] -= scale;
        }
    })?)
}

/// The readable version of [`masked_cross_entropy`], from dfdx's ops: the log-softmax of
/// every row times the one-hot targets, each −1/(number of targets), summed. The same
/// arguments and result. Notebook `05_attention` §6.
pub fn masked_cross_entropy_reference<const V: usize, T: Tape<f32, Cpu>>(
    logits: Logits<V, T>,
    targets: &[Option<usize>],
) -> Result<Tensor<Rank0, f32, Cpu, T>, Error> {
    let counted = check_targets::<V>(logits.shape(), targets)?;
    let mut picks = vec![0.0; targets.len() * V];
    for (row, target) in targets.iter().enumerate() {
        if let Some(t) = target {
            picks[row * V + t] = -1.0 / counted;
        }
    }
    let picks = logits.device().tensor_from_vec(picks, *logits.shape());
    Ok((logits.log_softmax::<Axis<2>>() * picks).sum())
}

/// The number of targets (at least 1, the mean's divisor), after checking there is one
/// entry per position, each below `V`.
fn check_targets<const V: usize>(
    &(b, s, _): &(usize, usize, Const<V>),
    targets: &[Option<usize>],
) -> Result<f32, Error> {
    if targets.len() != b * s || targets.iter().flatten().any(|&t| t >= V) {
        return Err(shape_error(
            "the targets",
            format!("{} entries, each below {V}", b * s),
            format!("{} entries", targets.len()),
        ));
    }
    Ok(targets.iter().flatten().count().max(1) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::assert_close_f32;

    #[test]
    fn positions_without_a_target_do_not_count() {
        let dev = Cpu::default();
        let logits: Logits<3, NoneTape> =
            dev.tensor_from_vec(vec![0.0, 0.0, 0.0, 5.0, 0.0, 0.0], (1, 2, Const::<3>));
        let both = masked_cross_entropy(logits.clone(), &[Some(0), Some(0)]).unwrap();
        let first = masked_cross_entropy(logits, &[Some(0), None]).unwrap();
        assert!((first.array() - 3f32.ln()).abs() < 1e-5);
        assert!(both.array() < first.array());
    }

    #[test]
    fn matches_the_reference_in_value_and_gradient() {
        let dev = Cpu::seed_from_u64(0);
        let logits: Logits<5, NoneTape> = dev.sample_normal_like(&(2, 3, Const));
        let logits = logits * 4.0;
        let targets = [Some(4), None, Some(0), Some(2), Some(2), None];
        let ours = masked_cross_entropy(logits.leaky_trace(), &targets).unwrap();
        let theirs = masked_cross_entropy_reference(logits.leaky_trace(), &targets).unwrap();
        assert_close_f32("loss", &[ours.array()], &[theirs.array()], 1e-5);
        let (ours, theirs) = (ours.backward(), theirs.backward());
        let (ours, theirs) = (ours.get(&logits).as_vec(), theirs.get(&logits).as_vec());
        assert_close_f32("∂/∂logits", &ours, &theirs, 1e-6);
    }
}
