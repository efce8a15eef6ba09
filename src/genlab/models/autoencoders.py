"""The autoencoder family: vanilla AE, VAE, conditional VAE and the adversarial autoencoder.

The convolutional encoder/decoder follow the MNIST VAE of seed 002 (Chollet): 3x3 convs
(32, 64/2, 64, 64) -> Dense(32) -> z; decoder Dense -> (64, H/2, W/2) -> ConvTranspose/2 -> 3x3
conv to C channels. Decoders output logits; pixels are Bernoulli in [0, 1].

Larger inputs get more stride-2 convs (`downsamplings`): one more while the map is larger than
16x16 and still even. Seed 002's single halving would flatten 64 x 32 x 32 = 65536 features of a
64x64 face into Dense(32); with the rule every map the Dense layer sees is at most 16x16 (at most
16384 features, seed 002's own 28x28 MNIST map is 14x14 = 12544), and 28x28 and 32x32 inputs
keep seed 002's network unchanged (64x64: 64 -> 32 -> 16).
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from genlab.schema import Field
from genlab.models.base import BETAS, GenerativeModel, TrainingData, register_model
from genlab.models.networks import MLPDiscriminator
from genlab.objectives import ADVERSARIAL_LOSSES, gaussian_kl, reconstruction_bce, reparameterize
from genlab.objectives.noise import draw_like
from genlab.objectives.optim import optimizer_step

#: The widest map the encoder flattens into its Dense layer (module docstring).
MAX_MAP_SIDE = 16


def downsamplings(height: int, width: int) -> tuple[int, int, int]:
    """(stride-2 convs, map height, map width) of the conv encoder for an image of that size."""
    count, height, width = 1, (height + 1) // 2, (width + 1) // 2  # seed 002's one stride-2 conv
    while max(height, width) > MAX_MAP_SIDE and height % 2 == 0 and width % 2 == 0:
        count, height, width = count + 1, height // 2, width // 2
    return count, height, width


def decoder_shape_problem(image_shape: tuple[int, int, int]) -> str | None:
    """Why the conv decoder cannot draw `image_shape` (its stride-2 transposed convs double the side)."""
    _, h, w = image_shape
    return "its convolutional decoder needs even image sides" if h % 2 or w % 2 else None


class ConvEncoder(nn.Module):
    """Seed 002's encoder with a stride-2 3x3 conv per `downsamplings` (one at 28x28 and 32x32)."""

    def __init__(self, image_shape: tuple[int, int, int], out_dim: int, num_classes: int = 0):
        super().__init__()
        c, h, w = image_shape
        count, map_h, map_w = downsamplings(h, w)
        layers: list[nn.Module] = [nn.Conv2d(c, 32, 3, 1, 1), nn.ReLU(True)]
        for i in range(count):
            layers += [nn.Conv2d(64 if i else 32, 64, 3, 2, 1), nn.ReLU(True)]
        layers += [nn.Conv2d(64, 64, 3, 1, 1), nn.ReLU(True),
                   nn.Conv2d(64, 64, 3, 1, 1), nn.ReLU(True), nn.Flatten()]
        self.trunk = nn.Sequential(*layers)
        self.num_classes = num_classes
        self.hidden = nn.Sequential(nn.Linear(64 * map_h * map_w + num_classes, 32), nn.ReLU(True))
        self.out = nn.Linear(32, out_dim)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.trunk(x)
        if self.num_classes:
            h = torch.cat([h, F.one_hot(labels, self.num_classes).to(h.dtype)], dim=1)
        return self.out(self.hidden(h))


class ConvDecoder(nn.Module):
    """Seed 002's decoder: Dense -> (64, map) -> stride-2 ConvTranspose per encoder downsampling
    (64 channels, the last one 32) -> 3x3 conv to C channels."""

    def __init__(self, latent_dim: int, image_shape: tuple[int, int, int], num_classes: int = 0):
        super().__init__()
        c, h, w = image_shape
        problem = decoder_shape_problem(image_shape)
        if problem:
            raise ValueError(f"{problem}, got {h}x{w}")
        count, map_h, map_w = downsamplings(h, w)
        self.grid = (64, map_h, map_w)
        self.num_classes = num_classes
        self.fc = nn.Sequential(nn.Linear(latent_dim + num_classes, 64 * map_h * map_w), nn.ReLU(True))
        layers: list[nn.Module] = []
        for i in reversed(range(count)):
            layers += [nn.ConvTranspose2d(64, 64 if i else 32, 3, 2, 1, output_padding=1), nn.ReLU(True)]
        self.net = nn.Sequential(*layers, nn.Conv2d(32, c, 3, 1, 1))

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes:
            z = torch.cat([z, F.one_hot(labels, self.num_classes).to(z.dtype)], dim=1)
        return self.net(self.fc(z).view(z.size(0), *self.grid))


