"""Behaviour of every registered model type and the objectives that define them.

Everything runs on CPU in fp32 with tiny networks (`width: 8`, small latent sizes) and a few
steps, so the whole file takes about half a minute on 2 cores. Each test seeds torch itself.
"""
from __future__ import annotations

import hashlib
import math

import pytest
import torch

from genlab.config import parse_params
from genlab.models import MODEL_TYPES, build_model
from genlab.models.base import clip_weights_
from genlab.models.autoencoders import downsamplings
from genlab.models.networks import stride2_blocks
from genlab.objectives import ADVERSARIAL_LOSSES, dragan_penalty, gaussian_kl, reparameterize, wgan_gp_penalty
from genlab.objectives.penalties import interpolates

IMAGE_SHAPE = (1, 28, 28)
NUM_CLASSES = 10
ALL_TYPES = sorted(k for k, cls in MODEL_TYPES.items() if cls.trains_on == "dataset")  # image-to-image: test_translation
CONDITIONAL_TYPES = ("acgan", "cgan", "cvae")
ADVERSARIAL_NETS = {"G", "D"}
#: The networks one training step updates, per type (top-level attributes of the model).
TRAINED_NETWORKS = {
    **{kind: ADVERSARIAL_NETS for kind in ("gan", "dcgan", "cgan", "acgan", "lsgan", "wgan",
                                           "wgan_gp", "dragan", "bgan", "sgan")},
    "ae": {"encoder", "decoder"},
    "vae": {"encoder", "decoder"},
    "cvae": {"encoder", "decoder"},
    "aae": {"encoder", "decoder", "latent_critic"},
}


def small_spec(kind: str, **hparams):
    """A spec of `kind` with tiny networks, validated by params parsing exactly as the pipeline does."""
    fields = MODEL_TYPES[kind].hparam_fields
    small = {key: value for key, value in {"width": 8, "latent_dim": 8}.items() if key in fields}
    return parse_params({"models": {"m": {"type": kind, **small, **hparams}}}).models["m"]


def build(kind: str, num_classes: int = NUM_CLASSES, image_shape=IMAGE_SHAPE, **hparams):
    """A small model of `kind` for images of `image_shape`."""
    return build_model(small_spec(kind, **hparams), image_shape, num_classes)


def batch(n: int = 8, num_classes: int = NUM_CLASSES, seed: int = 1, image_shape=IMAGE_SHAPE):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, *image_shape), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, num_classes, (n,), generator=g)
    return images, labels


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks: one intra-op thread is faster, and far faster on a shared 2-core machine
    (OpenMP workers of several processes thrash). Restored after each test."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def snapshot(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def test_registry_has_every_documented_type():
    assert set(ALL_TYPES) == {"gan", "dcgan", "cgan", "acgan", "lsgan", "wgan", "wgan_gp", "dragan",
                              "bgan", "sgan", "aae", "ae", "vae", "cvae"}
    assert set(MODEL_TYPES) - set(ALL_TYPES) == {"pix2pix", "cyclegan", "discogan", "dualgan", "srgan", "ccgan",
                                                 "pixelda"}
    assert set(TRAINED_NETWORKS) == set(ALL_TYPES)


# --------------------------------------------------------------------------- every type
@pytest.mark.parametrize("kind", ALL_TYPES)
def test_generate_shape_and_range(kind):
    torch.manual_seed(0)
    model = build(kind)
    n = 6
    z = model.sample_latent(n)
    assert z.shape == (n, model.hp["latent_dim"])
    labels = torch.arange(n) % NUM_CLASSES
    with torch.no_grad():
        images = model.generate(z, labels)
        # far-out latents must still give valid pixels (clamp / sigmoid, not just luck)
        extreme = model.generate(z * 50, labels)
    for out in (images, extreme):
        assert out.shape == (n, *IMAGE_SHAPE)
        assert out.dtype == torch.float32
        assert torch.isfinite(out).all()
        assert out.min() >= 0 and out.max() <= 1
    assert images.std() > 0  # not a constant image


@pytest.mark.parametrize("kind", ["dcgan", "vae"])
def test_pixel_scaling(kind):
    model = build(kind)
    pixels = torch.tensor([0, 51, 255], dtype=torch.uint8)
    if model.symmetric_pixels:  # tanh generators: inputs in [-1, 1]
        assert torch.allclose(model.to_input(pixels), torch.tensor([-1.0, -0.6, 1.0]))
        assert torch.allclose(model.to_unit(torch.tensor([-3.0, -1.0, 0.0, 1.0, 3.0])),
                              torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))
    else:  # sigmoid decoders: inputs in [0, 1]
        assert torch.allclose(model.to_input(pixels), torch.tensor([0.0, 0.2, 1.0]))
        assert torch.allclose(model.to_unit(torch.tensor([-3.0, 0.5, 3.0])), torch.tensor([0.0, 0.5, 1.0]))
    assert model.symmetric_pixels == (kind == "dcgan")


