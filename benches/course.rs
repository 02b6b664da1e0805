//! The course's speed: forward + backward of its convolution layers at the shapes its
//! notebooks train, one training step of each model a notebook trains, and a large f32
//! matrix product, the ceiling for the convolutions; the median time over repeated runs.
//!
//! `cargo bench --bench course` prints a table; `-- --json` prints the results as JSON and
//! `-- --cases` the cases alone, which `benches/torch_course.py` runs in PyTorch so that
//! `benches/compare.py` (`make bench`) can put both side by side. Ops named after `--`
//! (`-- lenet_step char_lm_step`) run those cases alone.

use dfdx::optim::{Adam, AdamConfig, Momentum, Optimizer, Sgd, SgdConfig};
use mustknow::attention::seq2seq::{self, Seq2Seq};
use mustknow::attention::tagger::{self, Tagger};
use mustknow::attention::tasks::{reversals, Task, VOCAB};
use mustknow::attention::{lm, lm::CharLm};
use mustknow::convnets::resnet::DEEP;
use mustknow::convnets::{unet, LeNet, MiniAlexNet, NormNet, PlainNet, ResNet, UNet};
use mustknow::diffusion::{self, NoisePredictor};
use mustknow::embeddings::bert::{self, Direction, Mlm};
use mustknow::embeddings::counts::{Glove, GloveSettings};
use mustknow::embeddings::word2vec::{Sgns, SkipGram};
use mustknow::embeddings::{DIM as AUSTEN_DIM, VOCAB as AUSTEN_VOCAB};
use mustknow::generalization::{lottery::LeNet300100, MnistMlp};
use mustknow::guided_latent_diffusion::{conditional, latent, text, Prompt};
use mustknow::nn::{conv2d, conv_transpose2d, pool2d, ConvSpec, Pool};
use mustknow::prelude::*;
use mustknow::self_supervised::{self as ssl, losses::nt_xent, simclr};
use mustknow::theory::{bottleneck, expressivity, pca, Activation};
use mustknow::tour::DigitsMlp;
use mustknow::train::{Classifier, Objective};
use mustknow::transformer;
use mustknow::transformer::blocks::Layout;
use mustknow::transformer::positions::Positions;
use mustknow::vae_gan::dcgan::{self, Dcgan};
use mustknow::vae_gan::gan::{Adversarial, GeneratorLoss};
use mustknow::vae_gan::{vae, PIXELS as MNIST_PIXELS, SIDE as MNIST_SIDE};
use serde_json::json;
use std::time::Instant;

/// One timed computation. For a layer: images `batch × channels × size × size`, and the
/// layer's `out` channels, `kernel`, `stride`, `padding`. For a training step: `batch`
/// images of `channels × size × size` pixels and `out` classes (the model fixes the rest).
/// For the matrix product's ceiling: two `size × size` matrices.
struct Case {
    name: &'static str,
    op: &'static str,
    batch: usize,
    channels: usize,
    size: usize,
    out: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
}

/// A training step's case: `batch` one-channel images of `size × size` pixels, `out` classes.
const fn training_step(
    name: &'static str,
    op: &'static str,
    batch: usize,
    size: usize,
    out: usize,
) -> Case {
    Case {
        name,
        op,
        batch,
        channels: 1,
        size,
        out,
        kernel: 0,
        stride: 0,
        padding: 0,
    }
}

