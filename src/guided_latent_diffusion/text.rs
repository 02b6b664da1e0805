//! §3: prompts. A digit is asked for in words ("a handwritten seven", "the number seven
//! written by hand"); a small transformer encoder (notebook `05_attention`'s blocks) reads
//! the words, and the mean of its outputs conditions the denoiser, trained together with
//! it as GLIDE trains its text transformer. Some phrasings are held out of training, so
//! that following them is a test of reading, not of remembering.

use super::Prompt;
use crate::denoising::unet::TIME;
use crate::runtime::device;
use crate::transformer::model::TokenModel;
use crate::transformer::scaled::padding_mask;
use crate::Error;
use dfdx::nn::modules::Linear;
use dfdx::prelude::*;
use num_traits::Float;
use rand_distr::uniform::SampleUniform;
use std::fmt::Debug;

/// The vocabulary: the ten digits' names, then the words of the phrasings. A prompt's
/// ids are its words' places here; `∅` is [`NOTHING`].
pub const WORDS: [&str; 21] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "a",
    "an",
    "the",
    "digit",
    "number",
    "handwritten",
    "written",
    "by",
    "hand",
    "picture",
    "of",
];
/// The token of the empty prompt `∅`, also the padding after a short prompt.
pub const NOTHING: usize = WORDS.len();
/// The vocabulary with [`NOTHING`].
pub const VOCABULARY: usize = WORDS.len() + 1;
/// The longest prompt, in words.
pub const LONGEST: usize = 8;
/// The encoder's width.
pub const WIDTH: usize = 32;

/// The phrasings a model is trained on; `{}` is the digit's name.
pub const TRAINING_PHRASINGS: [&str; 8] = [
    "{}",
    "a {}",
    "the digit {}",
    "{}, handwritten",
    "a handwritten {}",
    "the number {}",
    "a picture of a {}",
    "{} written by hand",
];
/// Phrasings never seen in training: the same words in new combinations.
pub const HELD_OUT_PHRASINGS: [&str; 3] = [
    "the handwritten {}",
    "a picture of the digit {}",
    "the number {} written by hand",
];

/// `phrasing` with `{}` replaced by the name of `digit` (and "a" as "an" before "eight").
pub fn phrase(phrasing: &str, digit: usize) -> String {
    let text = phrasing.replace("{}", WORDS[digit.min(9)]);
    text.replace("a eight", "an eight")
}

/// The ids of `text`'s words (lower case, commas ignored); an error names a word outside
/// [`WORDS`] or a prompt longer than [`LONGEST`].
pub fn tokenize(text: &str) -> Result<Prompt, Error> {
    let ids = text
        .to_lowercase()
        .replace(',', " ")
        .split_whitespace()
        .map(|word| {
            WORDS
                .iter()
                .position(|w| *w == word)
                .ok_or_else(|| Error::InvalidArgument {
                    what: "a word of a prompt",
                    expected: "one of the vocabulary (text::WORDS)",
                    got: word.to_owned(),
                })
        })
        .collect::<Result<Prompt, Error>>()?;
    check_length(&ids)?;
    Ok(ids)
}

fn check_length(ids: &Prompt) -> Result<(), Error> {
    if ids.is_empty() || ids.len() > LONGEST {
        return Err(Error::InvalidArgument {
            what: "a prompt",
            expected: "1 to 8 words",
            got: format!("{} words", ids.len()),
        });
    }
    Ok(())
}

/// For each digit, its prompts in every one of `phrasings`, tokenized: `[digit][phrasing]`.
pub fn prompts_for(phrasings: &[&str]) -> Result<Vec<Vec<Prompt>>, Error> {
    (0..10)
        .map(|digit| {
            phrasings
                .iter()
                .map(|p| tokenize(&phrase(p, digit)))
                .collect()
        })
        .collect()
}

type Body<E, D> = TokenModel<VOCABULARY, LONGEST, 1, WIDTH, 4, 64, E, D>;

/// One pre-norm transformer block over the prompt's words (token and learned position
/// embeddings, 4 heads of 8, feed-forward 64), the mean of its outputs over the words,
/// projected to the U-Net's [`TIME`] width. The block model's language-model head is not
/// used. Notebook `10_guided_latent_diffusion` §3.
#[derive(Clone, Debug)]
pub struct TextEncoder<E: Dtype = f32, D: Storage<E> = Cpu> {
    pub body: Body<E, D>,
    pub project: Linear<WIDTH, TIME, E, D>,
}

impl TextEncoder {
    /// Weights drawn from `seed`.
    pub fn new(seed: u64) -> TextEncoder {
        let dev = device(seed);
        TextEncoder {
            body: TokenModel::new(&dev),
            project: dev.build_module::<dfdx::nn::builders::Linear<WIDTH, TIME>, f32>(),
        }
    }
}

impl super::conditional::Encoder for TextEncoder {
    fn null(&self) -> Prompt {
        vec![NOTHING]
    }

    fn check(&self, prompts: &[Prompt]) -> Result<(), Error> {
        for prompt in prompts {
            check_length(prompt)?;
            if let Some(bad) = prompt.iter().find(|&&id| id >= VOCABULARY) {
                return Err(Error::InvalidArgument {
                    what: "a token of a prompt",
                    expected: "an id below the vocabulary's 22",
                    got: bad.to_string(),
                });
            }
        }
        Ok(())
    }