@pytest.mark.parametrize("kind", ALL_TYPES)
def test_sample_latent_reproducible_with_generator(kind):
    torch.manual_seed(0)
    model = build(kind)
    a = model.sample_latent(5, generator=torch.Generator().manual_seed(7))
    b = model.sample_latent(5, generator=torch.Generator().manual_seed(7))
    c = model.sample_latent(5, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("kind", ALL_TYPES)
def test_training_step_metrics(kind):
    torch.manual_seed(0)
    model = build(kind)
    optimizers = model.configure_optimizers()
    images, labels = batch()
    x = model.to_input(images)
    assert x.min() >= (-1 if model.symmetric_pixels else 0) and x.max() <= 1
    # steps 0 and 1: for n_critic > 1 the second step skips G and must still report every metric
    for step in (0, 1):
        metrics = model.training_step(x, labels, optimizers, step)
        assert list(metrics) and sorted(metrics) == sorted(model.metric_names)
        assert len(model.metric_names) == len(set(model.metric_names))
        for name, value in metrics.items():
            assert isinstance(value, torch.Tensor), name
            assert value.dim() == 0, name
            assert not value.requires_grad, name
            assert torch.isfinite(value), (name, value)


@pytest.mark.parametrize("kind", ALL_TYPES)
def test_one_step_changes_every_trained_network(kind):
    torch.manual_seed(0)
    model = build(kind)
    optimizers = model.configure_optimizers()
    before = snapshot(model)
    images, labels = batch()
    model.training_step(model.to_input(images), labels, optimizers, 0)
    after = snapshot(model)

    optimised = {id(p) for opt in optimizers.values() for group in opt.param_groups for p in group["params"]}
    optimised_nets = {name.split(".")[0] for name, p in model.named_parameters() if id(p) in optimised}
    changed_nets = {name.split(".")[0] for name in before if not torch.equal(before[name], after[name])}
    assert TRAINED_NETWORKS[kind] <= optimised_nets
    assert changed_nets == optimised_nets  # each optimised network moved, nothing else did
    # every parameter tensor of the trained networks moved, except one whose gradient is zero
    # by construction: the critic's output bias under the Wasserstein loss (it cancels in
    # mean D(fake) - mean D(real), and the gradient penalty does not depend on it)
    exempt = set()
    if getattr(model, "loss_name", None) == "wasserstein":
        output_layer = [m for m in model.D.modules() if isinstance(m, torch.nn.Linear)][-1]
        exempt = {name for name, p in model.named_parameters() if p is output_layer.bias}
        assert len(exempt) == 1
    unchanged = [name for name in before if name.split(".")[0] in optimised_nets
                 and name not in exempt and torch.equal(before[name], after[name])]
    assert unchanged == []


@pytest.mark.parametrize("kind", [
    kind
    for kind in ALL_TYPES
])
def test_every_parameter_is_optimised(kind):
    torch.manual_seed(0)
    model = build(kind)
    optimised = {id(p) for opt in model.configure_optimizers().values()
                 for group in opt.param_groups for p in group["params"]}
    missing = [name for name, p in model.named_parameters() if p.requires_grad and id(p) not in optimised]
    assert missing == []


@pytest.mark.parametrize("kind", ALL_TYPES)
def test_label_conditioning(kind):
    """Conditional types draw the class they are given; the others ignore labels."""
    torch.manual_seed(0)
    model = build(kind).eval()  # eval: BatchNorm must not mix samples through batch statistics
    assert model.conditional == (kind in CONDITIONAL_TYPES)
    z = model.sample_latent(1).repeat(NUM_CLASSES, 1)  # one z for every class
    classes = torch.arange(NUM_CLASSES)
    with torch.no_grad():
        images = model.generate(z, classes)
        shuffled = model.generate(z, classes.roll(3))
    if model.conditional:
        diffs = (images[:, None] - images[None]).abs().flatten(2).amax(2)  # pairwise max |difference|
        off_diagonal = diffs[~torch.eye(NUM_CLASSES, dtype=torch.bool)]
        assert off_diagonal.min() > 1e-5  # (float noise is ~1e-7) every pair of classes gives a different image
        assert torch.allclose(shuffled, images.roll(3, dims=0), atol=1e-6)  # the image follows its label
    else:
        assert torch.equal(images, shuffled)


# --------------------------------------------------------------------------- WGAN
def test_wgan_clips_every_critic_weight():
    torch.manual_seed(0)
    model = build("wgan")
    clip = model.hp["clip_value"]
    assert clip == 0.01
    with torch.no_grad():
        for i, p in enumerate(model.D.parameters()):
            p.fill_(1.0 if i % 2 else -1.0)  # far outside [-c, c]
    optimizers = model.configure_optimizers()
    assert isinstance(optimizers["d"], torch.optim.RMSprop)
    images, labels = batch()
    model.training_step(model.to_input(images), labels, optimizers, 1)
    weights = torch.cat([p.detach().flatten() for p in model.D.parameters()])
    assert weights.abs().max() <= clip
    # clipping happened (values sit on the bounds), on both sides
    assert (weights == clip).any() and (weights == -clip).any()


def test_fused_weight_clip_equals_a_clamp_per_parameter():
    torch.manual_seed(0)
    critic = build("wgan").D
    for p in critic.parameters():
        p.data.normal_(0.0, 0.05)  # about a third of the weights outside [-0.01, 0.01]
    expected = [p.detach().clamp(-0.01, 0.01) for p in critic.parameters()]
    clip_weights_(critic, 0.01)
    assert all(torch.equal(p, e) for p, e in zip(critic.parameters(), expected))


@pytest.mark.parametrize("fraction,k", [(0.5, 4), (1.0, 8), (0.1, 1)])
def test_sgan_supervises_only_the_first_labelled_fraction_of_the_batch(fraction, k):
    """The critic's supervised term sees the labels of the first round(fraction * n) images and
    no other: relabelling the rest leaves its loss as it was, relabelling one of them does not."""
    images, labels = batch(8)

    def loss_d(labels):
        torch.manual_seed(0)
        model = build("sgan", labeled_fraction=fraction)
        return model.training_step(model.to_input(images), labels, model.configure_optimizers(), 1)["loss_d"]

    before = loss_d(labels)
    rest = labels.clone()
    rest[k:] = (rest[k:] + 1) % NUM_CLASSES
    assert torch.equal(loss_d(rest), before)
    first = labels.clone()
    first[k - 1] = (first[k - 1] + 1) % NUM_CLASSES
    assert not torch.equal(loss_d(first), before)


def test_wgan_updates_generator_only_every_n_critic_steps():
    torch.manual_seed(0)
    model = build("wgan")
    assert model.hp["n_critic"] == 5
    optimizers = model.configure_optimizers()
    images, labels = batch()
    x = model.to_input(images)
    for step, g_moves in ((1, False), (4, False), (5, True)):
        before = snapshot(model)
        model.training_step(x, labels, optimizers, step)
        after = snapshot(model)
        g_changed = any(not torch.equal(before[n], after[n]) for n in before if n.startswith("G."))
        d_changed = any(not torch.equal(before[n], after[n]) for n in before if n.startswith("D."))
        assert d_changed
        assert g_changed == g_moves, step


# --------------------------------------------------------------------------- gradient penalties
class LinearCritic(torch.nn.Module):
    """f(x) = <w, x>: gradient w everywhere, so its norm is ||w|| at every point."""

    def __init__(self, shape, norm: float, seed: int = 0):
        super().__init__()
        w = torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
        self.w = torch.nn.Parameter(w * norm / w.norm())
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return (x * self.w).flatten(1).sum(1)


def test_interpolates_lie_on_the_segments():
    torch.manual_seed(0)
    real = torch.randn(64, 1, 4, 4)
    fake = torch.randn(64, 1, 4, 4)
    points = interpolates(real, fake, generator=torch.Generator().manual_seed(3))
    assert points.shape == real.shape
    d = (real - fake).flatten(1)
    alpha = ((points - fake).flatten(1) * d).sum(1) / d.pow(2).sum(1)  # projection on real - fake
    residual = (points - fake).flatten(1) - alpha[:, None] * d
    assert residual.abs().max() < 1e-5           # on the line through real_i and fake_i
    assert alpha.min() >= -1e-6 and alpha.max() <= 1 + 1e-6  # ... and between them
    assert alpha.std() > 0.1                     # one alpha per sample, not one for the batch
    # reproducible with a generator
    assert torch.equal(points, interpolates(real, fake, generator=torch.Generator().manual_seed(3)))


def test_wgan_gp_penalty_is_zero_for_unit_gradient_and_positive_otherwise():
    torch.manual_seed(0)
    real = torch.randn(32, 1, 8, 8)
    fake = torch.randn(32, 1, 8, 8)
    unit = LinearCritic(real.shape[1:], 1.0)
    assert wgan_gp_penalty(unit, real, fake).item() == pytest.approx(0.0, abs=1e-8)

    steep = LinearCritic(real.shape[1:], 3.0)
    penalty = wgan_gp_penalty(steep, real, fake)
    assert penalty.item() == pytest.approx((3.0 - 1.0) ** 2, rel=1e-4)
    # differentiable with respect to the critic's weights, pushing the norm down
    penalty.backward()
    assert steep.w.grad is not None
    assert torch.allclose(steep.w.grad, 2 * (3.0 - 1.0) * steep.w.detach() / 3.0, atol=1e-5)

    # the points the critic was evaluated on are interpolates of each real/fake pair
    (points,) = steep.seen
    d = (real - fake).flatten(1)
    alpha = ((points - fake).flatten(1) * d).sum(1) / d.pow(2).sum(1)
    assert ((points - fake).flatten(1) - alpha[:, None] * d).abs().max() < 1e-5
    assert alpha.min() >= -1e-6 and alpha.max() <= 1 + 1e-6 and alpha.std() > 0.1


def test_wgan_gp_penalty_at_interpolates_not_at_endpoints():
    """With f(x) = ||x||^2 / 2 (gradient x), the penalty depends on where it is taken."""
    torch.manual_seed(0)
    real = torch.ones(256, 1, 2, 2)    # ||x|| = 2
    fake = -torch.ones(256, 1, 2, 2)   # ||x|| = 2: at either endpoint the penalty would be 1
    seen = []

    def critic(x):
        seen.append(x.detach())
        return 0.5 * x.pow(2).flatten(1).sum(1)

    penalty = wgan_gp_penalty(critic, real, fake).item()
    # x = (2a - 1) * 1 has norm 2|2a - 1|; for a ~ U(0, 1), E[(2|2a-1| - 1)^2] = 1/3
    assert penalty == pytest.approx(1 / 3, abs=0.08)
    norms = seen[0].flatten(1).norm(dim=1)
    assert norms.max() <= 2 + 1e-5 and norms.min() < 1


def test_dragan_penalty_is_zero_for_unit_gradient_and_taken_near_real_data():
    torch.manual_seed(0)
    real = torch.rand(32, 1, 8, 8) * 2 - 1
    unit = LinearCritic(real.shape[1:], 1.0)
    assert dragan_penalty(unit, real).item() == pytest.approx(0.0, abs=1e-8)
    steep = LinearCritic(real.shape[1:], 3.0)
    assert dragan_penalty(steep, real).item() == pytest.approx(4.0, rel=1e-4)
    # evaluated on real data perturbed by at most 0.5 std of the batch
    (points,) = steep.seen
    offset = points - real
    assert offset.abs().max() <= 0.5 * real.std() + 1e-6
    assert offset.abs().max() > 0


@pytest.mark.parametrize("kind,penalty", [("wgan_gp", "wgan_gp"), ("dragan", "dragan")])
def test_penalised_types_use_their_penalty_and_no_batchnorm(kind, penalty):
    torch.manual_seed(0)
    model = build(kind)
    assert model.hp["penalty"] == penalty
    assert "gradient_penalty" in model.metric_names
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.D.modules())


