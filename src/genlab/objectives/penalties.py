"""Gradient penalties on the critic: WGAN-GP (interpolates) and DRAGAN (perturbed real data)."""
from __future__ import annotations

from typing import Callable

import torch

from genlab.objectives.noise import batch_draw, draw_like

Tensor = torch.Tensor


def _unit_norm_penalty(critic: Callable[[Tensor], Tensor], points: Tensor) -> Tensor:
    """mean((||grad_x critic(x)||_2 - 1)^2) at the given points, differentiable for D's update."""
    points = points.detach().requires_grad_(True)
    out = critic(points)
    (grad,) = torch.autograd.grad(out.float().sum(), points, create_graph=True)
    return (grad.float().flatten(1).norm(2, dim=1) - 1).pow(2).mean()


def interpolates(real: Tensor, fake: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Points uniformly on the segments between paired real and fake samples (Gulrajani 2017)."""
    ones = [1] * (real.dim() - 1)
    if generator is None:
        alpha = batch_draw(torch.rand, real.size(0), *ones, device=real.device)
    else:
        alpha = torch.rand(real.size(0), *ones, device=real.device, generator=generator)
    return alpha * real + (1 - alpha) * fake


def wgan_gp_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor) -> Tensor:
    return _unit_norm_penalty(critic, interpolates(real, fake.detach()))


def dragan_perturb(real: Tensor, scale: float = 0.5) -> Tensor:
    """Real data pushed by noise of 0.5 std, and points between (Kodali et al. 2017)."""
    noisy = real + scale * real.std() * draw_like(torch.rand, real)
    alpha = batch_draw(torch.rand, real.size(0), *([1] * (real.dim() - 1)), device=real.device)
    return alpha * real + (1 - alpha) * noisy


def dragan_penalty(critic: Callable[[Tensor], Tensor], real: Tensor) -> Tensor:
    return _unit_norm_penalty(critic, dragan_perturb(real))


PENALTIES = ("none", "wgan_gp", "dragan")