const CASES: [Case; 32] = [
    Case {
        name: "MNIST conv 1→32, 3×3",
        op: "conv",
        batch: 64,
        channels: 1,
        size: 28,
        out: 32,
        kernel: 3,
        stride: 1,
        padding: 0,
    },
    Case {
        name: "conv 32→64, 3×3 stride 2",
        op: "conv",
        batch: 64,
        channels: 32,
        size: 26,
        out: 64,
        kernel: 3,
        stride: 2,
        padding: 0,
    },
    Case {
        name: "ResNet block conv 64→64, 3×3",
        op: "conv",
        batch: 64,
        channels: 64,
        size: 16,
        out: 64,
        kernel: 3,
        stride: 1,
        padding: 1,
    },
    Case {
        name: "transposed conv 64→32, 4×4 stride 2",
        op: "conv_transpose",
        batch: 64,
        channels: 64,
        size: 8,
        out: 32,
        kernel: 4,
        stride: 2,
        padding: 1,
    },
    // Not a layer of the course: the speed the convolutions above are measured against
    // (`make bench`'s table of the convolutions gives each as a share of it). 1024 reaches
    // the GFLOP/s of 2048 on this machine, in an eighth of the time: more runs per median.
    Case {
        name: "ceiling: f32 matrix product 1024 × 1024",
        op: "gemm_ceiling",
        batch: 1,
        channels: 1,
        size: 1024,
        out: 1024,
        kernel: 0,
        stride: 0,
        padding: 0,
    },
    Case {
        name: "max pool 2×2 over 32×26×26",
        op: "max_pool",
        batch: 64,
        channels: 32,
        size: 26,
        out: 32,
        kernel: 2,
        stride: 2,
        padding: 0,
    },
    training_step(
        "digits MLP training step (Adam)",
        "digits_mlp_step",
        32,
        8,
        10,
    ),
    training_step(
        "MNIST MLP 784-256-256-10 training step (Adam)",
        "mnist_mlp_step",
        50,
        28,
        10,
    ),
    training_step(
        "LeNet-300-100 training step (Adam)",
        "lenet_300_100_step",
        60,
        28,
        10,
    ),
    training_step("LeNet training step (Adam)", "lenet_step", 64, 28, 10),
    training_step(
        "mini AlexNet training step (Adam)",
        "alexnet_step",
        64,
        28,
        10,
    ),
    training_step(
        "plain net, 17 conv layers, training step (SGD)",
        "plain_net_step",
        64,
        14,
        10,
    ),
    training_step(
        "ResNet, 8 residual blocks, training step (SGD)",
        "resnet_step",
        64,
        14,
        10,
    ),
    training_step(
        "small CNN with batch norm training step (SGD)",
        "batch_norm_net_step",
        64,
        14,
        10,
    ),
    training_step(
        "small CNN with layer norm training step (SGD)",
        "layer_norm_net_step",
        64,
        14,
        10,
    ),
    training_step("U-Net training step (Adam)", "unet_step", 16, unet::SIZE, 1),
    training_step(
        "character transformer LM training step (Adam)",
        "char_lm_step",
        lm::BATCH,
        lm::CONTEXT,
        lm::CHARS,
    ),
    training_step(
        "transformer tagger, 6 blocks, training step (Adam)",
        "tagger_step",
        tagger::BATCH,
        tagger::HEADS_LEN,
        VOCAB,
    ),
    training_step(
        "encoder-decoder transformer training step (Adam)",
        "seq2seq_step",
        seq2seq::BATCH,
        seq2seq::LEN,
        VOCAB,
    ),
    training_step(
        "BERT masked LM (2 blocks, d 64, 16 words) training step (Adam)",
        "mlm_step",
        bert::BATCH,
        bert::SEQ,
        AUSTEN_VOCAB,
    ),
    training_step(
        "SimCLR (3-conv encoder, projection head, NT-Xent), 2 × 96 views, training step (Adam)",
        "simclr_step",
        96,
        ssl::SIDE,
        ssl::PROJECTION,
    ),
    training_step(
        "VAE (16-d code, conv encoder and decoder) training step (Adam)",
        "vae_step",
        64,
        MNIST_SIDE,
        16,
    ),
    training_step(
        "DCGAN round: a discriminator step and a generator step (Adam)",
        "dcgan_round",
        64,
        MNIST_SIDE,
        dcgan::NOISE,
    ),
    training_step(
        "DDPM U-Net (14×14, time embedding) training step (Adam)",
        "ddpm_unet_step",
        64,
        diffusion::unet::SIDE,
        diffusion::unet::EMBEDDING,
    ),
    training_step(
        "latent diffusion U-Net (4×8×8 latents, label condition) training step (Adam)",
        "latent_diffusion_step",
        64,
        latent::SIDE,
        latent::CHANNELS,
    ),
    training_step(
        "text-conditioned latent U-Net (one-block prompt encoder) training step (Adam)",
        "text_diffusion_step",
        64,
        latent::SIDE,
        text::LONGEST,
    ),
    training_step(
        "linear autoencoder 64-5-64 on the 8×8 digits, full batch, training step (Adam)",
        "linear_autoencoder_step",
        1797,
        8,
        pca::CODES,
    ),
    training_step(
        "information-plane net 12-10-7-5-4-3-2 (tanh) training step (Adam)",
        "information_net_step",
        256,
        bottleneck::BITS,
        2,
    ),
    training_step(
        "deep narrow ReLU net (6 layers of 6) on the sawtooth, training step (Adam)",
        "sawtooth_deep_step",
        256,
        1,
        1,
    ),
    training_step(
        "shallow ReLU net (76 units) on the sawtooth, training step (Adam)",
        "sawtooth_shallow_step",
        256,
        1,
        1,
    ),
    // Notebook 06 §4–5: `batch` pairs (or co-occurrences) over a vocabulary of `channels` words
    // with vectors of `size` components; skip-gram's `out` is 1 + its negatives.
    Case {
        name: "skip-gram with negative sampling training step (Adam)",
        op: "sgns_step",
        batch: Sgns::AUSTEN.batch,
        channels: AUSTEN_VOCAB,
        size: AUSTEN_DIM,
        out: 1 + Sgns::AUSTEN.negatives,
        kernel: 0,
        stride: 0,
        padding: 0,
    },
    Case {
        name: "GloVe training step (Adam)",
        op: "glove_step",
        batch: GloveSettings::AUSTEN.batch,
        channels: AUSTEN_VOCAB,
        size: AUSTEN_DIM,
        out: 1,
        kernel: 0,
        stride: 0,
        padding: 0,
    },
];