# --------------------------------------------------------------------------- LSGAN / BGAN
def test_least_squares_loss_formulas():
    torch.manual_seed(0)
    real = torch.randn(50) * 2
    fake = torch.randn(50) * 2
    ls = ADVERSARIAL_LOSSES["least_squares"]
    expected_d = 0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake ** 2).mean()
    expected_g = 0.5 * ((fake - 1) ** 2).mean()
    assert ls.d_loss(real, fake).item() == pytest.approx(expected_d.item(), rel=1e-6)
    assert ls.g_loss(fake).item() == pytest.approx(expected_g.item(), rel=1e-6)
    # minimum at the targets: D(real) = 1, D(fake) = 0; G's at D(fake) = 1
    assert ls.d_loss(torch.ones(5), torch.zeros(5)).item() == 0
    assert ls.g_loss(torch.ones(5)).item() == 0
    bce = ADVERSARIAL_LOSSES["bce"]
    assert abs(ls.d_loss(real, fake).item() - bce.d_loss(real, fake).item()) > 1e-3
    assert abs(ls.g_loss(fake).item() - bce.g_loss(fake).item()) > 1e-3
    assert build("lsgan").loss is ls


def test_boundary_seeking_generator_loss_is_minimal_at_the_boundary():
    bs = ADVERSARIAL_LOSSES["boundary_seeking"]
    assert bs.g_loss(torch.zeros(7)).item() == 0  # logit 0 <=> D = 1/2
    logits = torch.linspace(0, 6, 13)
    values = torch.stack([bs.g_loss(torch.full((3,), v.item())) for v in logits])
    assert (values[1:] > values[:-1]).all()       # grows away from the boundary ...
    mirrored = torch.stack([bs.g_loss(torch.full((3,), -v.item())) for v in logits])
    assert torch.allclose(values, mirrored)       # ... on both sides
    # it is 0.5 (log D - log(1 - D))^2 with D = sigmoid(logit)
    fake = torch.tensor([-2.0, 0.3, 1.5])
    d = torch.sigmoid(fake.double())
    expected = (0.5 * (d.log() - (1 - d).log()) ** 2).mean()
    assert bs.g_loss(fake).item() == pytest.approx(expected.item(), rel=1e-5)
    model = build("bgan")
    assert model.loss is bs
    assert model.loss.d_loss is ADVERSARIAL_LOSSES["bce"].d_loss  # D plays the ordinary BCE game


