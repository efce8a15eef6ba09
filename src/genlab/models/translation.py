"""Image-to-image models of the PyTorch-GAN catalogue: they train on a task (genlab.data.tasks).

A batch is (inputs, targets) in [-1, 1]: paired rows for paired tasks, independent draws of the two
domains otherwise, and the inputs' labels where the task keeps them (PixelDA). `translate` maps
inputs to outputs. The adversarial games use the least-squares objective the catalogue's scripts
use (DualGAN: the Wasserstein critic with clipping of its paper). Every `training_step` returns
loss_g, loss_d, real_score and fake_score, and the losses that define the type.
"""
from __future__ import annotations

from typing import Any, ClassVar, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from tqdm import tqdm

from genlab.data.tasks import TaskConfig
from genlab.grid import to_uint8
from genlab.schema import Field
from genlab.models.base import BETAS, GenerativeModel, clip_weights_, init_normal_weights, register_model
from genlab.models.image_networks import (PatchDiscriminator, ResnetGenerator, SRResNet, TaskClassifier, UNet,
                                          halvings)
from genlab.models.samples import Prompts, Samples
from genlab.objectives import ADVERSARIAL_LOSSES
from genlab.objectives.noise import batch_draw
from genlab.objectives.optim import optimizer_step, rmsprop

LS = ADVERSARIAL_LOSSES["least_squares"]
WIDTH = Field(int, 64, positive=True, help="base channel count of the networks (paper: 64)")


def _conv_init(module: nn.Module) -> None:
    init_normal_weights(module, linear=False)  # the catalogue's scripts: conv and BatchNorm2d layers only


