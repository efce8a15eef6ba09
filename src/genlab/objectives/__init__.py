"""Training objectives: adversarial losses, gradient penalties and variational terms."""
from genlab.objectives.adversarial import ADVERSARIAL_LOSSES, AdversarialLoss
from genlab.objectives.penalties import PENALTIES, dragan_penalty, wgan_gp_penalty
from genlab.objectives.variational import gaussian_kl, reconstruction_bce, reparameterize

__all__ = ["ADVERSARIAL_LOSSES", "AdversarialLoss", "PENALTIES", "dragan_penalty", "wgan_gp_penalty",
           "gaussian_kl", "reconstruction_bce", "reparameterize"]
