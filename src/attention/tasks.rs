//! The toy sequence tasks of notebook `05_attention` §3–§6: random digit strings whose
//! labels need a particular kind of look-up, generated fresh for every batch from a seed.

use rand::{rngs::StdRng, Rng};

/// The digits 0–9 are tokens 0–9; [`BOS`] starts a decoder's input.
pub const DIGITS: usize = 10;
/// The start-of-sequence token.
pub const BOS: usize = 10;
/// The toy vocabulary: the ten digits and [`BOS`] (and one spare id).
pub const VOCAB: usize = 12;

/// A batch of `batch` sequences of `len` tokens, each position with its target (`None`
/// where nothing is predicted), row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub inputs: Vec<usize>,
    pub targets: Vec<Option<usize>>,
    pub batch: usize,
    pub len: usize,
}

/// The tasks a [`super::tagger::Tagger`] learns: a label for every position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// The label at `i` is 1 if `x[i-1] > x[i-3]`, else 0 (indices wrap around): two
    /// look-ups at once, and which is which matters (§3). One head that attends to both
    /// sees their average, which is the same for `(a, b)` and `(b, a)`.
    TwoLookups,
    /// The label at `i ≥ 1` is the previous token `x[i-1]`: impossible without knowing
    /// the order (§4).
    PreviousToken,
}

impl Task {
    /// `batch` random digit strings of length `len` with their labels.
    pub fn batch(&self, batch: usize, len: usize, rng: &mut StdRng) -> Batch {
        let inputs: Vec<usize> = (0..batch * len).map(|_| rng.gen_range(0..DIGITS)).collect();
        let targets = inputs
            .chunks(len)
            .flat_map(|x| (0..len).map(move |i| self.label(x, i)))
            .collect();
        Batch {
            inputs,
            targets,
            batch,
            len,
        }
    }

    fn label(&self, x: &[usize], i: usize) -> Option<usize> {
        let n = x.len();
        match self {
            Task::TwoLookups => Some(usize::from(x[(i + n - 1) % n] > x[(i + n - 3) % n])),
            Task::PreviousToken => (i > 0).then(|| x[i - 1]),
        }
    }
}

/// The best accuracy on `batch` of a labeller that knows each token and the bag of tokens
/// around it but not their order: for the previous token, guessing the most frequent of
/// the other tokens in the sequence (§4's "chance level" for a model without positions).
pub fn order_blind_ceiling(batch: &Batch) -> f32 {
    let mut right = 0.0;
    let mut counted = 0usize;
    for (x, t) in batch
        .inputs
        .chunks(batch.len)
        .zip(batch.targets.chunks(batch.len))
    {
        for (i, target) in t.iter().enumerate() {
            let Some(target) = target else { continue };
            let mut counts = [0usize; DIGITS];
            for (j, &tok) in x.iter().enumerate() {
                if j != i {
                    counts[tok] += 1;
                }
            }
            let best = counts.iter().copied().max().unwrap_or(0);
            // Ties are broken at random: the expected share of right guesses.
            let tied = counts.iter().filter(|&&c| c == best).count();
            if counts[*target] == best {
                right += 1.0 / tied as f32;
            }
            counted += 1;
        }
    }
    right / counted.max(1) as f32
}

/// Digit strings and their reversals for the encoder-decoder of §6: `batch` strings of
/// `len` digits (sources, row-major) and their reversals (targets).
pub fn reversals(batch: usize, len: usize, rng: &mut StdRng) -> (Vec<usize>, Vec<usize>) {
    let sources: Vec<usize> = (0..batch * len).map(|_| rng.gen_range(0..DIGITS)).collect();
    let targets = sources
        .chunks(len)
        .flat_map(|s| s.iter().rev().copied())
        .collect();
    (sources, targets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn labels_follow_their_rules() {
        let x = [3, 1, 4, 1, 5];
        assert_eq!(Task::TwoLookups.label(&x, 0), Some(1));
        assert_eq!(Task::TwoLookups.label(&x, 2), Some(0));
        assert_eq!(Task::PreviousToken.label(&x, 0), None);
        assert_eq!(Task::PreviousToken.label(&x, 3), Some(4));
    }

    #[test]
    fn an_order_blind_guess_is_far_from_perfect() {
        let mut rng = StdRng::seed_from_u64(0);
        let ceiling = order_blind_ceiling(&Task::PreviousToken.batch(200, 8, &mut rng));
        assert!(ceiling > 0.1 && ceiling < 0.4, "{ceiling}");
    }

    #[test]
    fn reversals_reverse() {
        let mut rng = StdRng::seed_from_u64(0);
        let (s, t) = reversals(2, 3, &mut rng);
        assert_eq!(t[..3], [s[2], s[1], s[0]]);
    }
}