fn main() {
    mustknow::runtime::join_thread_pool();
    let args: Vec<String> = std::env::args().collect();
    let flag = |f: &str| args.iter().any(|a| a == f);
    if flag("--cases") {
        println!(
            "{}",
            serde_json::to_string_pretty(&CASES.iter().map(describe).collect::<Vec<_>>()).unwrap()
        );
        return;
    }
    // Any other arguments pick cases by op (`cargo bench --bench course -- lenet_step`).
    let picked: Vec<&String> = args[1..].iter().filter(|a| !a.starts_with("--")).collect();
    let threads = rayon::current_num_threads();
    let results: Vec<_> = CASES
        .iter()
        .filter(|case| picked.is_empty() || picked.iter().any(|op| *op == case.op))
        .map(|case| (case, time_case(case)))
        .collect();
    if flag("--json") {
        let rows: Vec<_> = results
            .iter()
            .map(|(c, ms)| json!({"name": c.name, "ms": ms}))
            .collect();
        println!("{}", json!({"threads": threads, "results": rows}));
    } else {
        println!("| case | ms (median, {threads} threads) |\n| --- | ---: |");
        for (case, ms) in &results {
            println!("| {} | {ms:.2} |", case.name);
        }
    }
}

fn describe(c: &Case) -> serde_json::Value {
    json!({"name": c.name, "op": c.op, "batch": c.batch, "channels": c.channels, "size": c.size,
           "out": c.out, "kernel": c.kernel, "stride": c.stride, "padding": c.padding})
}