class TranslationModel(GenerativeModel):
    """Base class: trains on a task's (input, target) batches; `translate` maps inputs to outputs."""

    trains_on = "task"
    #: True: needs paired tasks; False: unpaired; None: either.
    paired: ClassVar[bool | None] = True
    #: The task kinds it trains on (None: any kind with the right pairing).
    task_kinds: ClassVar[tuple[str, ...] | None] = None
    #: Whether inputs and targets must have the same side (the U-Net and cycle generators do).
    same_side: ClassVar[bool] = True
    #: Models whose inverse generator reconstructs the input (cycle-reconstruction error).
    cycle: ClassVar[bool] = False
    defaults = {"lr": 2e-4}

    @classmethod
    def check_task(cls, hparams: Mapping[str, Any], task: TaskConfig) -> str | None:
        """None when this type can train on `task`, else why not and what to use."""
        if cls.task_kinds is not None and task.kind not in cls.task_kinds:
            return f"it needs a task of kind {' or '.join(cls.task_kinds)}"
        if cls.paired is not None and task.paired != cls.paired:
            hint = " (an edges task with `paired: false`)" if not cls.paired else ""
            return f"it needs {'a paired' if cls.paired else 'an unpaired'} task{hint}"
        if cls.same_side and task.input_shape[1:] != task.image_shape[1:]:
            return "its generator keeps the image size, and this task's inputs and targets differ in size"
        side = task.image_shape[1]
        if halvings(side, 8) < 1:
            return f"its networks halve the side, and {side} is odd; pack the dataset at an even side"
        return None

    def __init__(self, spec, image_shape, num_classes, input_shape=None):
        super().__init__(spec, image_shape, num_classes)
        self.input_shape = tuple(input_shape or image_shape)

    def to_input(self, images):
        """(inputs, targets) uint8 -> the same in [-1, 1]."""
        if isinstance(images, (tuple, list)):
            return tuple(super(TranslationModel, self).to_input(t) for t in images)
        return super().to_input(images)

    def translate(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Inputs in [-1, 1] -> outputs in [-1, 1]; `generator` (CPU) draws any noise the model takes."""
        raise NotImplementedError

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor | None:
        """The inverse generator applied to the translation (cycle models), else None."""
        return None

    def classify(self, images: torch.Tensor) -> torch.Tensor | None:
        """Class logits of target-domain images in [-1, 1] (PixelDA's task classifier), else None."""
        return None

    # -- drawing samples: outputs for inputs ------------------------------------------------------
    def prompts(self, n, source=None):
        """The first `n` inputs of `source` (a task split: the training split for epoch grids and checkpoint
        selection, the test split for the sample stage), with the targets their outputs are compared with."""
        if source is None:
            raise ValueError(f"{self.spec.name} ({self.type_name}) translates images: it needs inputs to draw from")
        (inputs, targets), _ = source.head(n)
        n = min(len(inputs), len(targets))
        return Prompts(n, inputs=inputs[:n], targets=targets[:n])

    @torch.no_grad()
    def sample(self, prompts, generator, batch_size=None, progress=None):
        """Outputs for the prompts' inputs (and a cycle model's reconstructions of them), uint8 on the CPU."""
        step = batch_size or max(prompts.n, 1)
        parts: dict[str, list[torch.Tensor]] = {"images": [], **({"reconstructions": []} if self.cycle else {})}
        with tqdm(total=prompts.n, desc=progress, unit="img", dynamic_ncols=True, disable=progress is None) as bar:
            for start in range(0, prompts.n, step):
                x = self.to_input(prompts.inputs[start:start + step].to(self.device))
                parts["images"].append(to_uint8(self.to_unit(self.translate(x, generator))).cpu())
                if self.cycle:
                    parts["reconstructions"].append(to_uint8(self.to_unit(self.reconstruct(x))).cpu())
                bar.update(len(x))
        images = torch.cat(parts.pop("images"))
        return Samples(images, inputs=prompts.inputs[:prompts.n].cpu(),
                       targets=None if prompts.targets is None else prompts.targets.cpu(),
                       extras={key: torch.cat(value) for key, value in parts.items()}, paired=self.paired is True)


def gan_metrics(real_out: torch.Tensor, fake_out: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"real_score": LS.score(real_out.detach().float()).mean(),
            "fake_score": LS.score(fake_out.detach().float()).mean()}


# --------------------------------------------------------------------------- pix2pix
@register_model("pix2pix")
class Pix2Pix(TranslationModel):
    """pix2pix (Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial
    Networks"): a U-Net G and a PatchGAN D that judges (input, image) pairs patch by patch;
    G minimises the adversarial loss plus lambda_pixel (100) times the L1 distance to the target."""

    hparam_fields = {"width": WIDTH, "betas": BETAS,
                     "lambda_pixel": Field(float, 100.0, minimum=0.0, help="weight of the L1 loss")}
    metric_names = ("loss_d", "loss_g", "real_score", "fake_score", "loss_pixel")

    def __init__(self, spec, image_shape, num_classes, input_shape=None):
        super().__init__(spec, image_shape, num_classes, input_shape)
        c_in, c_out, side = self.input_shape[0], image_shape[0], image_shape[1]
        self.G = UNet(c_in, c_out, side, self.hp["width"])
        self.D = PatchDiscriminator(c_in + c_out, side, self.hp["width"])
        self.apply(_conv_init)

    def configure_optimizers(self):
        return {"g": self.adam(self.G.parameters()), "d": self.adam(self.D.parameters())}

    def translate(self, x, generator=None):
        return self.G(x)

    def training_step(self, x, y, optimizers, step):
        a, b = x
        fake = self.G(a)
        pred_fake = self.D(torch.cat([a, fake], 1)).float()
        loss_pixel = F.l1_loss(fake.float(), b.float())
        loss_g = LS.g_loss(pred_fake) + self.hp["lambda_pixel"] * loss_pixel
        optimizer_step(optimizers["g"], loss_g)
        real_out = self.D(torch.cat([a, b], 1)).float()
        fake_out = self.D(torch.cat([a, fake.detach()], 1)).float()
        loss_d = LS.d_loss(real_out, fake_out)
        optimizer_step(optimizers["d"], loss_d)
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(), "loss_pixel": loss_pixel.detach(),
                **gan_metrics(real_out, fake_out)}


# --------------------------------------------------------------------------- the unpaired family
class TwoWayModel(TranslationModel):
    """Two generators (A->B, B->A) and two discriminators, one per domain; `translate` is A->B."""

    paired = False
    cycle = True

    def build(self) -> None:
        raise NotImplementedError

    def __init__(self, spec, image_shape, num_classes, input_shape=None):
        super().__init__(spec, image_shape, num_classes, input_shape)
        self.build()
        self.apply(_conv_init)

    def configure_optimizers(self):
        generators = list(self.G_AB.parameters()) + list(self.G_BA.parameters())
        return {"g": self.adam(generators), "d_a": self.adam(self.D_A.parameters()),
                "d_b": self.adam(self.D_B.parameters())}

    def translate(self, x, generator=None):
        return self.G_AB(x)

    def reconstruct(self, x):
        return self.G_BA(self.G_AB(x))

    def generator_losses(self, a, b, fake_a, fake_b) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """G's total loss on top of the adversarial terms, and its named parts."""
        raise NotImplementedError

    def training_step(self, x, y, optimizers, step):
        a, b = x
        fake_b, fake_a = self.G_AB(a), self.G_BA(b)
        adversarial = (LS.g_loss(self.D_B(fake_b).float()) + LS.g_loss(self.D_A(fake_a).float())) / 2
        extra, parts = self.generator_losses(a, b, fake_a, fake_b)
        loss_g = adversarial + extra
        optimizer_step(optimizers["g"], loss_g)
        real_a, fake_a_out = self.D_A(a).float(), self.D_A(fake_a.detach()).float()
        loss_d_a = LS.d_loss(real_a, fake_a_out)
        optimizer_step(optimizers["d_a"], loss_d_a)
        real_b, fake_b_out = self.D_B(b).float(), self.D_B(fake_b.detach()).float()
        loss_d_b = LS.d_loss(real_b, fake_b_out)
        optimizer_step(optimizers["d_b"], loss_d_b)
        return {"loss_d": ((loss_d_a + loss_d_b) / 2).detach(), "loss_g": loss_g.detach(),
                **gan_metrics(real_b, fake_b_out), **{k: v.detach() for k, v in parts.items()}}


@register_model("cyclegan")
class CycleGAN(TwoWayModel):
    """CycleGAN (Zhu et al. 2017, "Unpaired Image-to-Image Translation using Cycle-Consistent
    Adversarial Networks"): ResNet generators both ways, PatchGAN discriminators, least-squares
    game, cycle loss lambda_cyc (10) * |G_BA(G_AB(a)) - a|_1 both ways, identity loss lambda_id (5)
    * |G_AB(b) - b|_1 both ways. (The catalogue's 50-image replay buffer is not used: D sees the
    current G's images.)"""

    hparam_fields = {"width": WIDTH, "betas": BETAS,
                     "residual_blocks": Field(int, 9, positive=True, help="ResNet blocks per generator"),
                     "lambda_cyc": Field(float, 10.0, minimum=0.0), "lambda_id": Field(float, 5.0, minimum=0.0)}
    metric_names = ("loss_d", "loss_g", "real_score", "fake_score", "loss_cycle", "loss_identity")

    @classmethod
    def check_task(cls, hparams, task):
        if task.input_shape[0] != task.image_shape[0] and hparams["lambda_id"] > 0:
            return "its identity loss feeds each domain's images to the other's generator, and the two domains " \
                   "differ in channels; set lambda_id: 0"
        return super().check_task(hparams, task)

    def build(self):
        c_a, c_b, side, w = self.input_shape[0], self.image_shape[0], self.image_shape[1], self.hp["width"]
        downs, blocks = min(2, halvings(side, 2)), self.hp["residual_blocks"]
        self.G_AB = ResnetGenerator(c_a, c_b, w, blocks, downs)
        self.G_BA = ResnetGenerator(c_b, c_a, w, blocks, downs)
        self.D_A = PatchDiscriminator(c_a, side, w)
        self.D_B = PatchDiscriminator(c_b, side, w)

    def generator_losses(self, a, b, fake_a, fake_b):
        cycle = (F.l1_loss(self.G_BA(fake_b), a) + F.l1_loss(self.G_AB(fake_a), b)) / 2
        identity = torch.zeros((), device=a.device)
        if self.hp["lambda_id"] > 0:
            identity = (F.l1_loss(self.G_BA(a), a) + F.l1_loss(self.G_AB(b), b)) / 2
        return (self.hp["lambda_cyc"] * cycle + self.hp["lambda_id"] * identity,
                {"loss_cycle": cycle, "loss_identity": identity})


@register_model("discogan")
class DiscoGAN(TwoWayModel):
    """DiscoGAN (Kim et al. 2017, "Learning to Discover Cross-Domain Relations with Generative
    Adversarial Networks"): two U-Net generators coupled by reconstruction losses
    |G_BA(G_AB(a)) - a|_1 and |G_AB(G_BA(b)) - b|_1 (weight lambda_rec, 1) on top of each domain's
    adversarial loss, PatchGAN discriminators, the catalogue's least-squares game."""

    hparam_fields = {"width": WIDTH, "betas": BETAS, "lambda_rec": Field(float, 1.0, minimum=0.0)}
    metric_names = ("loss_d", "loss_g", "real_score", "fake_score", "loss_reconstruction")

    def build(self):
        c_a, c_b, side, w = self.input_shape[0], self.image_shape[0], self.image_shape[1], self.hp["width"]
        self.G_AB, self.G_BA = UNet(c_a, c_b, side, w, dropout=0.0), UNet(c_b, c_a, side, w, dropout=0.0)
        self.D_A, self.D_B = PatchDiscriminator(c_a, side, w), PatchDiscriminator(c_b, side, w)

    def generator_losses(self, a, b, fake_a, fake_b):
        rec = F.l1_loss(self.G_BA(fake_b), a) + F.l1_loss(self.G_AB(fake_a), b)
        return self.hp["lambda_rec"] * rec, {"loss_reconstruction": rec}


@register_model("dualgan")
class DualGAN(TwoWayModel):
    """DualGAN (Yi et al. 2017, "DualGAN: Unsupervised Dual Learning for Image-to-Image
    Translation"): primal and dual U-Net generators, Wasserstein critics without normalisation
    whose weights are clipped to [-c, c] (c 0.01), n_critic (2) critic steps per generator step,
    RMSprop (5e-5), and reconstruction losses weighted lambda_rec (20) both ways."""

    defaults = {"lr": 5e-5}
    hparam_fields = {"width": WIDTH, "lambda_rec": Field(float, 20.0, minimum=0.0),
                     "clip_value": Field(float, 0.01, positive=True, help="critic weight clip"),
                     "n_critic": Field(int, 2, positive=True, help="critic steps per generator step")}
    metric_names = ("loss_d", "loss_g", "real_score", "fake_score", "loss_reconstruction", "wasserstein_estimate")
    W = ADVERSARIAL_LOSSES["wasserstein"]

    def build(self):
        c_a, c_b, side, w = self.input_shape[0], self.image_shape[0], self.image_shape[1], self.hp["width"]
        self.G_AB, self.G_BA = UNet(c_a, c_b, side, w, dropout=0.0), UNet(c_b, c_a, side, w, dropout=0.0)
        self.D_A, self.D_B = PatchDiscriminator(c_a, side, w, norm=None), PatchDiscriminator(c_b, side, w, norm=None)
        # G's last losses for the critic-only steps: buffers, on the model's device and in its checkpoint
        self.register_buffer("_last_loss_g", torch.zeros(()))
        self.register_buffer("_last_loss_reconstruction", torch.zeros(()))

    def configure_optimizers(self):
        generators = list(self.G_AB.parameters()) + list(self.G_BA.parameters())
        rms = lambda params: rmsprop(params, self.spec.lr)  # noqa: E731
        return {"g": rms(generators), "d_a": rms(self.D_A.parameters()), "d_b": rms(self.D_B.parameters())}

    def training_step(self, x, y, optimizers, step):
        a, b = x
        update_g = step % self.hp["n_critic"] == 0
        with torch.set_grad_enabled(update_g):
            fake_b, fake_a = self.G_AB(a), self.G_BA(b)
        outs = {}
        for name, critic, real, fake in (("a", self.D_A, a, fake_a), ("b", self.D_B, b, fake_b)):
            real_out, fake_out = critic(real).float(), critic(fake.detach()).float()
            loss = self.W.d_loss(real_out, fake_out)
            optimizer_step(optimizers[f"d_{name}"], loss)
            clip_weights_(critic, self.hp["clip_value"])
            outs[name] = (loss, real_out, fake_out)
        if update_g:
            rec = F.l1_loss(self.G_BA(fake_b), a) + F.l1_loss(self.G_AB(fake_a), b)
            loss_g = (self.W.g_loss(self.D_B(fake_b).float()) + self.W.g_loss(self.D_A(fake_a).float())
                      + self.hp["lambda_rec"] * rec)
            optimizer_step(optimizers["g"], loss_g)
            self._last_loss_g, self._last_loss_reconstruction = loss_g.detach(), rec.detach()
        loss_b, real_b, fake_b_out = outs["b"]
        return {"loss_d": ((outs["a"][0] + loss_b) / 2).detach(), "loss_g": self._last_loss_g,
                "loss_reconstruction": self._last_loss_reconstruction,
                "real_score": real_b.detach().mean(), "fake_score": fake_b_out.detach().mean(),
                "wasserstein_estimate": (real_b.mean() - fake_b_out.mean()).detach()}


# --------------------------------------------------------------------------- SRGAN
@register_model("srgan")
class SRGAN(TranslationModel):
    """SRGAN (Ledig et al. 2017, "Photo-Realistic Single Image Super-Resolution Using a Generative
    Adversarial Network"): an SRResNet G (residual blocks, PixelShuffle x2 per doubling) and a
    patch D; G minimises a content loss, the L1 distance between features of its output and of the
    target, plus 1e-3 (lambda_adv) times the adversarial loss. The features are VGG19's conv3_4
    (as the catalogue's srgan.py) when torchvision's VGG19 weights are on disk, else the dataset
    classifier's second conv block; which one is logged with the run (`model.content_features`)."""

    task_kinds = ("super_resolution",)
    same_side = False
    hparam_fields = {"width": WIDTH, "betas": BETAS,
                     "residual_blocks": Field(int, 16, positive=True, help="residual blocks of G"),
                     "lambda_adv": Field(float, 1e-3, minimum=0.0, help="weight of the adversarial loss"),
                     "content_features": Field(str, "auto", choices=("auto", "vgg19", "classifier"),
                                               help="auto: VGG19 when its weights are on disk, else the classifier")}
    metric_names = ("loss_d", "loss_g", "real_score", "fake_score", "loss_content")

    @classmethod
    def check_task(cls, hparams, task):
        problem = super().check_task(hparams, task)
        factor = task.settings.get("factor", 2)
        if problem is None and factor & (factor - 1):
            return f"its generator doubles the side per upsampling block; factor {factor} is not a power of 2"
        return problem

    def __init__(self, spec, image_shape, num_classes, input_shape=None):
        super().__init__(spec, image_shape, num_classes, input_shape)
        factor = image_shape[1] // self.input_shape[1]
        self.G = SRResNet(self.input_shape[0], image_shape[0], factor, self.hp["width"], self.hp["residual_blocks"])
        self.D = PatchDiscriminator(image_shape[0], image_shape[1], self.hp["width"], norm="batch")
        self.apply(_conv_init)
        self._features: list[nn.Module] = []  # not a submodule: frozen, never saved with the model

    def prepare(self, resources):
        """Take the content-loss features the train stage built; returns which they are, for the run's params."""
        features, used = resources.content_features(self.hp["content_features"], f"models.{self.spec.name}")
        self._features = [features.to(self.device).eval().requires_grad_(False)]
        return {"model.content_features_used": used}

    def _content(self, x: torch.Tensor) -> torch.Tensor:
        return self._features[0]((x.float() + 1) / 2)

    def translate(self, x, generator=None):
        return self.G(x)

    def training_step(self, x, y, optimizers, step):
        lr, hr = x
        fake = self.G(lr)
        loss_content = F.l1_loss(self._content(fake), self._content(hr).detach())
        loss_g = loss_content + self.hp["lambda_adv"] * LS.g_loss(self.D(fake).float())
        optimizer_step(optimizers["g"], loss_g)
        real_out, fake_out = self.D(hr).float(), self.D(fake.detach()).float()
        loss_d = LS.d_loss(real_out, fake_out)
        optimizer_step(optimizers["d"], loss_d)
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(), "loss_content": loss_content.detach(),
                **gan_metrics(real_out, fake_out)}

    def configure_optimizers(self):
        return {"g": self.adam(self.G.parameters()), "d": self.adam(self.D.parameters())}


