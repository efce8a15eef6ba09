"""GANs whose generator and discriminator play one adversarial game, differing only in objective.

`AdversarialModel` holds the shared step: update D (critic) on real and fake batches, with an
optional gradient penalty or weight clipping, then update G every `n_critic` steps. Each
registered type below names its paper and what it changes.
"""
from __future__ import annotations

from typing import Any, ClassVar, Mapping

import torch
from torch import nn

from genlab.schema import Field
from genlab.models.base import LATENT, GenerativeModel, clip_weights_, init_normal_weights, register_model
from genlab.models.networks import (ConvDiscriminator, ConvGenerator, MLPDiscriminator, MLPGenerator,
                                    conv_shape_problem)
from genlab.objectives import ADVERSARIAL_LOSSES, PENALTIES, dragan_penalty, wgan_gp_penalty
from genlab.objectives.noise import batch_draw
from genlab.objectives.optim import optimizer_step, rmsprop

ARCHS = ("mlp", "conv")


def network_fields(*, arch: str, archs: tuple[str, ...] = ARCHS,
                   betas: tuple[float, float] = (0.5, 0.999)) -> dict[str, Field]:
    return {
        "latent_dim": LATENT,
        "betas": Field(list, betas, length=2, minimum=0.0, below=1.0, help="Adam betas"),
        "arch": Field(str, arch, choices=archs),
        "width": Field(int, 64, positive=True, help="base channel count of conv networks"),
    }


def adversarial_fields(*, arch: str, archs: tuple[str, ...] = ARCHS, n_critic: int = 1,
                       clip_value: float | None = None, penalty: str = "none", gp_weight: float = 10.0,
                       optimizer: str = "adam", betas: tuple[float, float] = (0.5, 0.999)) -> dict[str, Field]:
    return {
        **network_fields(arch=arch, archs=archs, betas=betas),
        "n_critic": Field(int, n_critic, positive=True, help="D steps per G step"),
        "clip_value": Field(float, clip_value, positive=True, nullable=True, help="critic weight clip"),
        "penalty": Field(str, penalty, choices=PENALTIES),
        "gp_weight": Field(float, gp_weight, minimum=0.0),
        "optimizer": Field(str, optimizer, choices=("adam", "rmsprop")),
    }


