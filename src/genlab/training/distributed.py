"""Data-parallel training under torchrun (`train.nproc: N`): N processes, one global batch.

Each model's `batch_size` is the global batch. Every process reads the same shuffled order (the same
seed), takes its own 1/N of each batch's rows, draws its rows of the batch's noise
(genlab.objectives.noise), and averages every gradient over the processes before each optimizer
step: DistributedDataParallel's rule, one all-reduce per optimizer step. It is done at the optimizer
and not by wrapping the networks in `DistributedDataParallel` because a GAN step runs D several
times per backward pass and back-propagates G's loss through D (which DDP's reducer would reduce
again for nothing), and because the networks keep their own names: checkpoints and model files are
the same whatever N was. BatchNorm layers compute their statistics over the global batch
(SyncBatchNorm on CUDA, the all-reduce below on CPU, where torch's SyncBatchNorm does not run), so
N processes train what one process trains on the same global batch, up to floating-point sums
taken in another order. Rank 0 alone logs to MLflow and writes checkpoints; the per-step metrics it
logs are means over the processes.

Backends: NCCL on CUDA (one GPU per process), gloo on CPU.
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Mapping

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from genlab.objectives.noise import set_shard


@dataclass(frozen=True)
class Ranks:
    """This process's place among the training processes (from torchrun's environment)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.world > 1

    def rows(self, batch: torch.Tensor) -> torch.Tensor:
        """This process's rows of a global batch (a tensor, or a pair of them for image-to-image data)."""
        if isinstance(batch, (tuple, list)):
            return type(batch)(self.rows(part) for part in batch)
        if batch is None or not self.parallel:
            return batch
        n = batch.size(0) // self.world
        return batch[self.rank * n:(self.rank + 1) * n]


def current_ranks() -> Ranks:
    """Ranks from the environment torchrun sets; one process when it is not set."""
    env = os.environ
    return Ranks(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))


def under_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ or "WORLD_SIZE" in os.environ


def run_under_torchrun(nproc: int, argv: list[str]) -> int:
    """Re-run this stage's command as `nproc` processes on this machine (torchrun --standalone); its exit code.

    On CPU each process gets an equal share of the cores as its thread count, unless OMP_NUM_THREADS is set."""
    env = dict(os.environ)
    if "OMP_NUM_THREADS" not in env and not torch.cuda.is_available():
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *argv]
    return subprocess.call(cmd, env=env)


def process_device(ranks: Ranks, device: torch.device) -> torch.device:
    """This process's device: on CUDA, the GPU of its local rank."""
    return torch.device("cuda", ranks.local_rank) if device.type == "cuda" else device


def start(ranks: Ranks, device: torch.device) -> torch.device:
    """Join the process group (NCCL on CUDA, gloo on CPU) and return this process's device."""
    device = process_device(ranks, device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if ranks.parallel and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=ranks.rank, world_size=ranks.world)
    set_shard(ranks.rank, ranks.world)
    return device


def stop() -> None:
    set_shard(0, 1)
    if dist.is_initialized():
        dist.destroy_process_group()


def synchronize_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm layer of `model` normalizes by the global batch's statistics.

    The layers keep their parameter and buffer names, so state dicts load either way."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in model.named_children():
        if isinstance(child, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)) and child.track_running_stats:
            setattr(model, name, GlobalBatchNorm.like(child))
        else:
            synchronize_batchnorm(child, device)
    return model


class GlobalBatchNorm(_BatchNorm):
    """BatchNorm over the rows of every process (gloo's all-reduce, differentiable): what SyncBatchNorm
    does on GPUs, for CPU training. In eval mode it is plain BatchNorm on the running statistics."""

    @classmethod
    def like(cls, bn: _BatchNorm) -> "GlobalBatchNorm":
        out = cls(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
        out.load_state_dict(bn.state_dict())
        return out.to(bn.running_mean.device)

    def _check_input_dim(self, x):
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input, got {x.dim()}D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not dist.is_initialized():
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        xf = x.float()
        count = torch.full((1,), xf.numel() / xf.size(1), dtype=torch.float32, device=x.device)
        totals = _AllReduceSum.apply(torch.cat([xf.sum(dims), (xf * xf).sum(dims), count]))
        c = self.num_features
        n = totals[-1]
        mean = totals[:c] / n
        var = (totals[c:2 * c] / n - mean * mean).clamp_min(0)  # biased: what normalizes the batch
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            self.running_mean.mul_(1 - momentum).add_(momentum * mean.detach())
            self.running_var.mul_(1 - momentum).add_(momentum * var.detach() * n / (n - 1).clamp_min(1))
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


class _AllReduceSum(torch.autograd.Function):
    """The sum over the processes; its gradient is the sum of theirs (every process's loss depends on it)."""

    @staticmethod
    def forward(ctx, x):
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def average_gradients(optimizers: Mapping[str, torch.optim.Optimizer], world: int) -> None:
    """Before each optimizer step, replace its parameters' gradients by their mean over the processes
    (one all-reduce of them all, flattened)."""

    def hook(optimizer, args, kwargs):
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= world
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    for optimizer in optimizers.values():
        optimizer.register_step_pre_hook(hook)


def mean_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """The element-wise mean of a tensor over the processes (the logged per-step metrics)."""
    if not dist.is_initialized():
        return values
    values = values.clone()
    dist.all_reduce(values)
    return values / dist.get_world_size()


def share_random_state(ranks: Ranks) -> None:
    """Every process continues from rank 0's global generator state (CPU, and CUDA on CUDA): the shared
    stream their batch draws slice stays one stream whatever rank 0 alone did in between."""
    if not ranks.parallel:
        return
    nccl = dist.get_backend() == "nccl"  # NCCL broadcasts CUDA tensors only
    states = [(torch.get_rng_state, torch.set_rng_state)]
    if nccl:
        states.append((torch.cuda.get_rng_state, torch.cuda.set_rng_state))
    for get, set_ in states:
        buffer = get().cuda() if nccl else get()
        dist.broadcast(buffer, src=0)
        set_(buffer.cpu())
