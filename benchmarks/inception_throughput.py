"""Inception feature throughput (img/s) of each runtime on 28x28 uint8 inputs, as the evaluate stage feeds them.

    python benchmarks/inception_throughput.py [--images 100] [--batch-size 50] [--runtime torch onnxruntime]

Each runtime gets one warm-up batch first; the time covers resize, scaling and the network.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from genlab.metrics.features import extract_features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--runtime", nargs="+", default=["torch", "onnxruntime"])
    args = parser.parse_args()
    images = np.random.default_rng(0).integers(0, 256, (args.images, 1, 28, 28), dtype=np.uint8)
    print(f"threads={torch.get_num_threads()} images={args.images} batch={args.batch_size}")
    reference = None
    for runtime in args.runtime:
        extract_features(images[: args.batch_size], batch_size=args.batch_size, device="cpu", runtime=runtime,
                         desc=f"warm-up {runtime}")
        start = time.perf_counter()
        feats = extract_features(images, batch_size=args.batch_size, device="cpu", runtime=runtime, desc=runtime)
        rate = args.images / (time.perf_counter() - start)
        diff = "" if reference is None else f"  max |diff| vs {args.runtime[0]}: {np.abs(feats - reference).max():.2e}"
        reference = feats if reference is None else reference
        print(f"{runtime:12s} {rate:6.2f} img/s{diff}", flush=True)


if __name__ == "__main__":
    main()