class AdversarialModel(GenerativeModel):
    """Generator G(z[, y]) and discriminator D(x[, y]) trained with `loss_name`."""

    loss_name: ClassVar[str] = "bce"
    #: D without BatchNorm: needed where a per-sample gradient penalty is taken.
    critic_normalization: ClassVar[bool] = True

    def __init__(self, spec, image_shape, num_classes):
        super().__init__(spec, image_shape, num_classes)
        self.channels_last = self.hp["arch"] == "conv"
        self.loss = ADVERSARIAL_LOSSES[self.loss_name]
        self.G, self.D = self.build_networks()
        self.apply(init_normal_weights)
        names = ["loss_d", "loss_g", "real_score", "fake_score"]
        if self.loss_name == "wasserstein":
            names.append("wasserstein_estimate")
        if self.hp.get("penalty", "none") != "none":
            names.append("gradient_penalty")
        self.metric_names = tuple(names)
        # G's last loss, logged on the critic-only steps between G updates: a buffer, so it follows the
        # model to its device and a checkpoint carries it (a resumed run logs what an uninterrupted one does).
        self.register_buffer("_last_loss_g", torch.zeros(()))

    @classmethod
    def shape_problem(cls, hparams: Mapping[str, Any], image_shape: tuple[int, int, int]) -> str | None:
        problem = conv_shape_problem(image_shape) if hparams["arch"] == "conv" else None
        if problem is None:
            return None
        mlp = "set arch: mlp, or " if "mlp" in cls.hparam_fields["arch"].choices else ""
        return f"{problem}; {mlp}pack the dataset at such a side (its `side` under `datasets:`)"

    def build_networks(self) -> tuple[nn.Module, nn.Module]:
        classes = self.num_classes if self.conditional else 0
        if self.hp["arch"] == "conv":
            return (ConvGenerator(self.hp["latent_dim"], self.image_shape, self.hp["width"]),
                    ConvDiscriminator(self.image_shape, self.hp["width"], normalization=self.critic_normalization))
        dropout = 0.4 if classes else 0.0
        hidden = (512, 512, 512) if classes else (512, 256)
        return (MLPGenerator(self.hp["latent_dim"], self.image_shape, classes),
                MLPDiscriminator(self.image_shape, classes, hidden=hidden, dropout=dropout))

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        if self.hp.get("optimizer") == "rmsprop":
            return {"g": rmsprop(self.G.parameters(), self.spec.lr), "d": rmsprop(self.D.parameters(), self.spec.lr)}
        return {"g": self.adam(self.G.parameters()), "d": self.adam(self.D.parameters())}

    def random_labels(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor | None:
        if not self.conditional:
            return None
        if generator is None:  # a training step's draw: this process's rows of the global batch
            return batch_draw(lambda rows: torch.randint(0, self.num_classes, (rows,), device=self.device), n)
        return torch.randint(0, self.num_classes, (n,), device=self.device, generator=generator)

    def training_step(self, x, y, optimizers, step) -> dict[str, torch.Tensor]:
        n = x.size(0)
        real_labels = y if self.conditional else None
        fake_labels = self.random_labels(n)
        update_g = step % self.hp["n_critic"] == 0
        # On steps that also update G, one batch of fakes serves both players (as in the DCGAN
        # reference code): D sees it detached, G's step back-propagates through it afterwards.
        with torch.set_grad_enabled(update_g):
            fake_g = self.G(self.sample_latent(n), fake_labels)
        fake = fake_g.detach()

        # -- discriminator / critic
        real_out = self.D(x, real_labels).float()
        fake_out = self.D(fake, fake_labels).float()
        loss_d = self.loss.d_loss(real_out, fake_out)
        metrics: dict[str, torch.Tensor] = {}
        if self.hp["penalty"] != "none":
            critic = lambda points: self.D(points, real_labels)  # noqa: E731
            gp = wgan_gp_penalty(critic, x, fake) if self.hp["penalty"] == "wgan_gp" else dragan_penalty(critic, x)
            loss_d = loss_d + self.hp["gp_weight"] * gp
            metrics["gradient_penalty"] = gp.detach()
        optimizer_step(optimizers["d"], loss_d)
        if self.hp["clip_value"] is not None:
            clip_weights_(self.D, self.hp["clip_value"])

        # -- generator, every n_critic steps
        if update_g:
            loss_g = self.loss.g_loss(self.D(fake_g, fake_labels).float())
            optimizer_step(optimizers["g"], loss_g)
            self._last_loss_g = loss_g.detach()

        metrics.update(
            loss_d=loss_d.detach(), loss_g=self._last_loss_g,
            real_score=self.loss.score(real_out.detach()).mean(),
            fake_score=self.loss.score(fake_out.detach()).mean(),
        )
        if self.loss_name == "wasserstein":
            metrics["wasserstein_estimate"] = (real_out.mean() - fake_out.mean()).detach()
        return metrics

    def generate(self, z, labels=None):
        return self.to_unit(self.G(z, labels if self.conditional else None))


@register_model("gan")
class GAN(AdversarialModel):
    """GAN (Goodfellow et al., 2014): MLP G and D, BCE with the non-saturating G loss."""

    hparam_fields = adversarial_fields(arch="mlp")


@register_model("dcgan")
class DCGAN(AdversarialModel):
    """DCGAN (Radford et al., 2015; seed 000): strided conv G/D with BatchNorm, BCE, Adam(2e-4, 0.5)."""

    hparam_fields = adversarial_fields(arch="conv")


@register_model("cgan")
class CGAN(AdversarialModel):
    """Conditional GAN (Mirza & Osindero, 2014; seed 004): a label embedding is joined to z and to the image."""

    conditional = True
    unlabelled_alternative = "gan"
    defaults = {"batch_size": 100}
    hparam_fields = adversarial_fields(arch="mlp", archs=("mlp",))


@register_model("lsgan")
class LSGAN(AdversarialModel):
    """LSGAN (Mao et al., 2017): least-squares targets (real 1, fake 0, G aims at 1) instead of BCE."""

    loss_name = "least_squares"
    hparam_fields = adversarial_fields(arch="conv")


@register_model("wgan")
class WGAN(AdversarialModel):
    """WGAN (Arjovsky et al., 2017): a critic without sigmoid estimates the Wasserstein-1 distance;
    its weights are clipped to [-c, c]; 5 critic steps per G step; RMSprop(5e-5)."""

    loss_name = "wasserstein"
    defaults = {"lr": 5e-5}
    hparam_fields = adversarial_fields(arch="mlp", n_critic=5, clip_value=0.01, optimizer="rmsprop")


@register_model("wgan_gp")
class WGANGP(AdversarialModel):
    """WGAN-GP (Gulrajani et al., 2017): clipping replaced by a penalty (||grad D(x_hat)|| - 1)^2 on
    real/fake interpolates, lambda 10, critic without BatchNorm, Adam(1e-4, betas (0, 0.9))."""

    loss_name = "wasserstein"
    critic_normalization = False
    defaults = {"lr": 1e-4}
    hparam_fields = adversarial_fields(arch="mlp", n_critic=5, penalty="wgan_gp", betas=(0.0, 0.9))


@register_model("dragan")
class DRAGAN(AdversarialModel):
    """DRAGAN (Kodali et al., 2017): BCE game plus a gradient penalty on real data perturbed by
    noise, which keeps D smooth around the data manifold; D without BatchNorm."""

    critic_normalization = False
    hparam_fields = adversarial_fields(arch="conv", penalty="dragan")


@register_model("bgan")
class BGAN(AdversarialModel):
    """Boundary-seeking GAN (Hjelm et al., 2018): G minimises 0.5 (log D - log(1 - D))^2, aiming
    its samples at D's decision boundary instead of past it."""

    loss_name = "boundary_seeking"
    hparam_fields = adversarial_fields(arch="mlp")