# --------------------------------------------------------------------------- CCGAN
@register_model("ccgan")
class CCGAN(TranslationModel):
    """Context-conditional GAN (Denton et al. 2016, "Semi-Supervised Learning with Context-
    Conditional Generative Adversarial Networks"): a U-Net G sees the image with its centre square
    masked and fills it; only the masked region comes from G, the rest is the input's own context.
    A PatchGAN D judges whole in-filled images against real ones (least squares, as the catalogue)."""

    task_kinds = ("inpainting",)
    hparam_fields = {"width": WIDTH, "betas": BETAS}
    metric_names = ("loss_d", "loss_g", "real_score", "fake_score", "loss_pixel")

    def __init__(self, spec, image_shape, num_classes, input_shape=None):
        super().__init__(spec, image_shape, num_classes, input_shape)
        c, side = image_shape[0], image_shape[1]
        self.G = UNet(c, c, side, self.hp["width"], dropout=0.0)
        self.D = PatchDiscriminator(c, side, self.hp["width"])
        self.apply(_conv_init)
        self.register_buffer("mask", torch.zeros(1, 1, side, side))  # saved with the model

    def prepare(self, resources):
        """The mask: where the task painted its inputs white (its settings name the square)."""
        from genlab.data.tasks import mask_box

        lo, hi = mask_box(self.image_shape[1], resources.task["mask"])
        self.mask.zero_()
        self.mask[..., lo:hi, lo:hi] = 1
        return {}

    def fill(self, x: torch.Tensor) -> torch.Tensor:
        return self.mask * self.G(x) + (1 - self.mask) * x

    def translate(self, x, generator=None):
        return self.fill(x)

    def training_step(self, x, y, optimizers, step):
        masked_in, real = x
        fake = self.fill(masked_in)
        loss_g = LS.g_loss(self.D(fake).float())
        optimizer_step(optimizers["g"], loss_g)
        real_out, fake_out = self.D(real).float(), self.D(fake.detach()).float()
        loss_d = LS.d_loss(real_out, fake_out)
        optimizer_step(optimizers["d"], loss_d)
        loss_pixel = F.l1_loss(fake.detach().float(), real.float())  # tracked, not optimised
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(), "loss_pixel": loss_pixel,
                **gan_metrics(real_out, fake_out)}

    def configure_optimizers(self):
        return {"g": self.adam(self.G.parameters()), "d": self.adam(self.D.parameters())}


