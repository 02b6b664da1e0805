"""The cases of `cargo bench --bench course`, run in PyTorch on the CPU with the same shapes,
thread count and timing rule (median of at least 10 runs and 1 s, after 3 warm-up runs).

Reads the cases (JSON, from `course -- --cases`) on stdin; prints {"results": [...]} JSON.
Run by benches/compare.py; needs PyTorch (`make bench-torch` installs it).
"""
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def median_ms(run):
    for _ in range(3):
        run()
    times, start = [], time.perf_counter()
    while len(times) < 10 or time.perf_counter() - start < 1.0:
        t = time.perf_counter()
        run()
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    return times[len(times) // 2]


def lenet():
    """mustknow::convnets::LeNet, layer for layer."""
    return nn.Sequential(
        nn.Unflatten(1, (1, 28, 28)),
        nn.Conv2d(1, 16, 5, padding=2, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(800, 120), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    )


def digits_mlp():
    """mustknow::tour::DigitsMlp (notebooks 00 and 02)."""
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def mnist_mlp(hidden):
    """mustknow::generalization::MnistMlp<hidden> (notebook 03)."""
    return nn.Sequential(nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, 10))


def lenet_300_100():
    """mustknow::generalization::lottery::LeNet300100 (notebook 03)."""
    return nn.Sequential(nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(),
                         nn.Linear(100, 10))


def mini_alexnet():
    """mustknow::convnets::MiniAlexNet<ReLU> (notebook 04)."""
    return nn.Sequential(
        nn.Unflatten(1, (1, 28, 28)),
        nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(1568, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10),
    )


def conv_bn_relu(channels_in, channels_out):
    """A 3×3 convolution that keeps the size, without bias, batch norm, ReLU: the crate's
    `(Conv2D<I, O, 3, 1, 1>, BatchNorm2D<O>, ReLU)`."""
    return [nn.Conv2d(channels_in, channels_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels_out), nn.ReLU()]


def deep_net(body):
    """mustknow::convnets::resnet::DeepNet<Body> (notebook 04 §3): 14×14 images, a stem
    convolution to 8 channels, the `body` modules, a linear classifier."""
    return nn.Sequential(nn.Unflatten(1, (1, 14, 14)), *conv_bn_relu(1, 8), *body, nn.Flatten(),
                         nn.Linear(8 * 14 * 14, 10))


def plain_net(layers=16):
    """mustknow::convnets::PlainNet<DEEP>, DEEP = 16: `layers` PlainLayers in its body."""
    return deep_net([m for _ in range(layers) for m in conv_bn_relu(8, 8)])


class ResidualBlock(nn.Module):
    """mustknow::convnets::resnet::ResidualBlock: relu(x + bn(conv(relu(bn(conv(x))))))."""

    def __init__(self, channels=8):
        super().__init__()
        self.f = nn.Sequential(*conv_bn_relu(channels, channels),
                               *conv_bn_relu(channels, channels)[:2])

    def forward(self, x):
        return F.relu(x + self.f(x))


def resnet(blocks=8):
    """mustknow::convnets::ResNet<{DEEP / 2}>: `blocks` ResidualBlocks in its body."""
    return deep_net([ResidualBlock() for _ in range(blocks)])


def norm_net(norm):
    """mustknow::convnets::NormNet<N> (notebook 04 §4): three 3×3 convolutions of 16
    channels without bias, each followed by `norm(16)`, ReLU and (the first two) 2×2 max
    pooling, then a linear classifier. BatchNorm2d is the crate's BatchNorm2D; GroupNorm(1, C)
    its LayerNorm2D (statistics over C×h×w, a scale and shift per channel)."""
    def stage(channels_in):
        return [nn.Conv2d(channels_in, 16, 3, padding=1, bias=False), norm(16), nn.ReLU()]

    return nn.Sequential(nn.Unflatten(1, (1, 14, 14)), *stage(1), nn.MaxPool2d(2),
                         *stage(16), nn.MaxPool2d(2), *stage(16), nn.Flatten(),
                         nn.Linear(16 * 3 * 3, 10))


def layer_norm_2d(channels):
    """mustknow::nn::LayerNorm2D<C>."""
    return nn.GroupNorm(1, channels)


class UNet(nn.Module):
    """mustknow::convnets::UNet (notebook 04 §5) with its skip connections: 3×3 convolutions
    with bias and ReLU (8, 16, 32 channels down, with 2×2 max pooling; 16, 8 up), 2×2
    transposed convolutions with stride 2 growing the features, the decoder's features and
    the encoder's concatenated in that order, and a 1×1 convolution to one logit per pixel."""

    def __init__(self):
        super().__init__()

        def conv(channels_in, channels_out):
            return nn.Sequential(nn.Conv2d(channels_in, channels_out, 3, padding=1), nn.ReLU())

        def up(channels_in, channels_out):
            return nn.Sequential(nn.ConvTranspose2d(channels_in, channels_out, 2, stride=2),
                                 nn.ReLU())

        self.enc1 = conv(1, 8)
        self.enc2 = nn.Sequential(nn.MaxPool2d(2), conv(8, 16))
        self.bottom = nn.Sequential(nn.MaxPool2d(2), conv(16, 32))
        self.up2, self.dec2 = up(32, 16), conv(32, 16)
        self.up1, self.dec1 = up(16, 8), conv(16, 8)
        self.head = nn.Conv2d(8, 1, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        d2 = self.dec2(torch.cat([self.up2(self.bottom(e2)), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        return self.head(d1)


def unet_step(batch, size):
    """One Adam step (learning rate 3e-3) of the U-Net on `batch` images and 0/1 masks, with
    the per-pixel binary cross-entropy of its logits."""
    model = UNet()
    images = torch.rand(batch, 1, size, size)
    masks = (torch.rand(batch, 1, size, size) < 0.2).float()
    return time_step(adam(model, 3e-3),
                     lambda: F.binary_cross_entropy_with_logits(model(images), masks))


def pre_norm_block(dim, heads, ff):
    """mustknow::transformer::blocks::Block in Layout::FULL: x + attention(norm(x)), then
    x + ff(norm(x)) with a ReLU feed-forward, no dropout."""
    return nn.TransformerEncoderLayer(dim, heads, ff, dropout=0.0, batch_first=True,
                                      norm_first=True)


class Encoder(nn.Module):
    """mustknow::attention::lm::CharLm (causal) and attention::tagger::Tagger with learned
    positions and Layout::FULL (notebook 05): token and learned position embeddings (a table
    of `table` rows), pre-norm blocks of self-attention, a final norm and a linear head."""

    def __init__(self, vocab, table, dim, heads, ff, layers, causal):
        super().__init__()
        self.tokens = nn.Embedding(vocab, dim)
        self.positions = nn.Embedding(table, dim)
        block = pre_norm_block(dim, heads, ff)
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab)
        self.causal = causal

    def forward(self, x):
        n = x.shape[1]
        h = self.tokens(x) + self.positions(torch.arange(n))
        mask = nn.Transformer.generate_square_subsequent_mask(n) if self.causal else None
        return self.head(self.norm(self.blocks(h, mask=mask, is_causal=self.causal)))


def sinusoidal(n, dim):
    """mustknow::transformer::positions::sinusoidal: PE(p, 2i) = sin(p / 10000^(2i/dim)),
    PE(p, 2i+1) = cos of the same, (n, dim)."""
    pair = (torch.arange(dim) // 2 * 2).double()
    angle = torch.arange(n).double()[:, None] / 10000 ** (pair / dim)
    return torch.where(torch.arange(dim) % 2 == 0, angle.sin(), angle.cos()).float()


class Seq2Seq(nn.Module):
    """mustknow::attention::seq2seq::Seq2Seq (notebook 05 §6): source and target embeddings
    plus sinusoidal positions; one pre-norm encoder block and a norm; one pre-norm decoder
    block (causal self-attention, cross-attention to the encoder's output, feed-forward) and
    a norm; a linear head."""

    def __init__(self, vocab, dim=64, heads=4, ff=128):
        super().__init__()
        self.source = nn.Embedding(vocab, dim)
        self.target = nn.Embedding(vocab, dim)
        self.encoder = pre_norm_block(dim, heads, ff)
        self.encoder_norm = nn.LayerNorm(dim)
        self.decoder = nn.TransformerDecoderLayer(dim, heads, ff, dropout=0.0, batch_first=True,
                                                  norm_first=True)
        self.decoder_norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab)
        self.dim = dim

    def forward(self, source, prefix):
        s, t = source.shape[1], prefix.shape[1]
        memory = self.encoder_norm(self.encoder(self.source(source) + sinusoidal(s, self.dim)))
        mask = nn.Transformer.generate_square_subsequent_mask(t)
        y = self.decoder(self.target(prefix) + sinusoidal(t, self.dim), memory, tgt_mask=mask,
                         tgt_is_causal=True)
        return self.head(self.decoder_norm(y))


def sequence_loss(logits, targets):
    """transformer::masked_cross_entropy with a target at every position: the mean
    cross-entropy over all of them."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def char_lm_step(batch, context, chars):
    model = Encoder(chars, context, dim=64, heads=4, ff=128, layers=2, causal=True)
    windows = (torch.arange(batch * (context + 1)) * 7 % chars).reshape(batch, context + 1)
    inputs, targets = windows[:, :-1], windows[:, 1:]
    return time_step(adam(model, 3e-3), lambda: sequence_loss(model(inputs), targets))


class MaskedLm(Encoder):
    """mustknow::embeddings::bert::Mlm (notebook 06 §6): the Encoder without a causal mask,
    its final norm and head applied only at the chosen positions."""

    def __init__(self, vocab, length):
        super().__init__(vocab, length, dim=64, heads=4, ff=128, layers=2, causal=False)

    def forward(self, x, at):
        h = self.blocks(self.tokens(x) + self.positions(torch.arange(x.shape[1])))
        return self.head(self.norm(h.reshape(-1, h.shape[-1])[at]))


def mlm_step(batch, length, vocab):
    """Every 7th word chosen (about BERT's 15%) and shown as [MASK], the last token."""
    model = MaskedLm(vocab, length)
    mask = vocab - 1
    tokens = torch.arange(batch * length) * 7 % mask
    at = torch.arange(batch * length)[torch.arange(batch * length) % 7 == 3]
    inputs = tokens.clone()
    inputs[at] = mask
    inputs = inputs.reshape(batch, length)
    return time_step(adam(model, 3e-3), lambda: F.cross_entropy(model(inputs, at), tokens[at]))


def ssl_encoder():
    """mustknow::self_supervised::Encoder (notebook 07): three stride-2 3×3 convolutions
    without bias, each with layer norm (GroupNorm(1, C)) and ReLU, then a linear map to 128."""
    layers = [nn.Unflatten(1, (1, 28, 28))]
    for c_in, c_out in [(1, 16), (16, 32), (32, 64)]:
        layers += [nn.Conv2d(c_in, c_out, 3, 2, 1, bias=False), layer_norm_2d(c_out), nn.ReLU()]
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(1024, 128), nn.ReLU())


def nt_xent(z, temperature):
    """mustknow::self_supervised::losses::nt_xent: rows i and i + B are two views of one image."""
    z = F.normalize(z, dim=1)
    scores = z @ z.T / temperature - 1e9 * torch.eye(len(z))
    partners = (torch.arange(len(z)) + len(z) // 2) % len(z)
    return F.cross_entropy(scores, partners)


def simclr_step(batch, projection):
    """One Adam step (learning rate 2e-3) of notebook 07 §3's SimCLR on 2·batch fixed views."""
    model = nn.Sequential(ssl_encoder(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, projection))
    views = torch.rand(2 * batch, 784)
    return time_step(adam(model, 2e-3), lambda: nt_xent(model(views), 0.2))


def tagger_step(batch, length, vocab):
    """One Adam step (learning rate 3e-3) of notebook 05 §5's tagger, Tagger<4, DEPTH> with
    DEPTH = 6 (DIM 32, FF 64, MAX_POS 32), on a batch of the two-look-ups task: the label at
    i is whether x[i-1] > x[i-3]."""
    model = Encoder(vocab, 32, dim=32, heads=4, ff=64, layers=6, causal=False)
    inputs = torch.randint(10, (batch, length))
    targets = (inputs.roll(1, 1) > inputs.roll(3, 1)).long()
    return time_step(adam(model, 3e-3), lambda: sequence_loss(model(inputs), targets))


def seq2seq_step(batch, length, vocab, bos=10):
    """One Adam step (learning rate 3e-3) of the encoder-decoder on `batch` digit strings and
    their reversals, with teacher forcing: the decoder reads `bos` (tasks::BOS) and the
    target shifted right."""
    model = Seq2Seq(vocab)
    sources = torch.randint(10, (batch, length))
    targets = sources.flip(1)
    prefix = torch.cat([torch.full((batch, 1), bos), targets[:, :-1]], 1)
    return time_step(adam(model, 3e-3), lambda: sequence_loss(model(sources, prefix), targets))


def vae_step(batch, latent):
    """One Adam step (learning rate 2e-3) of notebook 08 §2's VAE, mustknow::vae_gan::vae::
    VaeArch<latent>, on `batch` fixed binary images: encode to (μ, ln σ²), reparameterize,
    decode to logits, the negative ELBO (summed over pixels and latent dimensions, averaged
    over the batch)."""
    trunk = nn.Sequential(
        nn.Unflatten(1, (1, 28, 28)),
        nn.Conv2d(1, 16, 4, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 4, 2, 1), nn.ReLU(),
        nn.Flatten(), nn.Linear(1568, 128), nn.ReLU(),
    )
    mu_head, log_var_head = nn.Linear(128, latent), nn.Linear(128, latent)
    decoder = nn.Sequential(
        nn.Linear(latent, 128), nn.ReLU(), nn.Linear(128, 1568), nn.ReLU(),
        nn.Unflatten(1, (32, 7, 7)),
        nn.ConvTranspose2d(32, 16, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(16, 1, 4, 2, 1),
        nn.Flatten(),
    )
    model = nn.ModuleList([trunk, mu_head, log_var_head, decoder])
    x = (torch.rand(batch, 784) < 0.3).float()

    def loss():
        h = trunk(x)
        mu, log_var = mu_head(h), log_var_head(h)
        z = mu + (0.5 * log_var).exp() * torch.randn_like(mu)
        logits = decoder(z)
        reconstruction = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)
        kl = 0.5 * (mu.square() + log_var.exp() - 1 - log_var).sum(1)
        return (reconstruction + kl).mean()

    return time_step(adam(model, 2e-3), loss)


def dcgan_round(batch, noise):
    """One round of notebook 08 §5's DCGAN game, mustknow::vae_gan::dcgan, on `batch` fixed
    images: a discriminator step on the real batch and as many generated images, then a
    generator step through the discriminator (non-saturating loss); Adam at 1e-3, β₁ = 0.5,
    one optimizer over both players as in the crate."""
    generator = nn.Sequential(
        nn.Linear(noise, 1568), nn.ReLU(), nn.Unflatten(1, (32, 7, 7)),
        nn.ConvTranspose2d(32, 16, 4, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.ConvTranspose2d(16, 1, 4, 2, 1), nn.Flatten(), nn.Sigmoid(),
    )
    discriminator = nn.Sequential(
        nn.Unflatten(1, (1, 28, 28)),
        nn.Conv2d(1, 16, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(16, 32, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Flatten(), nn.Linear(1568, 1),
    )
    players = nn.ModuleList([generator, discriminator])
    optimizer = torch.optim.Adam(players.parameters(), lr=1e-3, betas=(0.5, 0.999))
    real = torch.rand(batch, 784)
    labels = torch.cat([torch.ones(batch, 1), torch.zeros(batch, 1)])

    def step(loss):
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def round_():
        with torch.no_grad():
            fake = generator(torch.randn(batch, noise))
        step(2 * F.binary_cross_entropy_with_logits(discriminator(torch.cat([real, fake])), labels))
        for p in discriminator.parameters():
            p.requires_grad_(False)
        fooled = discriminator(generator(torch.randn(batch, noise)))
        step(F.binary_cross_entropy_with_logits(fooled, torch.ones(batch, 1)))
        for p in discriminator.parameters():
            p.requires_grad_(True)

    return median_ms(round_)


class TimeUNet(nn.Module):
    """mustknow::denoising::unet::TimeUNet (notebooks 09 §5 and 10 §3–4): a U-Net of two
    resolutions (16 channels at full size, 32 at half) whose blocks each add a projection
    of the time embedding (sinusoidal, then Linear-ReLU-Linear-ReLU to 64) to their feature
    maps. Told a condition (a vector added to the time MLP's output), each block also
    scales its channels by 1 + a projection of the sum."""

    def __init__(self, wide=16, deep=32, embedding=32, time=64, channels=1):
        super().__init__()
        conv = lambda i, o: nn.Conv2d(i, o, 3, padding=1)
        self.embedding = embedding
        self.time = nn.Sequential(nn.Linear(embedding, time), nn.ReLU(), nn.Linear(time, time), nn.ReLU())
        self.down1, self.time1 = conv(channels, wide), nn.Linear(time, wide)
        self.down1b = nn.Sequential(nn.ReLU(), conv(wide, wide), nn.ReLU())
        self.down2, self.time2 = nn.Sequential(nn.AvgPool2d(2), conv(wide, deep)), nn.Linear(time, deep)
        self.down2b = nn.Sequential(nn.ReLU(), conv(deep, deep), nn.ReLU())
        self.middle = nn.Sequential(conv(deep, deep), nn.ReLU())
        self.up2, self.time3 = conv(2 * deep, deep), nn.Linear(time, deep)
        self.grow = nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(deep, wide, 2, 2), nn.ReLU())
        self.up1, self.time4 = conv(2 * wide, wide), nn.Linear(time, wide)
        self.up1b = nn.Sequential(nn.ReLU(), conv(wide, wide), nn.ReLU())
        self.head = nn.Conv2d(wide, channels, 1)
        self.scale1, self.scale2 = nn.Linear(time, wide), nn.Linear(time, deep)
        self.scale3, self.scale4 = nn.Linear(time, deep), nn.Linear(time, wide)

    def embed(self, t):
        """mustknow::denoising::time_embedding: sines then cosines of t·10000^(−k/half)."""
        half = self.embedding // 2
        angle = t[:, None] * torch.exp(-math.log(10000.0) * torch.arange(half) / half)
        return torch.cat([angle.sin(), angle.cos()], 1)

    def forward(self, x, t, condition=None):
        time = self.time(self.embed(t))
        if condition is not None:
            time = time + condition

        def block(h, shift, scale):
            h = h + shift(time)[:, :, None, None]
            return h if condition is None else h * (1 + scale(time)[:, :, None, None])

        h1 = self.down1b(block(self.down1(x), self.time1, self.scale1))
        h2 = self.down2b(block(self.down2(h1), self.time2, self.scale2))
        u2 = block(self.up2(torch.cat([self.middle(h2), h2], 1)), self.time3, self.scale3)
        u1 = self.up1b(block(self.up1(torch.cat([self.grow(u2), h1], 1)), self.time4, self.scale4))
        return self.head(u1)


def ddpm_unet_step(batch, side):
    """One Adam step (learning rate 2e-3) of TimeUNet on `batch` fixed noised images at times
    spread over the chain: the mean squared error of the predicted noise."""
    model = TimeUNet()
    x, eps = torch.randn(batch, 1, side, side), torch.randn(batch, 1, side, side)
    t = torch.tensor([float(1 + i * 997 % 1000) for i in range(batch)])
    return time_step(adam(model, 2e-3), lambda: F.mse_loss(model(x, t), eps))


class TextEncoder(nn.Module):
    """mustknow::guided_latent_diffusion::text::TextEncoder (notebook 10 §4): token and
    position embeddings, one pre-norm transformer block (4 heads, feed-forward 64), a final
    layer norm, the mean over the prompt's words, and a projection to the U-Net's 64."""

    def __init__(self, vocabulary=22, longest=8, width=32, time=64):
        super().__init__()
        self.tokens, self.positions = nn.Embedding(vocabulary, width), nn.Embedding(longest, width)
        self.block = nn.TransformerEncoderLayer(
            width, 4, 64, dropout=0.0, activation="relu", batch_first=True, norm_first=True)
        self.norm, self.project = nn.LayerNorm(width), nn.Linear(width, time)

    def forward(self, ids, lengths):
        length = ids.shape[1]
        padding = torch.arange(length)[None] >= lengths[:, None]
        h = self.tokens(ids) + self.positions(torch.arange(length))[None]
        h = self.norm(self.block(h, src_key_padding_mask=padding))
        weights = (~padding).float() / lengths[:, None]
        return self.project((h * weights[:, :, None]).sum(1))


class Conditional(nn.Module):
    """mustknow::guided_latent_diffusion::conditional::Conditional: a TimeUNet and the
    encoder of its conditions."""

    def __init__(self, unet, encoder):
        super().__init__()
        self.unet, self.encoder = unet, encoder

    def forward(self, x, t, *condition):
        return self.unet(x, t, self.encoder(*condition))


# The words in each of notebook 10's eight training phrasings ("{}", "a {}", "the digit {}", ...).
PHRASING_LENGTHS = [1, 2, 3, 2, 3, 3, 5, 4]


def conditional_step(model, batch, side, channels, condition):
    """One Adam step (learning rate 2e-3) of a conditional U-Net on `batch` fixed noised
    latents, each told its condition."""
    x, eps = torch.randn(batch, channels, side, side), torch.randn(batch, channels, side, side)
    t = torch.tensor([float(1 + i * 997 % 1000) for i in range(batch)])
    return time_step(adam(model, 2e-3), lambda: F.mse_loss(model(x, t, *condition), eps))


def latent_diffusion_step(batch, side, channels):
    model = Conditional(TimeUNet(channels=channels), nn.Embedding(11, 64))
    labels = torch.tensor([i % 11 for i in range(batch)])
    return conditional_step(model, batch, side, channels, (labels,))


def text_diffusion_step(batch, side, longest, channels=4):
    model = Conditional(TimeUNet(channels=channels), TextEncoder(longest=longest))
    lengths = torch.tensor([PHRASING_LENGTHS[i % 8] for i in range(batch)])
    ids = torch.randint(0, 22, (batch, int(lengths.max())))
    return conditional_step(model, batch, side, channels, (ids, lengths))


def information_net_step(batch):
    """mustknow::theory::bottleneck::InformationNet with tanh (notebook 11 §3), Adam at 3e-3
    on `batch` of the 12-bit patterns."""
    widths = [12, 10, 7, 5, 4, 3, 2]
    layers = []
    for width_in, width_out in zip(widths, widths[1:]):
        layers += [nn.Linear(width_in, width_out), nn.Tanh()]
    model = nn.Sequential(*layers[:-1])
    patterns = ((torch.arange(batch)[:, None] >> torch.arange(12)) & 1).float()
    labels = torch.arange(batch) % 2
    return time_step(adam(model, 3e-3), lambda: F.cross_entropy(model(patterns), labels))


def sawtooth_step(batch, width, depth):
    """mustknow::theory::expressivity::DeepNet (6 layers of 6) or ShallowNet (1 layer of 76)
    (notebook 11 §4): `depth` ReLU layers of `width` units, Adam at 3e-2, squared error on
    `batch` points of the 8-piece sawtooth."""
    layers = [nn.Linear(1, width), nn.ReLU()]
    for _ in range(depth - 1):
        layers += [nn.Linear(width, width), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Linear(width, 1))
    x = torch.arange(batch).float()[:, None] / batch
    y = x.clone()
    for _ in range(3):
        y = torch.where(y < 0.5, 2 * y, 2 - 2 * y)
    return time_step(adam(model, 3e-2), lambda: F.mse_loss(model(x), y))


def linear_autoencoder_step(batch, codes):
    """mustknow::theory::pca::LinearAutoencoder (notebook 11 §1): 64 → `codes` → 64 without
    biases, full-batch Adam at 1e-2 on `batch` rows, mean squared error."""
    model = nn.Sequential(nn.Linear(64, codes, bias=False), nn.Linear(codes, 64, bias=False))
    x = torch.randn(batch, 64)
    return time_step(adam(model, 1e-2), lambda: F.mse_loss(model(x), x))


def adam(model, lr=1e-3):
    """Adam at dfdx's default learning rate unless told."""
    return torch.optim.Adam(model.parameters(), lr=lr)


def sgd(model):
    """SGD with momentum 0.9 at learning rate 0.05, as notebook 04 trains its deep stacks (§3)
    and its normalised nets (§4). dfdx's classic momentum is PyTorch's (no dampening)."""
    return torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)


def training_step(model, batch, features, optimizer=adam):
    """One step of `optimizer(model)` on a fixed batch of `features` and 10 classes, with
    cross-entropy, as the crate times its own."""
    images = torch.rand(batch, features)
    labels = torch.arange(batch) % 10
    return time_step(optimizer(model), lambda: F.cross_entropy(model(images), labels))


def time_step(optimizer, loss):
    """One training step, timed: `loss()` runs the forward pass, then backward and the update."""

    def step():
        value = loss()
        optimizer.zero_grad()
        value.backward()
        optimizer.step()

    return median_ms(step)


def sgns_step(batch, vocab, dim, contexts):
    """mustknow::embeddings::word2vec::SkipGram's loss, Adam at 1e-2: each of `batch` words
    against `contexts` rows (the true context, then the negatives)."""
    centre, context = nn.Embedding(vocab, dim), nn.Embedding(vocab, dim)
    words = torch.randint(1, vocab, (batch,))
    rows = torch.randint(1, vocab, (batch, contexts))
    labels = torch.zeros(batch, contexts)
    labels[:, 0] = 1.0
    optimizer = adam(nn.ModuleList([centre, context]), lr=1e-2)

    def loss():
        scores = (context(rows) * centre(words).unsqueeze(1)).sum(-1)
        return F.binary_cross_entropy_with_logits(scores, labels) * contexts

    return time_step(optimizer, loss)


def glove_step(batch, vocab, dim, x_max=100.0):
    """mustknow::embeddings::counts::Glove's loss, Adam at 1e-2, on `batch` co-occurrences."""
    word, context = nn.Embedding(vocab, dim), nn.Embedding(vocab, dim)
    word_bias, context_bias = nn.Embedding(vocab, 1), nn.Embedding(vocab, 1)
    rows, columns = torch.randint(0, vocab, (batch,)), torch.randint(0, vocab, (batch,))
    x = torch.rand(batch) * 49 + 1
    weight, log_x = (x / x_max).pow(0.75).clamp(max=1.0), x.log()
    optimizer = adam(nn.ModuleList([word, context, word_bias, context_bias]), lr=1e-2)

    def loss():
        fit = (word(rows) * context(columns)).sum(-1) + word_bias(rows)[:, 0] + context_bias(columns)[:, 0]
        return (weight * (fit - log_x) ** 2).mean()

    return time_step(optimizer, loss)


def time_case(c):
    torch.manual_seed(0)
    k, s, p = c["kernel"], c["stride"], c["padding"]
    op = c["op"]
    if op == "sgns_step":
        return sgns_step(c["batch"], c["channels"], c["size"], c["out"])
    if op == "glove_step":
        return glove_step(c["batch"], c["channels"], c["size"])
    if op == "gemm_ceiling":
        # The f32 matrix product's speed, the ceiling for the convolutions: torch.mm, PyTorch's
        # own CPU matrix product (its BLAS) on all its threads.
        a, b = torch.randn(c["size"], c["size"]), torch.randn(c["size"], c["size"])
        return median_ms(lambda: torch.mm(a, b))
    x = torch.randn(c["batch"], c["channels"], c["size"], c["size"], requires_grad=True)
    if op in ("conv", "conv_transpose"):
        shape = (c["out"], c["channels"]) if op == "conv" else (c["channels"], c["out"])
        w = torch.randn(*shape, k, k, requires_grad=True)
        f = F.conv2d if op == "conv" else F.conv_transpose2d
        return median_ms(lambda: f(x, w, stride=s, padding=p).sum().backward())
    if op == "max_pool":
        return median_ms(lambda: F.max_pool2d(x, k, s, p).sum().backward())
    if op == "lenet_step":
        return training_step(lenet(), c["batch"], 784)
    if op == "digits_mlp_step":
        return training_step(digits_mlp(), c["batch"], 64)
    if op == "alexnet_step":
        return training_step(mini_alexnet(), c["batch"], 784)
    if op == "char_lm_step":
        return char_lm_step(c["batch"], c["size"], c["out"])
    if op == "mnist_mlp_step":
        return training_step(mnist_mlp(256), c["batch"], 784)
    if op == "lenet_300_100_step":
        return training_step(lenet_300_100(), c["batch"], 784)
    if op == "plain_net_step":
        return training_step(plain_net(), c["batch"], 196, sgd)
    if op == "resnet_step":
        return training_step(resnet(), c["batch"], 196, sgd)
    if op == "batch_norm_net_step":
        return training_step(norm_net(nn.BatchNorm2d), c["batch"], 196, sgd)
    if op == "layer_norm_net_step":
        return training_step(norm_net(layer_norm_2d), c["batch"], 196, sgd)
    if op == "unet_step":
        return unet_step(c["batch"], c["size"])
    if op == "tagger_step":
        return tagger_step(c["batch"], c["size"], c["out"])
    if op == "seq2seq_step":
        return seq2seq_step(c["batch"], c["size"], c["out"])
    if op == "mlm_step":
        return mlm_step(c["batch"], c["size"], c["out"])
    if op == "simclr_step":
        return simclr_step(c["batch"], c["out"])
    if op == "vae_step":
        return vae_step(c["batch"], c["out"])
    if op == "dcgan_round":
        return dcgan_round(c["batch"], c["out"])
    if op == "ddpm_unet_step":
        return ddpm_unet_step(c["batch"], c["size"])
    if op == "latent_diffusion_step":
        return latent_diffusion_step(c["batch"], c["size"], c["out"])
    if op == "text_diffusion_step":
        return text_diffusion_step(c["batch"], c["size"], c["out"])
    if op == "information_net_step":
        return information_net_step(c["batch"])
    if op == "sawtooth_deep_step":
        return sawtooth_step(c["batch"], 6, 6)
    if op == "sawtooth_shallow_step":
        return sawtooth_step(c["batch"], 76, 1)
    if op == "linear_autoencoder_step":
        return linear_autoencoder_step(c["batch"], c["out"])
    raise ValueError(f"no such op {op}")


def main():
    cases = json.load(sys.stdin)
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else torch.get_num_threads()
    torch.set_num_threads(threads)
    results = [{"name": c["name"], "ms": time_case(c)} for c in cases]
    print(json.dumps({"threads": threads, "version": torch.__version__, "results": results}))


if __name__ == "__main__":
    main()
