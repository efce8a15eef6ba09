"""The contract every model follows, and the registry keyed by the `type:` users write.

A model owns its networks and optimizers and knows how one training step updates them;
the training loop (genlab.training.loop) is the same for every model. Images enter a
model as uint8 tensors and leave `generate` as floats in [0, 1]; what the rest of genlab reads
is `sample`'s uint8 `Samples` (genlab.models.samples). `check_data` tells params validation,
before anything runs, whether a type can train on a dataset at all.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Protocol

import torch
from torch import nn

from tqdm import tqdm

from genlab.grid import balanced_labels, to_uint8
from genlab.models.samples import Prompts, PromptSource, Samples
from genlab.schema import Field
from genlab.objectives.noise import batch_draw
from genlab.objectives.optim import adam

@dataclass(frozen=True)
class ModelSpec:
    """One entry of `models:` in params.yaml, merged with its type's defaults."""

    name: str
    type: str
    epochs: int
    batch_size: int
    lr: float
    steps_per_epoch: int | None = None
    hparams: Mapping[str, Any] = field(default_factory=dict)
    dataset: str = "fashion-mnist"
    seeds: tuple[int, ...] | None = None  # its own training seeds (None: the top-level `seeds`)

    def flat(self) -> dict[str, Any]:
        return {"type": self.type, "dataset": self.dataset, "epochs": self.epochs, "batch_size": self.batch_size,
                "lr": self.lr, "steps_per_epoch": self.steps_per_epoch, **self.hparams}


MODEL_TYPES: dict[str, type["GenerativeModel"]] = {}


def register_model(name: str):
    """Class decorator: make a model available as `type: <name>` in params.yaml."""

    def wrap(cls: type[GenerativeModel]) -> type[GenerativeModel]:
        if name in MODEL_TYPES:
            raise KeyError(f"model type {name!r} registered twice")
        cls.type_name = name
        MODEL_TYPES[name] = cls
        return cls

    return wrap


#: Suggested where a type needs labels the dataset lacks (the packed datasets that have them).
LABELLED_DATASETS = "mnist, fashion-mnist or cifar10"