# --------------------------------------------------------------------------- class heads
def separable_set(num_classes: int = 4, n: int = 64):
    """n images of num_classes constant-intensity classes (plus a little noise)."""
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % num_classes
    base = (labels.float() * 255 / (num_classes - 1)).view(n, 1, 1, 1).expand(n, *IMAGE_SHAPE)
    images = (base + 8 * torch.randn(n, *IMAGE_SHAPE, generator=g)).clamp(0, 255).to(torch.uint8)
    return images, labels


@pytest.mark.parametrize("kind", ["acgan", "sgan"])
def test_class_head_learns(kind):
    torch.manual_seed(0)
    num_classes = 4
    model = build(kind, num_classes=num_classes, lr=1e-3)
    optimizers = model.configure_optimizers()
    images, labels = separable_set(num_classes)
    x = model.to_input(images)

    def accuracy() -> float:
        with torch.no_grad():
            logits = model.D(x)
        class_logits = logits[:, 1:] if kind == "acgan" else logits[:, :-1]
        assert class_logits.shape == (len(x), num_classes)
        return (class_logits.argmax(1) == labels).float().mean().item()

    start = accuracy()
    for step in range(12):
        idx = torch.randperm(len(x))[:32]
        metrics = model.training_step(x[idx], labels[idx], optimizers, step)
    end = accuracy()
    assert start < 0.6
    assert end >= 0.9 and end >= start + 0.3
    assert metrics["aux_acc_real"].item() >= 0.9


