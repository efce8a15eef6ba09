"""Losses of the autoencoder family: reconstruction and the Gaussian KL term."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from genlab.objectives.noise import draw_like

Tensor = torch.Tensor


def reconstruction_bce(recon_logits: Tensor, target: Tensor) -> Tensor:
    """Bernoulli log-likelihood of pixels in [0, 1]: BCE summed over pixels, mean over the batch."""
    return F.binary_cross_entropy_with_logits(recon_logits.float(), target.float(), reduction="sum") / target.size(0)


def gaussian_kl(mu: Tensor, log_var: Tensor) -> Tensor:
    """KL(N(mu, sigma^2) || N(0, I)), summed over latent dims, mean over the batch (Kingma 2014)."""
    mu, log_var = mu.float(), log_var.float()
    return -0.5 * torch.sum(1 + log_var - mu.pow(2) - log_var.exp()) / mu.size(0)


def reparameterize(mu: Tensor, log_var: Tensor) -> Tensor:
    return mu + torch.exp(0.5 * log_var) * draw_like(torch.randn, mu)
