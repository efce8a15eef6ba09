"""Training step time with genlab's optimizers (fused Adam, foreach RMSprop: genlab.objectives.optim) against
PyTorch's per-tensor loop, side by side in one process.

    python benchmarks/optimizer_ab.py [model ...] [--steps 12] [--rounds 6] [--batch-size 64]

Models are keys of params.yaml's `models` (noise-to-image ones; default: all of them). Each model is built once
(torch seed 0) with two sets of optimizers over the same parameters: genlab's, and copies of them with
`foreach=False` (and no `fused`), PyTorch's per-tensor loop on CPU. Blocks of `--steps` training steps on one
random batch alternate between the two, `--rounds` times, in swapped order every other round; the first two
steps of each block are not timed. It prints the median step time of each and their ratio (per-tensor over
genlab's: above 1, genlab's optimizers are faster). Name the CPU (lscpu) with the numbers.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from common import fresh_model
from genlab.config import load_params

UNTIMED = 2


def per_tensor_copy(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """The same optimizer class and hyperparameters over the same parameters, in PyTorch's per-tensor loop."""
    groups = []
    for group in optimizer.param_groups:
        group = dict(group)
        group.pop("fused", None)
        group["foreach"] = False
        groups.append(group)
    return type(optimizer)(groups)


def median_steps(model, batches, optimizers: dict, steps: int, first_step: int) -> list[float]:
    x, y = batches
    times = []
    for i in range(steps):
        start = time.perf_counter()
        model.training_step(x, y, optimizers, first_step + i)
        if i >= UNTIMED:
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", help="keys of params.yaml's models (default: the noise-to-image ones)")
    parser.add_argument("--steps", type=int, default=12, help="training steps a block (the first 2 not timed)")
    parser.add_argument("--rounds", type=int, default=6, help="blocks of each kind")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    if args.steps <= UNTIMED:
        parser.error(f"--steps must be above {UNTIMED}")
    params = load_params()
    names = args.models or [name for name, spec in params.models.items() if spec.dataset in params.datasets]
    print(f"device=cpu threads={torch.get_num_threads()} batch={args.batch_size} steps={args.steps} "
          f"rounds={args.rounds}")
    for name in names:
        if name not in params.models:
            parser.error(f"{name!r} is not a key of params.yaml's models; known: {', '.join(params.models)}")
        spec = params.models[name]
        if spec.dataset not in params.datasets:
            parser.error(f"{name!r} is an image-to-image model (it trains on task {spec.dataset!r}); "
                         "this benchmark times noise-to-image models")
        model, genlab_opts = fresh_model(spec, (1, 28, 28), 10, torch.device("cpu"))
        loop_opts = {key: per_tensor_copy(opt) for key, opt in genlab_opts.items()}
        generator = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (args.batch_size, 1, 28, 28), dtype=torch.uint8, generator=generator)
        labels = torch.randint(0, 10, (args.batch_size,), generator=generator)
        batches = (model.to_input(images), labels)
        times = {"genlab": [], "per-tensor": []}
        step = 0
        for rnd in range(args.rounds):
            order = [("genlab", genlab_opts), ("per-tensor", loop_opts)]
            for label, opts in order if rnd % 2 == 0 else order[::-1]:
                times[label] += median_steps(model, batches, opts, args.steps, step)
                step += args.steps
        ours, theirs = statistics.median(times["genlab"]), statistics.median(times["per-tensor"])
        kind = type(next(iter(genlab_opts.values()))).__name__
        print(f"{name:10s} {kind:8s} median step: genlab {1e3 * ours:7.1f} ms, per-tensor {1e3 * theirs:7.1f} ms, "
              f"ratio {theirs / ours:.2f}x", flush=True)


if __name__ == "__main__":
    main()