    fn encode<T: Tape<f32, Cpu> + Merge<T> + Debug>(
        &self,
        prompts: &[Prompt],
        tape: T,
    ) -> Tensor<(usize, Const<TIME>), f32, Cpu, T> {
        let n = prompts.len();
        let lengths: Vec<usize> = prompts.iter().map(Vec::len).collect();
        let len = lengths.iter().copied().max().unwrap_or(1);
        let mut ids = vec![NOTHING; n * len];
        let mut weights = vec![0.0f32; n * len];
        for (i, prompt) in prompts.iter().enumerate() {
            ids[i * len..][..prompt.len()].copy_from_slice(prompt);
            weights[i * len..][..prompt.len()].fill(1.0 / prompt.len() as f32);
        }
        let dev = self.project.weight.device().clone();
        let ids = dev.tensor_from_vec(ids, (n, len)).put_tape(tape);
        let mask = padding_mask(&lengths, len, len).expect("lengths within the padded length");
        let words = self
            .body
            .hidden(ids, Some(&mask))
            .expect("shapes made to match");
        let words = self.body.norm.forward(words);
        let shape = *words.shape();
        let weights = dev
            .tensor_from_vec(weights, (n, len))
            .retaped::<T>()
            .broadcast_like::<_, Axis<2>>(&shape);
        let mean = (words * weights).sum::<(usize, Const<WIDTH>), Axis<1>>();
        self.project.forward(mean)
    }
}

/// A batch of prompts and where each should land.
struct Placed {
    prompts: Vec<Prompt>,
    targets: Vec<f32>,
}

/// Trains `encoder` to put each prompt where a label model put its digit: `targets` holds
/// one row of [`TIME`] values per digit and a last row for `∅`
/// ([`super::conditional::LabelEncoder::vectors`]); prompts are drawn from `phrasings`
/// (`[digit][phrasing]`), replaced by the empty prompt with probability `dropout`, and
/// the squared distance to their digit's row is minimised. Notebook
/// `10_guided_latent_diffusion` §4.
pub fn train_towards(
    encoder: &mut TextEncoder,
    targets: &[f32],
    phrasings: &[Vec<Prompt>],
    dropout: f64,
    settings: &crate::denoising::DenoiserSettings,
) -> Result<crate::train::History, Error> {
    use rand::{seq::SliceRandom, Rng};
    let digits = phrasings.len();
    if targets.len() != (digits + 1) * TIME || phrasings.iter().any(Vec::is_empty) {
        return Err(Error::InvalidArgument {
            what: "the targets and phrasings of a text encoder",
            expected: "a row of 64 values per digit and one for ∅, and a phrasing of every digit",
            got: format!("{} values for {digits} digits", targets.len()),
        });
    }
    let dev = device(settings.seed);
    let draw = |rng: &mut rand::rngs::StdRng, batch| {
        let (mut prompts, mut rows) = (Vec::new(), Vec::new());
        for _ in 0..batch {
            let digit = rng.gen_range(0..digits);
            let (prompt, row) = if rng.gen_bool(dropout) {
                (vec![NOTHING], digits)
            } else {
                (
                    phrasings[digit].choose(rng).expect("checked").clone(),
                    digit,
                )
            };
            prompts.push(prompt);
            rows.extend_from_slice(&targets[row * TIME..][..TIME]);
        }
        Placed {
            prompts,
            targets: rows,
        }
    };
    let objective = |m: &mut TextEncoder, b: Placed, grads| {
        use super::conditional::Encoder;
        m.check(&b.prompts)?;
        let start: Tensor<Rank0, f32, Cpu> = dev.zeros();
        let (_, tape) = start.traced(grads).split_tape();
        let n = b.prompts.len();
        let target = dev.tensor_from_vec(b.targets, (n, Const::<TIME>));
        let loss = mse_loss(m.encode(&b.prompts, tape), target);
        Ok::<_, Error>(crate::train::Measured::loss(loss))
    };
    crate::denoising::fit_drawn(encoder, settings, 0x7e47, draw, objective)
}

impl<E, D> TensorCollection<E, D> for TextEncoder<E, D>
where
    E: Dtype + Float + SampleUniform,
    D: Device<E>,
{
    type To<E2: Dtype, D2: Device<E2>> = TextEncoder<E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::module("body", |s| &s.body, |s| &mut s.body),
                Self::module("project", |s| &s.project, |s| &mut s.project),
            ),
            |(body, project)| TextEncoder { body, project },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::conditional::Encoder;
    use super::*;

    #[test]
    fn prompts_tokenize_and_unknown_words_are_named() {
        assert_eq!(phrase("a {}", 8), "an eight");
        assert_eq!(tokenize("Seven, handwritten").unwrap(), vec![7, 15]);
        let err = tokenize("a seven in crayon").unwrap_err().to_string();
        assert!(err.contains("in"), "{err}");
        let all = prompts_for(&HELD_OUT_PHRASINGS).unwrap();
        assert_eq!((all.len(), all[3].len()), (10, 3));
    }

    #[test]
    fn padding_does_not_change_a_prompts_encoding() {
        let encoder = TextEncoder::new(1);
        let short = tokenize("a seven").unwrap();
        let long = tokenize("a picture of the digit two").unwrap();
        let alone: Tensor<_, _, _> = encoder.encode(std::slice::from_ref(&short), NoneTape);
        let padded: Tensor<_, _, _> = encoder.encode(&[short, long], NoneTape);
        let (a, b) = (alone.as_vec(), padded.as_vec());
        assert!(
            a.iter().zip(&b[..TIME]).all(|(x, y)| (x - y).abs() < 1e-5),
            "{a:?} {b:?}"
        );
        assert!(encoder.check(&[vec![22]]).is_err() && encoder.check(&[vec![]]).is_err());
    }
}