AE_FIELDS = {
    "latent_dim": Field(int, 8, positive=True, help="size of the latent code"),
    "betas": BETAS,
}


class _ConvAutoencoder(GenerativeModel):
    symmetric_pixels = False
    channels_last = True
    defaults = {"lr": 1e-3, "batch_size": 64}
    hparam_fields = AE_FIELDS

    def __init__(self, spec, image_shape, num_classes, *, encoder_out: int):
        super().__init__(spec, image_shape, num_classes)
        classes = num_classes if self.conditional else 0
        self.encoder = ConvEncoder(image_shape, encoder_out, classes)
        self.decoder = ConvDecoder(self.hp["latent_dim"], image_shape, classes)

    @classmethod
    def shape_problem(cls, hparams: Mapping[str, Any], image_shape: tuple[int, int, int]) -> str | None:
        problem = decoder_shape_problem(image_shape)
        return f"{problem}; pack the dataset at an even side (its `side` under `datasets:`)" if problem else None

    def configure_optimizers(self):
        return {"ae": self.adam(self.parameters())}

    def _labels(self, y):
        return y if self.conditional else None

    def generate(self, z, labels=None):
        return torch.sigmoid(self.decoder(z, self._labels(labels)).float())


@register_model("ae")
class Autoencoder(_ConvAutoencoder):
    """Vanilla autoencoder (seed 000): a deterministic encoder and a decoder trained on BCE.

    Its latent space is sparse: most points of N(0, I) decode to nothing like the data (seed 000,
    "使用 AE 生成新對象"). To sample at all, `after_training` fits a Gaussian (mean and full
    covariance) to the codes of the training set and `sample_latent` draws from it. The fit is
    stored in buffers, so it travels with the checkpoint. `prior_fit_images` caps how many training
    images are encoded for it (the first ones of the packed split): 10000 codes pin an 8-d Gaussian
    well, and encoding all 60000 Fashion-MNIST images costs 46 s on a 2-core CPU (10000: 7.5 s).
    """

    metric_names = ("loss", "recon")
    hparam_fields = {**AE_FIELDS, "prior_fit_images": Field(
        int, 10000, positive=True, nullable=True, help="training images encoded to fit the sampling Gaussian (null: all)")}

    def __init__(self, spec, image_shape, num_classes):
        super().__init__(spec, image_shape, num_classes, encoder_out=spec.hparams["latent_dim"])
        d = self.hp["latent_dim"]
        self.register_buffer("prior_mean", torch.zeros(d))
        self.register_buffer("prior_scale_tril", torch.eye(d))

    def training_step(self, x, y, optimizers, step):
        recon = reconstruction_bce(self.decoder(self.encoder(x)), x)
        optimizer_step(optimizers["ae"], recon)
        return {"loss": recon.detach(), "recon": recon.detach()}

    @torch.no_grad()
    def after_training(self, data: TrainingData) -> None:
        images, _ = data.head(self.hp["prior_fit_images"])  # None: all of them
        codes = torch.cat([self.encoder(self.to_input(chunk)).float() for chunk in images.split(self._chunk_rows())])
        mean = codes.mean(0)
        cov = torch.cov(codes.T.double()) + 1e-5 * torch.eye(codes.size(1), dtype=torch.float64, device=codes.device)
        self.prior_mean.copy_(mean)
        self.prior_scale_tril.copy_(torch.linalg.cholesky(cov).float())

    def _chunk_rows(self) -> int:
        """Images encoded at once by the prior fit: 1000 at 28x28 (~100 MB of activations), fewer
        for larger images so the memory stays about the same (64x64: 191)."""
        _, h, w = self.image_shape
        return max(1, 1000 * 28 * 28 // (h * w))

    def noise_to_latent(self, noise):
        return self.prior_mean + noise @ self.prior_scale_tril.T


@register_model("vae")
class VAE(_ConvAutoencoder):
    """Variational autoencoder (Kingma & Welling, 2014; seed 002): the encoder gives z_mean and
    z_log_var, z is drawn by reparameterisation, and the loss is BCE reconstruction plus
    kl_weight * KL(q(z|x) || N(0, I)), which makes N(0, I) samples decode to data."""

    metric_names = ("loss", "recon", "kl")
    hparam_fields = {**AE_FIELDS, "kl_weight": Field(float, 1.0, minimum=0.0, help="weight of the KL term")}

    def __init__(self, spec, image_shape, num_classes):
        super().__init__(spec, image_shape, num_classes, encoder_out=2 * spec.hparams["latent_dim"])

    def training_step(self, x, y, optimizers, step):
        mu, log_var = self.encoder(x, self._labels(y)).float().chunk(2, dim=1)
        recon = reconstruction_bce(self.decoder(reparameterize(mu, log_var), self._labels(y)), x)
        kl = gaussian_kl(mu, log_var)
        loss = recon + self.hp["kl_weight"] * kl
        optimizer_step(optimizers["ae"], loss)
        return {"loss": loss.detach(), "recon": recon.detach(), "kl": kl.detach()}


@register_model("cvae")
class ConditionalVAE(VAE):
    """Conditional VAE (Sohn et al., 2015; seed 000 "AE 條件"): the one-hot label is joined to the
    encoder's features and to z at the decoder input, so the decoder draws the class it is given."""

    conditional = True
    unlabelled_alternative = "vae"


@register_model("aae")
class AdversarialAutoencoder(GenerativeModel):
    """Adversarial autoencoder (Makhzani et al., 2015): instead of a KL term, a discriminator on
    the latent code tells prior samples N(0, I) from encoded data, and the encoder learns to fool
    it. The loss of encoder/decoder is (1 - adv_weight) * L1 reconstruction + adv_weight * BCE
    adversarial term (0.999 / 0.001, as in the PyTorch-GAN script); MLP nets of 512 units."""

    metric_names = ("loss", "recon", "adv_latent", "loss_d", "real_score", "fake_score")
    defaults = {"batch_size": 64}
    hparam_fields = {
        "latent_dim": Field(int, 10, positive=True),
        "betas": BETAS,
        "adv_weight": Field(float, 0.001, minimum=0.0, below=1.0),
    }

    def __init__(self, spec, image_shape, num_classes):
        super().__init__(spec, image_shape, num_classes)
        d = self.hp["latent_dim"]
        pixels = int(torch.tensor(image_shape).prod())
        self.encoder = nn.Sequential(
            nn.Flatten(), nn.Linear(pixels, 512), nn.LeakyReLU(0.2, True),
            nn.Linear(512, 512), nn.BatchNorm1d(512), nn.LeakyReLU(0.2, True), nn.Linear(512, 2 * d))
        self.decoder = nn.Sequential(
            nn.Linear(d, 512), nn.LeakyReLU(0.2, True),
            nn.Linear(512, 512), nn.BatchNorm1d(512), nn.LeakyReLU(0.2, True), nn.Linear(512, pixels), nn.Tanh())
        self.latent_critic = MLPDiscriminator((d, 1, 1), hidden=(512, 256))
        self.bce = ADVERSARIAL_LOSSES["bce"]

    def configure_optimizers(self):
        return {"ae": self.adam(list(self.encoder.parameters()) + list(self.decoder.parameters())),
                "d": self.adam(self.latent_critic.parameters())}

    def encode(self, x):
        mu, log_var = self.encoder(x).float().chunk(2, dim=1)
        return reparameterize(mu, log_var)

    def training_step(self, x, y, optimizers, step):
        z = self.encode(x)
        recon = (self.decoder(z).float().view_as(x) - x).abs().mean()
        adv = self.bce.g_loss(self.latent_critic(z).float())
        w = self.hp["adv_weight"]
        loss = (1 - w) * recon + w * adv
        optimizer_step(optimizers["ae"], loss)

        prior = draw_like(torch.randn, z)
        real_out = self.latent_critic(prior).float()
        fake_out = self.latent_critic(z.detach()).float()
        loss_d = 0.5 * self.bce.d_loss(real_out, fake_out)
        optimizer_step(optimizers["d"], loss_d)
        return {"loss": loss.detach(), "recon": recon.detach(), "adv_latent": adv.detach(),
                "loss_d": loss_d.detach(), "real_score": torch.sigmoid(real_out).mean().detach(),
                "fake_score": torch.sigmoid(fake_out).mean().detach()}

    def generate(self, z, labels=None):
        return self.to_unit(self.decoder(z).view(z.size(0), *self.image_shape))
