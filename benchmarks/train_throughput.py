"""Training throughput (img/s) of every model type at its params.yaml settings.

    python benchmarks/train_throughput.py [--steps 20] [--precision fp32|bf16|auto] [model ...]

Uses random uint8 batches of the dataset's shape on the training device, the same
`training_step` the pipeline runs; the first 3 steps are warm-up and not timed.
"""
from __future__ import annotations

import argparse
import time

import torch

from genlab.config import load_params
from genlab.models import build_model
from genlab.training.device import autocast, resolve_device, resolve_precision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--precision", default=None)
    args = parser.parse_args()
    params = load_params()
    device = resolve_device(params.train["device"])
    precision = resolve_precision(args.precision or params.train["precision"], device)
    print(f"device={device} precision={precision} threads={torch.get_num_threads()}")
    for name in args.models or list(params.models):
        spec = params.model(name)
        torch.manual_seed(0)
        model = build_model(spec, (1, 28, 28), 10).to(device).train()
        opts = model.configure_optimizers()
        x8 = torch.randint(0, 256, (spec.batch_size, 1, 28, 28), dtype=torch.uint8, device=device)
        y = torch.randint(0, 10, (spec.batch_size,), device=device)
        for step in range(args.steps + 3):
            if step == 3:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
            with autocast(device, precision):
                model.training_step(model.to_input(x8), y, opts, step)
        if device.type == "cuda":
            torch.cuda.synchronize()
        rate = args.steps * spec.batch_size / (time.perf_counter() - start)
        print(f"{name:10s} type={spec.type:8s} batch={spec.batch_size:4d} {rate:8.0f} img/s", flush=True)


if __name__ == "__main__":
    main()
