"""GANs whose discriminator also classifies: ACGAN and the semi-supervised SGAN."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from genlab.models.adversarial import AdversarialModel, network_fields
from genlab.schema import Field
from genlab.models.base import register_model
from genlab.objectives.optim import optimizer_step
from genlab.models.networks import ConvDiscriminator, ConvGenerator, LabelledGenerator


def _accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return (logits.argmax(1) == labels).float().mean()


@register_model("acgan")
class ACGAN(AdversarialModel):
    """Auxiliary-classifier GAN (Odena et al., 2017): G draws the class it is given (label joined
    to z); D has a second head predicting the class, and both G and D add the cross-entropy of
    that head to their BCE game, on real and on generated images."""

    conditional = True
    unlabelled_alternative = "dcgan"
    hparam_fields = network_fields(arch="conv", archs=("conv",))

    def __init__(self, spec, image_shape, num_classes):
        super().__init__(spec, image_shape, num_classes)
        self.metric_names = ("loss_d", "loss_g", "real_score", "fake_score", "aux_acc_real", "aux_acc_fake")

    def build_networks(self):
        generator = LabelledGenerator(
            self.num_classes, ConvGenerator(self.hp["latent_dim"] + self.num_classes, self.image_shape, self.hp["width"]))
        discriminator = ConvDiscriminator(self.image_shape, self.hp["width"], out_features=1 + self.num_classes)
        return generator, discriminator

    def _split(self, out):
        out = out.float()
        return out[:, 0], out[:, 1:]

    def training_step(self, x, y, optimizers, step):
        n = x.size(0)
        fake_labels = self.random_labels(n)
        fake_g = self.G(self.sample_latent(n), fake_labels)  # one batch for both players, detached for D
        real_adv, real_cls = self._split(self.D(x))
        fake_adv, fake_cls = self._split(self.D(fake_g.detach()))
        loss_d = self.loss.d_loss(real_adv, fake_adv) + F.cross_entropy(real_cls, y) + F.cross_entropy(fake_cls, fake_labels)
        optimizer_step(optimizers["d"], loss_d)

        adv, cls = self._split(self.D(fake_g))
        loss_g = self.loss.g_loss(adv) + F.cross_entropy(cls, fake_labels)
        optimizer_step(optimizers["g"], loss_g)
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(),
                "real_score": torch.sigmoid(real_adv.detach()).mean(),
                "fake_score": torch.sigmoid(fake_adv.detach()).mean(),
                "aux_acc_real": _accuracy(real_cls.detach(), y),
                "aux_acc_fake": _accuracy(fake_cls.detach(), fake_labels)}

    def generate(self, z, labels=None):
        return self.to_unit(self.G(z, labels))


@register_model("sgan")
class SGAN(AdversarialModel):
    """Semi-supervised GAN (Odena, 2016): D is a classifier over N classes + "fake". Labelled real
    images train its class logits, unlabelled real ones only "not fake", generated ones "fake";
    G is unconditional and tries to make D put its mass on the N real classes. `labeled_fraction`
    sets the share of each real batch whose labels D may see."""

    unlabelled_alternative = "dcgan"
    hparam_fields = {**network_fields(arch="conv", archs=("conv",)),
                     "labeled_fraction": Field(float, 1.0, positive=True, maximum=1.0)}

    def __init__(self, spec, image_shape, num_classes):
        super().__init__(spec, image_shape, num_classes)
        self.metric_names = ("loss_d", "loss_g", "real_score", "fake_score", "aux_acc_real")

    @classmethod
    def label_requirement(cls) -> str:
        return "its discriminator learns to classify real images into the dataset's classes"

    def build_networks(self):
        generator = ConvGenerator(self.hp["latent_dim"], self.image_shape, self.hp["width"])
        discriminator = ConvDiscriminator(self.image_shape, self.hp["width"], out_features=self.num_classes + 1)
        return generator, discriminator

    def _log_p_fake(self, logits):
        # log p(fake) and log p(not fake) from N+1 logits, computed stably in log space.
        log_p = logits.float().log_softmax(1)
        log_fake = log_p[:, -1]
        log_real = torch.logsumexp(log_p[:, :-1], dim=1)
        return log_fake, log_real

    def training_step(self, x, y, optimizers, step):
        n = x.size(0)
        fake_g = self.G(self.sample_latent(n))  # one batch for both players, detached for D
        real_logits = self.D(x).float()
        fake_logits = self.D(fake_g.detach()).float()
        # The first k images of the (shuffled) batch keep their labels; k is known on the host, so
        # the split is two slices, with no device-to-host sync of a boolean mask.
        k = round(self.hp["labeled_fraction"] * n)
        supervised = F.cross_entropy(real_logits[:k], y[:k]) if k > 0 else real_logits.sum() * 0
        _, log_real_on_real = self._log_p_fake(real_logits)
        log_fake_on_fake, _ = self._log_p_fake(fake_logits)
        loss_d = supervised - log_real_on_real[k:].sum() / n - log_fake_on_fake.mean()
        optimizer_step(optimizers["d"], loss_d)

        _, log_real_on_gen = self._log_p_fake(self.D(fake_g))
        loss_g = -log_real_on_gen.mean()
        optimizer_step(optimizers["g"], loss_g)
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(),
                "real_score": log_real_on_real.detach().exp().mean(),
                "fake_score": (1 - log_fake_on_fake.detach().exp()).mean(),
                "aux_acc_real": _accuracy(real_logits.detach()[:, :-1], y)}