# --------------------------------------------------------------------------- autoencoders
def test_cvae_decoder_depends_on_label():
    torch.manual_seed(0)
    model = build("cvae")
    z = torch.randn(1, model.hp["latent_dim"]).repeat(2, 1)
    with torch.no_grad():
        a = model.decoder(z, torch.tensor([0, 3]))
        b = model.decoder(z, torch.tensor([3, 0]))
    assert not torch.allclose(a[0], a[1])
    assert torch.allclose(a[0], b[1], atol=1e-6) and torch.allclose(a[1], b[0], atol=1e-6)  # only the label matters
    # the encoder is conditioned too
    images, _ = batch(2)
    with torch.no_grad():
        e0 = model.encoder(model.to_input(images), torch.tensor([0, 0]))
        e1 = model.encoder(model.to_input(images), torch.tensor([5, 5]))
    assert not torch.allclose(e0, e1)


class InMemoryData:
    """The `after_training` view of a training split held in memory; records what was asked for."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None):
        self.images, self.labels, self.asked = images, labels, []

    def head(self, k: int | None):
        self.asked.append(k)
        return self.images[:k], None if self.labels is None else self.labels[:k]


def test_ae_fits_gaussian_prior_to_codes():
    torch.manual_seed(0)
    model = build("ae", latent_dim=4, prior_fit_images=1001)
    optimizers = model.configure_optimizers()
    images, labels = batch(1001, seed=2)  # > 1000: after_training encodes in chunks
    images = (images.float() * torch.rand(len(images), 1, 1, 1)).to(torch.uint8)  # vary brightness
    for step in range(2):  # a short fit so the codes are not those of a freshly built encoder
        model.training_step(model.to_input(images[:32]), labels[:32], optimizers, step)
    with torch.no_grad():  # spread the codes to O(1) (a trained AE's scale), with distinct means
        spread = model.encoder(model.to_input(images[:200])).std(0)
        model.encoder.out.weight.div_(spread[:, None])
        model.encoder.out.bias.div_(spread).add_(torch.tensor([1.0, -2.0, 0.5, 3.0]))

    assert torch.equal(model.prior_mean, torch.zeros(4))
    data = InMemoryData(torch.cat([images, torch.full_like(images, 255)]), None)  # beyond the cap: ignored
    model.after_training(data)
    assert data.asked == [1001]  # only the capped head is read (a large split is not in memory)
    with torch.no_grad():
        codes = model.encoder(model.to_input(images)).double()
    mean = codes.mean(0)
    cov = torch.cov(codes.T)
    scale = cov.diagonal().sqrt()
    assert scale.min() > 0.5
    assert torch.allclose(model.prior_mean.double(), mean, atol=1e-4 * scale.max().item())
    L = model.prior_scale_tril.double()
    assert torch.equal(L, L.tril()) and (L.diagonal() > 0).all()  # a Cholesky factor
    assert torch.allclose(L, torch.linalg.cholesky(cov), atol=1e-3 * scale.max().item())
    # the fit is stored with the model (travels with the checkpoint)
    state = model.state_dict()
    assert torch.equal(state["prior_mean"], model.prior_mean)
    assert torch.equal(state["prior_scale_tril"], model.prior_scale_tril)

    draws = model.sample_latent(20000).double()
    assert ((draws.mean(0) - mean).abs() < 0.05 * scale).all()
    error = (torch.cov(draws.T) - cov) / (scale[:, None] * scale[None, :])  # in correlation units
    assert error.abs().max() < 0.06


def test_gaussian_kl():
    mu = torch.zeros(5, 3)
    log_var = torch.zeros(5, 3)
    assert gaussian_kl(mu, log_var).item() == 0
    assert gaussian_kl(torch.ones(5, 3), log_var).item() == pytest.approx(1.5)  # 0.5 mu^2 per dim
    assert gaussian_kl(mu, torch.full((5, 3), math.log(2.0))).item() == pytest.approx(
        3 * 0.5 * (2 - 1 - math.log(2.0)))
    assert gaussian_kl(mu, torch.full((5, 3), -1.0)).item() > 0
    # agrees with torch.distributions, summed over dims and averaged over the batch
    torch.manual_seed(0)
    mu, log_var = torch.randn(6, 4), torch.randn(6, 4)
    q = torch.distributions.Normal(mu, (0.5 * log_var).exp())
    p = torch.distributions.Normal(torch.zeros(6, 4), torch.ones(6, 4))
    expected = torch.distributions.kl_divergence(q, p).sum(1).mean()
    assert gaussian_kl(mu, log_var).item() == pytest.approx(expected.item(), rel=1e-5)


def test_reparameterize_moments_and_gradient():
    torch.manual_seed(0)
    n = 100_000
    mu = torch.tensor([1.0, -2.0]).repeat(n, 1).requires_grad_(True)
    log_var = torch.tensor([math.log(4.0), math.log(0.25)]).repeat(n, 1).requires_grad_(True)
    z = reparameterize(mu, log_var)
    assert torch.allclose(z.mean(0), torch.tensor([1.0, -2.0]), atol=0.03)
    assert torch.allclose(z.std(0), torch.tensor([2.0, 0.5]), rtol=0.02)
    z.sum().backward()
    assert torch.allclose(mu.grad, torch.ones_like(mu))  # dz/dmu = 1
    assert log_var.grad.abs().sum() > 0


def test_vae_kl_weight_scales_the_loss():
    images, labels = batch(8)
    results = {}
    for weight in (0.0, 1.0, 3.0):
        torch.manual_seed(0)
        model = build("vae", kl_weight=weight)
        metrics = model.training_step(model.to_input(images), labels, model.configure_optimizers(), 0)
        results[weight] = metrics
        assert metrics["loss"].item() == pytest.approx(
            metrics["recon"].item() + weight * metrics["kl"].item(), rel=1e-5)
    assert results[0.0]["kl"].item() > 0
    assert results[0.0]["recon"].item() == pytest.approx(results[3.0]["recon"].item(), rel=1e-5)


# --------------------------------------------------------------------------- divergence
def test_absurd_learning_rate_gives_non_finite_metrics():
    """Divergence must show in the metrics (the training loop stops on them), not be masked."""
    torch.manual_seed(0)
    model = build("gan", lr=1e30)
    optimizers = model.configure_optimizers()
    images, labels = batch(16)
    x = model.to_input(images)
    seen_non_finite = False
    for step in range(3):
        metrics = model.training_step(x, labels, optimizers, step)
        if not all(torch.isfinite(v) for v in metrics.values()):
            seen_non_finite = True
            break
    assert seen_non_finite


# --------------------------------------------------------------------------- other datasets' shapes
#: sha256 of the state dict (names, shapes, dtypes, bytes) of each (type, arch) at its default
#: hparams, built with torch.manual_seed(0) for (1, 28, 28) and 10 classes, computed from the code
#: before networks grew with the image side: 28x28 models must stay exactly those. The plain
#: games share their networks (and so their weights) by architecture. The values hold for
#: torch's CPU generator as of torch 2.14; a torch upgrade that changes it changes them all.
MLP_GAN = "aaad25919d7ac0ea179411abd30d566f870446b98fb9587f756618649c16b025"
CONV_GAN = "0ccf5f96d8fe9e0792066faa88b0d0a367bf9913666b4013b1a175007cfe213c"
CONV_GAN_NO_BATCHNORM_IN_D = "2a4ea1c70b65a4033ab8373601e189688d8e76f868fb0720b781c8fa8f1353e6"
WEIGHTS_28 = {
    **{(kind, "mlp"): MLP_GAN for kind in ("gan", "dcgan", "lsgan", "wgan", "wgan_gp", "dragan", "bgan")},
    **{(kind, "conv"): CONV_GAN for kind in ("gan", "dcgan", "lsgan", "wgan", "bgan")},
    **{(kind, "conv"): CONV_GAN_NO_BATCHNORM_IN_D for kind in ("wgan_gp", "dragan")},
    ("cgan", "mlp"): "8efd1a30d328392b99bf110641a6f8f456a18c5c19195cbc82a7023dba7a70e6",
    ("acgan", "conv"): "1eca230edb4a1b9da944a7587c5be932987632066afde5c981e718e9ba302bcd",
    ("sgan", "conv"): "de843b74f6269aa94a8a63bc724d708fc188c36f1c8346079cced39008749934",
    ("aae", None): "a7aa669bb5e677db14289a58597597c1fb9b9e65c0cbda050a016e5d2417f049",
    ("ae", None): "4664eb841dcae375dfeaf3e90f8ac3d1fd13a26060f96964cd9a27db34798313",
    ("vae", None): "461fa1a0b29421fbdd6ad0915d86fbe5749bba576b7fc60b607363879f13df2a",
    ("cvae", None): "c61766696f13176f6b21663ebc8f5c38ba7f9a2da3dfd0991a0bab72cc66d4b8",
}
#: (image shape, classes) of the datasets to come: MNIST, CIFAR-10, a labelled 64x64 set,
#: LFW / CelebA (no labels), and a grayscale unlabelled 64x64 set.
DATASET_SHAPES = [((1, 28, 28), 10), ((3, 32, 32), 10), ((3, 64, 64), 10), ((3, 64, 64), 0), ((1, 64, 64), 0)]
#: Shapes no packed dataset has yet, where the networks' limits show.
ODD_SHAPES = [(1, 30, 30), (3, 27, 27), (3, 32, 48), (1, 36, 36), (3, 8, 8), (3, 4, 4)]


def arch_choices(kind: str) -> tuple[str | None, ...]:
    field = MODEL_TYPES[kind].hparam_fields.get("arch")
    return field.choices if field else (None,)


def weights_sha256(model) -> str:
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        if name.startswith("_"):  # the training loop's own state (e.g. G's last loss), not a network's weights
            continue
        digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()


def test_28x28_networks_are_bitwise_those_of_before():
    assert set(WEIGHTS_28) == {(kind, arch) for kind in ALL_TYPES for arch in arch_choices(kind)}
    for (kind, arch), expected in WEIGHTS_28.items():
        raw = {"type": kind} if arch is None else {"type": kind, "arch": arch}
        torch.manual_seed(0)
        model = build_model(parse_params({"models": {"m": raw}}).models["m"], (1, 28, 28), 10)
        assert weights_sha256(model) == expected, (kind, arch)


@pytest.mark.parametrize("side,blocks", [(8, 1), (12, 1), (28, 2), (32, 3), (36, 2), (64, 4), (128, 5)])
def test_stride2_blocks_halve_while_even_and_above_7(side, blocks):
    assert stride2_blocks(side) == blocks


@pytest.mark.parametrize("shape,g_channels,d_channels", [
    ((1, 28, 28), [32, 16, 8], [8, 16, 32]),
    ((3, 32, 32), [64, 32, 16, 8], [8, 16, 32, 64]),
    ((3, 64, 64), [128, 64, 32, 16, 8], [8, 16, 32, 64, 128]),
])
def test_conv_channels_double_per_stride2_block(shape, g_channels, d_channels):
    model = build("dcgan", image_shape=shape)  # width 8
    g = [m.out_channels for m in model.G.net if isinstance(m, torch.nn.ConvTranspose2d)]
    d = [m.out_channels for m in model.D.trunk if isinstance(m, torch.nn.Conv2d)]
    assert (g, d) == (g_channels, d_channels)
    assert model.G.net[0].kernel_size[0] == shape[1] >> stride2_blocks(shape[1])  # the first map


@pytest.mark.parametrize("side,count,map_side", [(28, 1, 14), (32, 1, 16), (64, 2, 16), (96, 3, 12)])
def test_autoencoder_halves_until_the_map_is_at_most_16(side, count, map_side):
    assert downsamplings(side, side) == (count, map_side, map_side)
    model = build("vae", image_shape=(3, side, side))
    strided = [m for m in model.encoder.trunk if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)]
    assert len(strided) == count
    assert model.encoder.hidden[0].in_features == 64 * map_side ** 2


def train_and_generate(kind: str, image_shape, num_classes: int):
    """Two training steps (batch 4), the end-of-training hook and a few samples; unconditional
    types get no labels at all."""
    torch.manual_seed(0)
    model = build(kind, num_classes=num_classes, image_shape=image_shape)
    optimizers = model.configure_optimizers()
    images, labels = batch(4, num_classes=max(num_classes, 1), image_shape=image_shape)
    y = labels if MODEL_TYPES[kind].label_requirement() else None
    for step in (0, 1):
        metrics = model.training_step(model.to_input(images), y, optimizers, step)
        assert sorted(metrics) == sorted(model.metric_names)
        assert all(torch.isfinite(value) for value in metrics.values()), metrics
    model.after_training(InMemoryData(images, labels if num_classes else None))
    with torch.no_grad():
        out = model.eval().generate(model.sample_latent(3), torch.arange(3) % max(num_classes, 1))
    assert out.shape == (3, *image_shape)
    assert out.min() >= 0 and out.max() <= 1


def shape_id(value) -> str:
    return "x".join(map(str, value)) if isinstance(value, tuple) else f"{value}cls"


@pytest.mark.parametrize("shape,num_classes", DATASET_SHAPES, ids=shape_id)
@pytest.mark.parametrize("kind", ALL_TYPES)
def test_every_type_trains_on_every_dataset_shape_it_accepts(kind, shape, num_classes):
    reason = MODEL_TYPES[kind].check_data(small_spec(kind).hparams, shape, num_classes)
    if reason is None:
        train_and_generate(kind, shape, num_classes)
        return
    # refused only for lack of labels, saying why and naming a type that does train on this data
    assert num_classes == 0 and MODEL_TYPES[kind].label_requirement()
    assert "needs class labels and the dataset has none" in reason
    alternative = reason.split("use type ")[1].split(",")[0]
    assert MODEL_TYPES[alternative].check_data(small_spec(alternative).hparams, shape, num_classes) is None


@pytest.mark.parametrize("shape", ODD_SHAPES, ids=shape_id)
@pytest.mark.parametrize("kind", ALL_TYPES)
def test_check_data_agrees_with_the_networks(kind, shape):
    """Whatever check_data accepts builds and generates that shape; what it refuses would not build."""
    for arch in arch_choices(kind):
        hparams = {} if arch is None else {"arch": arch}
        reason = MODEL_TYPES[kind].check_data(small_spec(kind, **hparams).hparams, shape, NUM_CLASSES)
        if reason is None:
            model = build(kind, image_shape=shape, **hparams).eval()
            with torch.no_grad():
                assert model.generate(model.sample_latent(2), torch.arange(2)).shape == (2, *shape)
        else:
            assert "side" in reason and ("arch: mlp" in reason) == (arch == "conv" and "mlp" in arch_choices(kind))
            with pytest.raises(ValueError, match="got"):
                build(kind, image_shape=shape, **hparams)


def test_check_data_messages_read_after_the_callers_prefix():
    no_labels = MODEL_TYPES["cgan"].check_data(small_spec("cgan").hparams, (3, 64, 64), 0)
    assert no_labels == ("it is conditional (it generates the class it is given), so it needs class labels and the "
                         "dataset has none; use type gan, or a dataset with labels (mnist, fashion-mnist or cifar10)")
    odd = MODEL_TYPES["dcgan"].check_data(small_spec("dcgan").hparams, (1, 30, 30), 10)
    assert odd == ("its convolutional networks need square images with a side divisible by 4 (at least 8); "
                   "set arch: mlp, or pack the dataset at such a side (its `side` under `datasets:`)")
    assert MODEL_TYPES["sgan"].check_data(small_spec("sgan").hparams, (3, 64, 64), 0).startswith(
        "its discriminator learns to classify")
    assert MODEL_TYPES["vae"].check_data(small_spec("vae").hparams, (3, 27, 27), 0).startswith(
        "its convolutional decoder needs even image sides")