# --------------------------------------------------------------------------- PixelDA
@register_model("pixelda")
class PixelDA(TranslationModel):
    """PixelDA (Bousmalis et al. 2017, "Unsupervised Pixel-Level Domain Adaptation with Generative
    Adversarial Networks"): G turns a labelled source image plus noise into a target-domain image;
    D tells translated from real target images; a task classifier learns the source labels on
    translated (and source) images, so that it works on the target domain, whose labels it never
    sees. lambda_adv 1, lambda_task 0.1, a 10-d noise, 6 residual blocks, as the catalogue."""

    paired = False
    same_side = True
    task_kinds = ("blend",)
    classifies = True
    hparam_fields = {"width": WIDTH, "betas": BETAS, "latent_dim": Field(int, 10, positive=True),
                     "residual_blocks": Field(int, 6, positive=True),
                     "lambda_adv": Field(float, 1.0, minimum=0.0), "lambda_task": Field(float, 0.1, minimum=0.0)}
    metric_names = ("loss_d", "loss_g", "real_score", "fake_score", "loss_task", "task_acc_source",
                    "task_acc_translated")

    def __init__(self, spec, image_shape, num_classes, input_shape=None):
        super().__init__(spec, image_shape, num_classes, input_shape)
        c_in, c_out, side, w = self.input_shape[0], image_shape[0], image_shape[1], self.hp["width"]
        self.noise = nn.Linear(self.hp["latent_dim"], side * side)
        self.G = ResnetGenerator(c_in + 1, c_out, w, self.hp["residual_blocks"], downs=0)
        self.D = PatchDiscriminator(c_out, side, w)
        self.C = TaskClassifier(c_out, side, num_classes, w)
        self.apply(_conv_init)

    def configure_optimizers(self):
        return {"g": self.adam(list(self.G.parameters()) + list(self.noise.parameters()) + list(self.C.parameters())),
                "d": self.adam(self.D.parameters())}

    def translate(self, x, generator: torch.Generator | None = None):
        if generator is None:  # a training step's draw: this process's rows of the global batch
            z = batch_draw(torch.randn, x.size(0), self.hp["latent_dim"], device=x.device)
        else:
            z = torch.randn(x.size(0), self.hp["latent_dim"], generator=generator, device="cpu").to(x.device)
        noise_map = self.noise(z).view(x.size(0), 1, *x.shape[-2:])
        return self.G(torch.cat([x, noise_map.to(x.dtype)], 1))

    def classify(self, images):
        return self.C(images)

    def _source_as_target(self, a):
        return a.expand(-1, self.image_shape[0], -1, -1)

    def training_step(self, x, y, optimizers, step):
        a, b = x
        fake = self.translate(a)
        logits_fake, logits_source = self.C(fake).float(), self.C(self._source_as_target(a)).float()
        loss_task = (F.cross_entropy(logits_fake, y) + F.cross_entropy(logits_source, y)) / 2
        loss_g = self.hp["lambda_adv"] * LS.g_loss(self.D(fake).float()) + self.hp["lambda_task"] * loss_task
        optimizer_step(optimizers["g"], loss_g)
        real_out, fake_out = self.D(b).float(), self.D(fake.detach()).float()
        loss_d = LS.d_loss(real_out, fake_out)
        optimizer_step(optimizers["d"], loss_d)
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(), "loss_task": loss_task.detach(),
                "task_acc_source": (logits_source.argmax(1) == y).float().mean(),
                "task_acc_translated": (logits_fake.argmax(1) == y).float().mean(),
                **gan_metrics(real_out, fake_out)}