/// The median of repeated runs, after warm-up: at least 10 runs and at least a second.
fn median_ms(mut run: impl FnMut()) -> f64 {
    for _ in 0..3 {
        run();
    }
    let (mut times, start) = (vec![], Instant::now());
    while times.len() < 10 || start.elapsed().as_secs_f64() < 1.0 {
        let t = Instant::now();
        run();
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn time_case(c: &Case) -> f64 {
    // Notebook 06's cases have no images: their fields describe tables of word vectors.
    match c.op {
        "sgns_step" => return time_sgns_step(c.batch, c.out),
        "glove_step" => return time_glove_step(c.batch),
        "gemm_ceiling" => return time_matmul(c.size),
        _ => {}
    }
    let dev = Cpu::seed_from_u64(0);
    // As the course's training functions do: freed tensor buffers are reused.
    dev.enable_cache();
    let x: Tensor<(usize, usize, usize, usize), f32, Cpu> =
        dev.sample_normal_like(&(c.batch, c.channels, c.size, c.size));
    let spec = ConvSpec::default().stride(c.stride).padding(c.padding);
    match c.op {
        "conv" => {
            let w: Tensor<(usize, usize, usize, usize), f32, Cpu> =
                dev.sample_normal_like(&(c.out, c.channels, c.kernel, c.kernel));
            median_ms(|| {
                let y = conv2d(x.clone().leaky_trace(), w.clone(), spec).unwrap();
                let _ = y.sum().backward();
            })
        }
        "conv_transpose" => {
            let w: Tensor<(usize, usize, usize, usize), f32, Cpu> =
                dev.sample_normal_like(&(c.channels, c.out, c.kernel, c.kernel));
            median_ms(|| {
                let y = conv_transpose2d(x.clone().leaky_trace(), w.clone(), spec).unwrap();
                let _ = y.sum().backward();
            })
        }
        "max_pool" => median_ms(|| {
            let y = pool2d(
                x.clone().leaky_trace(),
                Pool::Max,
                c.kernel,
                c.stride,
                c.padding,
            )
            .unwrap();
            let _ = y.sum().backward();
        }),
        "lenet_step" => time_training_step::<LeNet, 784, _>(&dev, c.batch, adam),
        "alexnet_step" => time_training_step::<MiniAlexNet<ReLU>, 784, _>(&dev, c.batch, adam),
        "char_lm_step" => time_char_lm_step(),
        "plain_net_step" => time_training_step::<PlainNet<DEEP>, 196, _>(&dev, c.batch, sgd),
        // `train_stack` also zeroes each block's last batch-norm scale: an initialisation,
        // the same work per step.
        "resnet_step" => time_training_step::<ResNet<{ DEEP / 2 }>, 196, _>(&dev, c.batch, sgd),
        "batch_norm_net_step" => {
            time_training_step::<NormNet<BatchNorm2D<16>>, 196, _>(&dev, c.batch, sgd)
        }
        "layer_norm_net_step" => {
            time_training_step::<NormNet<LayerNorm2D<16>>, 196, _>(&dev, c.batch, sgd)
        }
        "digits_mlp_step" => time_training_step::<DigitsMlp, 64, _>(&dev, c.batch, adam),
        "mnist_mlp_step" => time_training_step::<MnistMlp<256>, 784, _>(&dev, c.batch, adam),
        "lenet_300_100_step" => time_training_step::<LeNet300100, 784, _>(&dev, c.batch, adam),
        "unet_step" => time_unet_step(&dev, c.batch),
        "tagger_step" => time_tagger_step(c.batch, c.size),
        "seq2seq_step" => time_seq2seq_step(c.batch),
        "mlm_step" => time_mlm_step(),
        "simclr_step" => time_simclr_step(c.batch),
        "vae_step" => time_vae_step(c.batch),
        "dcgan_round" => time_dcgan_round(c.batch),
        "ddpm_unet_step" => time_ddpm_unet_step(c.batch),
        "latent_diffusion_step" => {
            let prompts = (0..c.batch)
                .map(|i| vec![i % conditional::LABELS])
                .collect();
            time_conditional_step(conditional::latent_label_unet(0), prompts)
        }
        "text_diffusion_step" => {
            let net = conditional::text_unet(
                &conditional::latent_label_unet(0),
                text::TextEncoder::new(0),
            );
            time_conditional_step(net, phrased_prompts(c.batch))
        }
        "information_net_step" => time_information_net_step(c.batch),
        "sawtooth_deep_step" => time_sawtooth_step(expressivity::deep_net(0), c.batch),
        "sawtooth_shallow_step" => time_sawtooth_step(expressivity::shallow_net(0), c.batch),
        "linear_autoencoder_step" => time_linear_autoencoder_step(c.batch),
        op => unreachable!("no such op {op}"),
    }
}

/// The product of two square `n × n` matrices: the f32 matrix product's speed on this
/// machine, which the convolutions (im2col and products, or the direct kernel) can at best
/// reach. dfdx's `matmul` on the CPU runs the same gemm as the crate's convolutions
/// (`shims/gemm`: gemm 0.19, its AVX-512 or AVX2 kernels, whichever the CPU has) split
/// across all of rayon's threads; the crate's own entry point, `nn::matmul`, is private to
/// it.
fn time_matmul(n: usize) -> f64 {
    let dev = Cpu::seed_from_u64(0);
    dev.enable_cache();
    let a: Tensor<(usize, usize), f32, Cpu> = dev.sample_normal_like(&(n, n));
    let b: Tensor<(usize, usize), f32, Cpu> = dev.sample_normal_like(&(n, n));
    median_ms(|| {
        let _ = a.clone().matmul(b.clone());
    })
}

/// One step of `optimizer` on a freshly built `M`: cross-entropy of its logits on a fixed
/// batch of `F` features and 10 classes, as `fit_classifier` trains the course's classifiers.
fn time_training_step<M, const F: usize, O>(
    dev: &Cpu,
    batch: usize,
    optimizer: impl FnOnce(&M::Built) -> O,
) -> f64
where
    M: BuildOnDevice<Cpu, f32>,
    M::Built: Classifier<F, 10>,
    O: Optimizer<M::Built, Cpu, f32>,
{
    let model = dev.build_module::<M, f32>();
    let optimizer = optimizer(&model);
    let images: Tensor<(usize, Const<F>), f32, Cpu> = dev.sample_uniform_like(&(batch, Const));
    let labels: Vec<usize> = (0..batch).map(|i| i % 10).collect();
    let targets = mustknow::data::one_hot::<10>(dev, &labels).unwrap();
    time_step(
        model,
        |m| m,
        optimizer,
        |model, grads| {
            let logits = model.forward_mut(images.clone().traced(grads));
            cross_entropy_with_logits_loss(logits, targets.clone())
        },
    )
}

/// One Adam step (learning rate 3e-3) of notebook 11 §3's information-plane network with
/// tanh, on `batch` of the 12-bit task's patterns, as `information_plane` trains it.
fn time_information_net_step(batch: usize) -> f64 {
    let dev = Cpu::default();
    let task = bottleneck::TwelveBits::new();
    let net = bottleneck::information_net(0);
    let adam = adam_at(&net, 3e-3);
    let x = dev.tensor_from_vec(
        task.inputs[..batch * bottleneck::BITS].to_vec(),
        (batch, Const::<{ bottleneck::BITS }>),
    );
    let targets = mustknow::data::one_hot::<2>(&dev, &task.labels[..batch]).unwrap();
    time_step(
        net,
        |n| n,
        adam,
        |net, grads| {
            let logits = bottleneck::logits(net, x.clone().traced(grads), Activation::Tanh);
            cross_entropy_with_logits_loss(logits, targets.clone())
        },
    )
}

/// One Adam step (learning rate 3e-2) of one of notebook 11 §4's ReLU networks on `batch`
/// points of the sawtooth of 8 pieces, squared error, as `fit_sawtooth` trains them.
fn time_sawtooth_step<N>(net: N, batch: usize) -> f64
where
    N: TensorCollection<f32, Cpu>
        + Module<
            Tensor<(usize, Const<1>), f32, Cpu, OwnedTape<f32, Cpu>>,
            Output = Tensor<(usize, Const<1>), f32, Cpu, OwnedTape<f32, Cpu>>,
        >,
{
    let dev = Cpu::default();
    let adam = adam_at(&net, 3e-2);
    let xs: Vec<f32> = (0..batch).map(|i| i as f32 / batch as f32).collect();
    let ys: Vec<f32> = xs
        .iter()
        .map(|&x| expressivity::sawtooth(3, x as f64) as f32)
        .collect();
    let x = dev.tensor_from_vec(xs, (batch, Const::<1>));
    let y = dev.tensor_from_vec(ys, (batch, Const::<1>));
    time_step(
        net,
        |n| n,
        adam,
        |net, grads| mse_loss(net.forward(x.clone().traced(grads)), y.clone()),
    )
}

/// One full-batch Adam step (learning rate 1e-2) of notebook 11 §1's linear autoencoder on
/// `batch` rows of 64 centred pixels, as `train_linear_autoencoder` trains it.
fn time_linear_autoencoder_step(batch: usize) -> f64 {
    let dev = Cpu::default();
    let net = pca::linear_autoencoder(0);
    let adam = adam_at(&net, 1e-2);
    let x: Tensor<(usize, Const<64>), f32, Cpu> = dev.sample_normal_like(&(batch, Const));
    time_step(
        net,
        |n| n,
        adam,
        |net, grads| pca::reconstruction_loss(net, x.clone().traced(grads)),
    )
}

/// Adam at dfdx's defaults (learning rate 1e-3).
fn adam<M: TensorCollection<f32, Cpu>>(model: &M) -> Adam<M, f32, Cpu> {
    adam_at(model, 1e-3)
}

/// SGD with momentum 0.9 at learning rate 0.05: how notebook 04 trains its deep stacks
/// (§4, `resnet::train_stack`) and its normalised nets (§5, `norm::train_norm` at the
/// notebook's learning rate).
fn sgd<M: TensorCollection<f32, Cpu>>(model: &M) -> Sgd<M, f32, Cpu> {
    let momentum = Some(Momentum::Classic(0.9));
    Sgd::new(
        model,
        SgdConfig {
            lr: 0.05,
            momentum,
            weight_decay: None,
        },
    )
}

/// One Adam step (learning rate 3e-3) of notebook 04 §6's U-Net, skip connections on, on
/// `batch` of its synthetic images: per-pixel binary cross-entropy, as `train_unet` trains it.
fn time_unet_step(dev: &Cpu, batch: usize) -> f64 {
    let set = unet::shapes(batch, 0);
    let shape = (batch, Const::<1>, unet::SIZE, unet::SIZE);
    let (images, masks) = (
        dev.tensor_from_vec(set.images, shape),
        dev.tensor_from_vec(set.masks, shape),
    );
    let net = UNet::new(dev);
    let adam = adam_at(&net, 3e-3);
    time_step(
        net,
        |n| n,
        adam,
        |net, grads| {
            let logits = net.segment(images.clone().traced(grads), true);
            binary_cross_entropy_with_logits_loss(logits, masks.clone())
        },
    )
}

/// One Adam step of notebook 05's character language model on a fixed batch of windows.
fn time_char_lm_step() -> f64 {
    let model = CharLm::new(0);
    let adam = adam_at(&model.net, 3e-3);
    let tokens: Vec<usize> = (0..lm::BATCH * (lm::CONTEXT + 1))
        .map(|i| i * 7 % lm::CHARS)
        .collect();
    let (inputs, targets): (Vec<usize>, Vec<Option<usize>>) = tokens
        .chunks(lm::CONTEXT + 1)
        .flat_map(|w| w.windows(2).map(|p| (p[0], Some(p[1]))))
        .unzip();
    time_step(
        model,
        |m| &mut m.net,
        adam,
        |model, grads| {
            let x = transformer::ids(&inputs, lm::BATCH, lm::CONTEXT).unwrap();
            let logits = model.forward(x.traced(grads)).unwrap();
            transformer::masked_cross_entropy(logits, &targets).unwrap()
        },
    )
}

/// One Adam step (learning rate 3e-3) of notebook 05's tagger as §5 trains it, the tagger
/// the notebook trains longest: `DEPTH` pre-norm blocks of 4 heads, learned positions, the
/// full layout, on `batch` strings of `len` digits of the two-look-ups task.
fn time_tagger_step(batch: usize, len: usize) -> f64 {
    let model = Tagger::<4, { tagger::DEPTH }>::new(Positions::Learned, Layout::FULL, 0);
    let adam = adam_at(&model.net, 3e-3);
    let task = Task::TwoLookups.batch(batch, len, &mut StdRng::seed_from_u64(0));
    time_step(
        model,
        |m| &mut m.net,
        adam,
        |model, grads| {
            let x = transformer::ids(&task.inputs, batch, len).unwrap();
            let (logits, _) = model.forward(x.traced(grads)).unwrap();
            transformer::masked_cross_entropy(logits, &task.targets).unwrap()
        },
    )
}

/// One Adam step (learning rate 3e-3) of notebook 05 §6's encoder-decoder on `batch` digit
/// strings and their reversals, with teacher forcing, as `train_reversal` trains it.
fn time_seq2seq_step(batch: usize) -> f64 {
    let model = Seq2Seq::new(0);
    let adam = adam_at(&model.net, 3e-3);
    let (sources, targets) = reversals(batch, seq2seq::LEN, &mut StdRng::seed_from_u64(0));
    time_step(
        model,
        |m| &mut m.net,
        adam,
        |model, grads| model.loss(&sources, &targets, grads).unwrap(),
    )
}

/// One Adam step (learning rate 3e-3) of notebook 06 §6's masked language model on a fixed
/// batch: every 7th word chosen (about BERT's 15%) and shown as `[MASK]`.
fn time_mlm_step() -> f64 {
    let model = Mlm::new(Direction::Bidirectional, 0);
    let adam = adam_at(&model.net, 3e-3);
    let tokens = (0..bert::BATCH * bert::SEQ).map(|i| i * 7 % bert::MASK);
    let (inputs, targets): (Vec<usize>, Vec<Option<usize>>) = tokens
        .enumerate()
        .map(|(i, t)| {
            if i % 7 == 3 {
                (bert::MASK, Some(t))
            } else {
                (t, None)
            }
        })
        .unzip();
    time_step(
        model,
        |m| &mut m.net,
        adam,
        |model, grads| {
            let x = transformer::ids(&inputs, bert::BATCH, bert::SEQ).unwrap();
            let net = &model.net;
            net.loss(x.traced(grads), &targets, Direction::Bidirectional)
                .unwrap()
        },
    )
}

/// One Adam step (learning rate 2e-3) of notebook 07 §3's SimCLR on a fixed batch of two
/// views of `batch` images: the encoder, the projection head and NT-Xent at τ = 0.2 (the
/// views' augmentation, made on the side, is not timed).
fn time_simclr_step(batch: usize) -> f64 {
    let dev = mustknow::runtime::device(0);
    let net = dev.build_module::<(ssl::Encoder, ssl::Projector), f32>();
    let adam = adam_at(&net, 2e-3);
    let views: Tensor<(usize, Const<{ ssl::PIXELS }>), f32, Cpu> =
        dev.sample_uniform_like(&(2 * batch, Const));
    time_step(
        net,
        |m| m,
        adam,
        |net, grads| {
            let z = net.forward_mut(views.clone().traced(grads));
            nt_xent(z, simclr::TEMPERATURE).unwrap()
        },
    )
}

/// One Adam step (learning rate 2e-3) of notebook 08 §2's VAE with a 16-dimensional code on
/// a fixed batch of `batch` binary images.
fn time_vae_step(batch: usize) -> f64 {
    let dev = mustknow::runtime::device(0);
    let net = dev.build_module::<vae::VaeArch<16>, f32>();
    let adam = adam_at(&net, 2e-3);
    let x = dev.tensor_from_vec(
        mustknow::vae_gan::binarize(&vec![0.3; batch * MNIST_PIXELS], 0),
        (batch, Const::<MNIST_PIXELS>),
    );
    time_step(
        net,
        |m| m,
        adam,
        |net, grads| vae::training_loss(net, x.clone(), grads),
    )
}

/// One round of notebook 08 §5's DCGAN game on a fixed batch of `batch` images: the
/// discriminator's step, then the generator's ([`Adversarial`] alternates them), Adam at
/// 1e-3 with β₁ = 0.5 over both players.
fn time_dcgan_round(batch: usize) -> f64 {
    let dev = mustknow::runtime::device(0);
    let players = Dcgan::untrained(0).players;
    let adam = Adam::new(
        &players,
        AdamConfig {
            lr: 1e-3,
            betas: [0.5, 0.999],
            ..Default::default()
        },
    );
    let mut game = Adversarial::<{ dcgan::NOISE }>::new(GeneratorLoss::NonSaturating);
    let real: Tensor<(usize, Const<MNIST_PIXELS>), f32, Cpu> =
        dev.sample_uniform_like(&(batch, Const));
    time_steps(
        2,
        players,
        |m| m,
        adam,
        |players, grads| game.loss(players, real.clone(), grads).unwrap().loss,
    )
}

/// One Adam step (learning rate 1e-2) of notebook 06 §4's skip-gram on `batch` random
/// words, each with `contexts` context rows (the true one and the negatives).
fn time_sgns_step(batch: usize, contexts: usize) -> f64 {
    let dev = mustknow::runtime::device(0);
    let model = SkipGram::<AUSTEN_VOCAB, AUSTEN_DIM>::new(&dev);
    let adam = adam_at(&model, Sgns::AUSTEN.optimizer.lr);
    let mut rng = StdRng::seed_from_u64(0);
    let mut words =
        |n: usize| -> Vec<usize> { (0..n).map(|_| rng.gen_range(1..AUSTEN_VOCAB)).collect() };
    let (centres, rows) = (words(batch), words(batch * contexts));
    time_step(
        model,
        |m| m,
        adam,
        |model, grads| {
            let centres = dev.tensor_from_vec(centres.clone(), (batch,)).traced(grads);
            model.loss(centres, &rows).unwrap()
        },
    )
}

/// One Adam step (learning rate 1e-2) of notebook 06 §5's GloVe on `batch` random
/// co-occurrences with counts from 1 to 50.
fn time_glove_step(batch: usize) -> f64 {
    let dev = mustknow::runtime::device(0);
    let model = Glove::<AUSTEN_VOCAB, AUSTEN_DIM>::new(&dev);
    let settings = GloveSettings::AUSTEN;
    let adam = adam_at(&model, settings.optimizer.lr);
    let mut rng = StdRng::seed_from_u64(0);
    let rows: Vec<usize> = (0..batch).map(|_| rng.gen_range(0..AUSTEN_VOCAB)).collect();
    let columns: Vec<usize> = (0..batch).map(|_| rng.gen_range(0..AUSTEN_VOCAB)).collect();
    let counts: Vec<f32> = (0..batch).map(|_| rng.gen_range(1.0..50.0)).collect();
    time_step(
        model,
        |m| m,
        adam,
        |model, grads| {
            let rows = dev.tensor_from_vec(rows.clone(), (batch,)).traced(grads);
            model
                .loss(rows, (&columns, &counts), settings.x_max)
                .unwrap()
        },
    )
}

/// Adam at learning rate `lr`: 3e-3 is how the course trains the U-Net and the transformers.
/// One Adam step (learning rate 2e-3) of notebook 09 §5's noise-predicting U-Net on a
/// fixed batch of `batch` noised 14×14 images at times spread over the chain: DDPM's
/// simple loss, the mean squared error of the predicted noise.
fn time_ddpm_unet_step(batch: usize) -> f64 {
    let dev = mustknow::runtime::device(0);
    let net = diffusion::unet::time_unet(0);
    let adam = adam_at(&net, 2e-3);
    let dim = net.dim();
    let (x, eps, t) = noised_batch(&dev, batch, dim);
    time_step(
        net,
        |m| m,
        adam,
        |net, grads| {
            let noised = dev.tensor_from_vec(x.clone(), (batch, dim)).traced(grads);
            mse_loss(net.predict(noised, &t), eps.clone())
        },
    )
}

/// A fixed batch for a noise predictor: `batch` inputs of `dim` values, their noise, and
/// times spread over the chain.
fn noised_batch(
    dev: &Cpu,
    batch: usize,
    dim: usize,
) -> (Vec<f32>, diffusion::Rows<NoneTape>, Vec<f32>) {
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
    let x = diffusion::ddpm::normal(batch * dim, &mut rng);
    let eps = dev.tensor_from_vec(diffusion::ddpm::normal(batch * dim, &mut rng), (batch, dim));
    let t = (0..batch).map(|i| (1 + i * 997 % 1000) as f32).collect();
    (x, eps, t)
}

/// One Adam step (learning rate 2e-3) of one of notebook 10's conditional latent U-Nets on
/// a fixed batch of noised latents, each told its prompt.
fn time_conditional_step<Enc>(
    net: conditional::Conditional<Enc, { latent::CHANNELS }, { latent::SIDE }>,
    prompts: Vec<Prompt>,
) -> f64
where
    Enc: conditional::Encoder + TensorCollection<f32, Cpu> + 'static,
{
    let batch = prompts.len();
    let dev = mustknow::runtime::device(0);
    let adam = adam_at(&net, 2e-3);
    let dim = latent::LATENT;
    let (x, eps, t) = noised_batch(&dev, batch, dim);
    time_step(
        net,
        |m| m,
        adam,
        |net, grads| {
            let noised = dev.tensor_from_vec(x.clone(), (batch, dim)).traced(grads);
            mse_loss(net.predict(noised, &t, &prompts), eps.clone())
        },
    )
}

/// `batch` prompts, example `i` asking for digit `i mod 10` in training phrasing `i mod 8`.
fn phrased_prompts(batch: usize) -> Vec<Prompt> {
    let phrasings = text::prompts_for(&text::TRAINING_PHRASINGS).unwrap();
    let kinds = text::TRAINING_PHRASINGS.len();
    (0..batch)
        .map(|i| phrasings[i % 10][i % kinds].clone())
        .collect()
}

fn adam_at<N: TensorCollection<f32, Cpu>>(net: &N, lr: f64) -> Adam<N, f32, Cpu> {
    Adam::new(
        net,
        AdamConfig {
            lr,
            ..Default::default()
        },
    )
}

/// A training step's loss, on the tape it was given.
type Loss = Tensor<Rank0, f32, Cpu, OwnedTape<f32, Cpu>>;

/// One training step of `model`, timed: `loss` runs the forward pass on the gradients it is
/// handed (as the tape), then the step backpropagates and `optimizer` updates the weights
/// `weights(model)` (the model itself, or the weights inside a model that also holds its
/// settings). The gradients' buffers go from one step to the next, as in the crate's
/// training loops, so no step allocates them afresh.
fn time_step<M, N, O>(
    model: M,
    weights: impl Fn(&mut M) -> &mut N,
    optimizer: O,
    loss: impl FnMut(&mut M, Gradients<f32, Cpu>) -> Loss,
) -> f64
where
    N: TensorCollection<f32, Cpu>,
    O: Optimizer<N, Cpu, f32>,
{
    time_steps(1, model, weights, optimizer, loss)
}

/// [`time_step`] for `steps` consecutive steps timed as one: a round of a game whose
/// players step in turn.
fn time_steps<M, N, O>(
    steps: usize,
    mut model: M,
    weights: impl Fn(&mut M) -> &mut N,
    mut optimizer: O,
    mut loss: impl FnMut(&mut M, Gradients<f32, Cpu>) -> Loss,
) -> f64
where
    N: TensorCollection<f32, Cpu>,
    O: Optimizer<N, Cpu, f32>,
{
    let mut kept = Some(weights(&mut model).alloc_grads());
    // As the course's training loops do.
    let _pool = mustknow::runtime::hot_pool();
    median_ms(|| {
        for _ in 0..steps {
            let grads = kept.take().expect("returned by the previous step");
            let mut grads = loss(&mut model, grads).backward();
            // The unconditional U-Net leaves its condition's gains unused, as training does.
            match optimizer.update(weights(&mut model), &grads) {
                Ok(()) | Err(dfdx::optim::OptimizerUpdateError::UnusedParams(_)) => {}
                Err(e) => panic!("{e:?}"),
            }
            weights(&mut model).zero_grads(&mut grads);
            kept = Some(grads);
        }
    })
}