class TrainingData(Protocol):
    """The training split as `after_training` sees it: large splits are not held in memory."""

    def head(self, k: int | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The first k training images (None: all) as uint8 (k, C, H, W) on the model's device,
        and their labels (None for an unlabelled dataset)."""
        ...


class Resources(Protocol):
    """What the train stage hands a model's `prepare`, besides the data."""

    #: The task's settings (an image-to-image model's task), else None.
    task: Mapping[str, Any] | None

    def content_features(self, choice: str, owner: str) -> tuple[nn.Module, str]:
        """A frozen perceptual feature network of images in [0, 1], and a line saying which it is: `choice`
        "vgg19" (ImageNet VGG19's conv3_4), "classifier" (the dataset classifier's second conv block) or
        "auto" (VGG19 when its weights are on disk); `owner` names the params entry in error messages."""
        ...


class GenerativeModel(nn.Module):
    """Base class: subclasses build networks in __init__ and implement the hooks below. What a model
    gives to the rest of genlab is `sample`'s result (genlab.models.samples)."""

    type_name: ClassVar[str] = ""
    #: Overrides of the common model fields (epochs, batch_size, lr) for this type.
    defaults: ClassVar[Mapping[str, Any]] = {}
    #: Type-specific hyperparameters, validated by genlab.config.
    hparam_fields: ClassVar[Mapping[str, Field]] = {}
    #: Models that take a class label in `generate`.
    conditional: ClassVar[bool] = False
    #: The precision it was trained in (set when loaded from a model file; labelled in the leaderboard).
    train_precision: str = "fp32"
    #: Names of the per-step metrics `training_step` returns (logged to MLflow).
    metric_names: ClassVar[tuple[str, ...]] = ()
    #: Whether inputs are scaled to [-1, 1] (tanh generators) or [0, 1] (sigmoid decoders).
    symmetric_pixels: ClassVar[bool] = True
    #: The type suggested instead on a dataset without labels, for types that need them.
    unlabelled_alternative: ClassVar[str] = ""
    #: What a type trains on: a packed "dataset", or a "task" (the image-to-image types of
    #: genlab.models.translation, which translate its inputs into its targets).
    trains_on: ClassVar[str] = "dataset"
    #: (C, H, W) of the images a model translates; None for a model that draws from noise.
    input_shape: tuple[int, int, int] | None = None
    #: Whether it has a task classifier whose predictions the evaluate stage scores (PixelDA's).
    classifies: ClassVar[bool] = False
    #: Weights and images in channels_last memory format (build_model, to_input): set for the nets where
    #: it was measured faster (DCGAN-style conv GANs and the conv autoencoders: 1.14-1.28x per training
    #: step on CPU); the image-to-image nets measured 0.85-1.05x and keep torch's default layout.
    channels_last: bool = False

    # -- what data a type can train on ------------------------------------------------------
    @classmethod
    def check_data(cls, hparams: Mapping[str, Any], image_shape: tuple[int, int, int],
                   num_classes: int) -> str | None:
        """None when this type, with its validated type-specific `hparams`, can train on images of
        `image_shape` (C, H, W) with `num_classes` classes (0: an unlabelled dataset such as LFW or
        CelebA); otherwise why not and what to do, phrased to follow
        `models.<name>: type <type> cannot train on dataset <d> (CxHxW): `. Params validation calls
        it for every model, so a mismatch fails in seconds instead of when the train stage builds
        the networks or meets its first unlabelled batch."""
        reason = cls.label_requirement()
        if reason and num_classes < 1:
            return (f"{reason}, so it needs class labels and the dataset has none; use type "
                    f"{cls.unlabelled_alternative}, or a dataset with labels ({LABELLED_DATASETS})")
        return cls.shape_problem(hparams, tuple(image_shape))

    @classmethod
    def label_requirement(cls) -> str | None:
        """Why training needs class labels, or None when the type trains on unlabelled data too."""
        return "it is conditional (it generates the class it is given)" if cls.conditional else None

    @classmethod
    def shape_problem(cls, hparams: Mapping[str, Any], image_shape: tuple[int, int, int]) -> str | None:
        """Why the networks cannot take `image_shape`, with what to do; None for MLP nets (any shape)."""
        return None

    def __init__(self, spec: ModelSpec, image_shape: tuple[int, int, int], num_classes: int):
        super().__init__()
        self.spec = spec
        self.hp = dict(spec.hparams)
        self.image_shape = tuple(image_shape)
        self.num_classes = num_classes

    # -- hooks -------------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def training_step(self, x: torch.Tensor, y: torch.Tensor | None,
                      optimizers: Mapping[str, torch.optim.Optimizer], step: int) -> dict[str, torch.Tensor]:
        """Update the networks on one batch; return detached scalar tensors named in metric_names.

        `y` is None on an unlabelled dataset; only types `check_data` refuses there read it."""
        raise NotImplementedError

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Latent codes for `generate`; `generator` (on CPU) makes them reproducible."""
        if generator is None:  # a training step's draw: this process's rows of the global batch
            noise = batch_draw(torch.randn, n, self.hp["latent_dim"], device=self.device)
        else:
            noise = torch.randn(n, self.hp["latent_dim"], generator=generator, device=generator.device)
        return self.noise_to_latent(noise.to(self.device))

    def noise_to_latent(self, noise: torch.Tensor) -> torch.Tensor:
        """Map N(0, I) noise to the model's prior (the identity for all but the plain AE)."""
        return noise

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images in [0, 1], shape (n, C, H, W), from latent codes (and labels if conditional)."""
        raise NotImplementedError

    def after_training(self, data: TrainingData) -> None:
        """Called once when training ends, with the training split (e.g. to fit a prior on it)."""

    def prepare(self, resources: Resources) -> dict[str, str]:
        """Called before training (and on resume) with what the train stage holds besides the data (see
        `Resources`); returns params to record with the run (e.g. which features a content loss uses)."""
        return {}

    # -- drawing samples ------------------------------------------------------------------------
    def prompts(self, n: int, source: PromptSource | None = None) -> Prompts:
        """What `n` samples are drawn for: noise alone, with balanced class labels for a conditional model
        (a noise-to-image model takes nothing from `source`)."""
        return Prompts(n, balanced_labels(n, self.num_classes) if self.conditional else None)

    @torch.no_grad()
    def sample(self, prompts: Prompts, generator: torch.Generator, batch_size: int | None = None,
               progress: str | None = None) -> Samples:
        """The samples of `prompts` in network passes of `batch_size` (None: one pass), their noise drawn
        from `generator` (on CPU, so the same seed gives the same bytes everywhere); `progress` labels a
        progress bar (None: no bar). The caller sets eval or train mode."""
        step = batch_size or max(prompts.n, 1)
        chunks = []
        with tqdm(total=prompts.n, desc=progress, unit="img", dynamic_ncols=True, disable=progress is None) as bar:
            for start in range(0, prompts.n, step):
                m = min(step, prompts.n - start)
                labels = None if prompts.labels is None else prompts.labels[start:start + m].to(self.device)
                chunks.append(to_uint8(self.generate(self.sample_latent(m, generator=generator), labels)).cpu())
                bar.update(m)
        return Samples(torch.cat(chunks), None if prompts.labels is None else prompts.labels.cpu())

    # -- helpers -------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def to_input(self, images_uint8: torch.Tensor) -> torch.Tensor:
        x = images_uint8.float() / 255.0
        if self.channels_last and x.dim() == 4:  # a batch of images
            x = x.contiguous(memory_format=torch.channels_last)
        return x * 2 - 1 if self.symmetric_pixels else x

    def to_unit(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        return ((x + 1) / 2).clamp(0, 1) if self.symmetric_pixels else x.clamp(0, 1)

    def adam(self, params, betas_key: str = "betas") -> torch.optim.Adam:
        return adam(params, self.spec.lr, self.hp.get(betas_key, (0.5, 0.999)))


LATENT = Field(int, 100, positive=True, help="size of the latent vector z")
BETAS = Field(list, (0.5, 0.999), length=2, minimum=0.0, below=1.0, help="Adam betas")


def init_normal_weights(module: nn.Module, linear: bool = True) -> None:
    """Radford et al. (2015)'s DCGAN initialisation, for ``model.apply``: N(0, 0.02) weights and zero biases
    of conv layers (and of fully connected ones with ``linear``), N(1, 0.02) BatchNorm scales and zero
    shifts. The noise-to-image models take it whole; the image-to-image scripts of the PyTorch-GAN
    catalogue initialise their conv and BatchNorm2d layers only (``linear=False``)."""
    weighted = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear) if linear else (nn.Conv2d, nn.ConvTranspose2d)
    norms = (nn.BatchNorm2d, nn.BatchNorm1d) if linear else (nn.BatchNorm2d,)
    if isinstance(module, weighted):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, norms):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


@torch.no_grad()
def clip_weights_(module: nn.Module, clip_value: float) -> None:
    """Clamp every parameter of `module` to [-c, c] in place (the WGAN critic's Lipschitz bound):
    two fused multi-tensor kernels instead of one clamp kernel per parameter."""
    params = list(module.parameters())
    torch._foreach_clamp_min_(params, -clip_value)
    torch._foreach_clamp_max_(params, clip_value)
