"""Adversarial objectives, keyed by the names models use. All work on raw critic outputs (logits).

Working on logits (BCE-with-logits instead of sigmoid + BCE) keeps the losses finite in
bf16 autocast, where `nn.BCELoss` is refused.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


@dataclass(frozen=True)
class AdversarialLoss:
    """How D is scored on real/fake outputs, how G is scored, and what `*_score` reports."""

    name: str
    d_loss: Callable[[Tensor, Tensor], Tensor]
    g_loss: Callable[[Tensor], Tensor]
    score: Callable[[Tensor], Tensor]   # per-sample value whose batch mean is real_score/fake_score


def _bce_d(real: Tensor, fake: Tensor) -> Tensor:
    return (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
            + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))


def _bce_g(fake: Tensor) -> Tensor:
    # The non-saturating generator loss of Goodfellow et al. (2014): maximise log D(G(z)).
    return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))


def _ls_d(real: Tensor, fake: Tensor) -> Tensor:
    # Mao et al. (2017), a-b-c = 0-1-1 coding: real targets 1, fake targets 0.
    return 0.5 * ((real - 1).pow(2).mean() + fake.pow(2).mean())


def _ls_g(fake: Tensor) -> Tensor:
    return 0.5 * (fake - 1).pow(2).mean()


def _w_d(real: Tensor, fake: Tensor) -> Tensor:
    return fake.mean() - real.mean()


def _w_g(fake: Tensor) -> Tensor:
    return -fake.mean()


def _boundary_seeking_g(fake: Tensor) -> Tensor:
    # Hjelm et al. (2018): push D(G(z)) to the decision boundary 1/2, i.e.
    # 0.5 * (log D - log(1 - D))^2 = 0.5 * logit^2.
    return 0.5 * fake.pow(2).mean()


ADVERSARIAL_LOSSES: dict[str, AdversarialLoss] = {
    loss.name: loss
    for loss in (
        AdversarialLoss("bce", _bce_d, _bce_g, torch.sigmoid),
        AdversarialLoss("least_squares", _ls_d, _ls_g, lambda out: out),
        AdversarialLoss("wasserstein", _w_d, _w_g, lambda out: out),
        AdversarialLoss("boundary_seeking", _bce_d, _boundary_seeking_g, torch.sigmoid),
    )
}
