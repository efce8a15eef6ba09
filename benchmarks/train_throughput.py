"""Training throughput (img/s) of model types on random data of any image shape.

    python benchmarks/train_throughput.py [model ...] [--steps 20] [--precision fp32|bf16|auto]
    python benchmarks/train_throughput.py --type dcgan --shape 3,64,64 --width 64 --batch-size 64 \\
        --latent-dim 128 --precision fp32        # seed 000's LFW DCGAN (lr 2e-4, Adam(0.5, 0.999))
    python benchmarks/train_throughput.py dcgan pix2pix --layout both --rounds 2
    python benchmarks/train_throughput.py dcgan --compile both --steps 100 --rounds 2

Models are keys of params.yaml's `models` (default: all of them), or, with `--type`, one model
type at its own defaults, which needs no params.yaml. `--width/--batch-size/--latent-dim`
override those settings (width where the type has one). Batches are random uint8 images of
`--shape` (C,H,W; default 1,28,28) with `--num-classes` labels on the training device, fed to
the same `training_step` the pipeline runs (an image-to-image model gets the same images as inputs
and targets); the first 3 steps are warm-up and not timed. It prints img/s over all timed steps and
from the median step, which a busy shared machine disturbs less. `--layout both` times each model
in torch's default NCHW layout and in the one genlab trains it in (channels_last where the type sets
`GenerativeModel.channels_last`), alternating `--rounds` times, and prints the ratio of the median-step
rates. `--compile both` does the same for eager against `torch.compile` (inductor) of each of the
model's networks; compilation happens in the untimed warm-up steps and its seconds are printed.
Name the CPU (lscpu) and the machine's load (uptime) with every number.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch

from common import fresh_model, sync
from genlab.config import load_params, parse_params
from genlab.models.base import ModelSpec
from genlab.models import MODEL_TYPES
from genlab.device import autocast, resolve_device, resolve_precision

WARMUP_STEPS = 3
#: Type-specific hparams that have a command-line override (--width, --latent-dim).
HPARAM_OVERRIDES = ("width", "latent_dim")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", help="keys of params.yaml's models (default: all)")
    parser.add_argument("--type", dest="kind", choices=sorted(MODEL_TYPES),
                        help="benchmark this model type at its defaults instead (no params.yaml needed)")
    parser.add_argument("--shape", type=shape_arg, default=(1, 28, 28), help="C,H,W of the images (default 1,28,28)")
    parser.add_argument("--num-classes", type=int, default=10, help="labels of the data (0: an unlabelled dataset)")
    parser.add_argument("--width", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--latent-dim", type=int)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default=None, help="auto, cpu or cuda (default: params.yaml's, or auto)")
    parser.add_argument("--precision", default=None,
                        help="fp32, bf16 or auto (default: params.yaml's train.precision, or fp32 with --type)")
    parser.add_argument("--layout", choices=("model", "both"), default="model",
                        help="model: genlab's layout for the type; both: NCHW against genlab's, side by side")
    parser.add_argument("--compile", choices=("off", "both"), default="off",
                        help="both: eager against torch.compile of each network, side by side")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of --layout/--compile both")
    args = parser.parse_args()
    if args.kind and args.models:
        parser.error("give either params.yaml model names or --type, not both")
    return args


def shape_arg(text: str) -> tuple[int, int, int]:
    try:
        c, h, w = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected C,H,W such as 3,64,64, got {text!r}") from None
    return c, h, w


def specs_and_train(args: argparse.Namespace) -> tuple[list[ModelSpec], dict]:
    """The specs to benchmark and the train settings (device, precision) they run with."""
    if args.kind:
        spec = parse_params({"models": {args.kind: {"type": args.kind}}}).models[args.kind]
        return [spec], {"device": "auto", "precision": "fp32"}
    params = load_params()
    return [params.model(name) for name in args.models or params.models], dict(params.train)


def with_overrides(spec: ModelSpec, args: argparse.Namespace) -> ModelSpec:
    """`spec` with the command-line batch size and, where its type has them, width and latent
    size (the autoencoders have no width), each checked by its field."""
    fields = MODEL_TYPES[spec.type].hparam_fields
    hparams = dict(spec.hparams)
    for key in HPARAM_OVERRIDES:
        value = getattr(args, key)
        if value is not None and key in fields:
            hparams[key] = fields[key].check(f"--{key.replace('_', '-')}", value)
    batch_size = args.batch_size if args.batch_size is not None else spec.batch_size
    return dataclasses.replace(spec, batch_size=batch_size, hparams=hparams)


def step_seconds(spec: ModelSpec, shape: tuple[int, int, int], num_classes: int, steps: int,
                 device: torch.device, precision: str, torch_layout: bool = False,
                 compiled: bool = False) -> tuple[list[float], int, bool]:
    """(seconds of each timed training step, parameter count, whether it ran channels_last) of a freshly
    built model; `compiled`: each network (a child module with parameters) through torch.compile."""
    model, opts = fresh_model(spec, shape, num_classes, device, torch_layout=torch_layout)
    if compiled:
        for name, child in list(model.named_children()):
            if any(True for _ in child.parameters()):
                setattr(model, name, torch.compile(child))
    x8 = torch.randint(0, 256, (spec.batch_size, *shape), dtype=torch.uint8, device=device)
    if model.trains_on == "task":
        x8 = (x8, x8)
    y = torch.randint(0, num_classes, (spec.batch_size,), device=device) if num_classes else None
    seconds, warmup = [], time.perf_counter()
    for step in range(steps + WARMUP_STEPS):
        start = time.perf_counter()
        with autocast(device, precision):
            model.training_step(model.to_input(x8), y, opts, step)
        sync(device)
        if step >= WARMUP_STEPS:
            seconds.append(time.perf_counter() - start)
        elif step == WARMUP_STEPS - 1 and compiled:
            print(f"{spec.name:10s} compilation and {WARMUP_STEPS} warm-up steps: {time.perf_counter() - warmup:.1f} s")
    return seconds, sum(p.numel() for p in model.parameters()), model.channels_last


def main() -> None:
    args = parse_args()
    specs, train = specs_and_train(args)
    device = resolve_device(args.device or train["device"])
    precision = resolve_precision(args.precision or train["precision"], device)
    shape = "x".join(map(str, args.shape))
    print(f"device={device} precision={precision} threads={torch.get_num_threads()} shape={shape}")
    for spec in (with_overrides(s, args) for s in specs):
        reason = MODEL_TYPES[spec.type].check_data(spec.hparams, args.shape, args.num_classes)
        if reason:
            print(f"{spec.name:10s} skipped: type {spec.type} cannot train on {shape} data: {reason}")
            continue
        if args.layout == "both":
            _side_by_side(spec, args, device, precision, "torch_layout")
            continue
        if args.compile == "both":
            _side_by_side(spec, args, device, precision, "compiled")
            continue
        seconds, params, _ = step_seconds(spec, args.shape, args.num_classes, args.steps, device, precision)
        mean_rate = len(seconds) * spec.batch_size / sum(seconds)
        median_rate = spec.batch_size / statistics.median(seconds)
        width = spec.hparams.get("width", "-")
        print(f"{spec.name:10s} type={spec.type:8s} batch={spec.batch_size:4d} width={width!s:>3} "
              f"params={params / 1e6:6.2f}M {mean_rate:8.1f} img/s (median step: {median_rate:.1f})", flush=True)


def _side_by_side(spec: ModelSpec, args: argparse.Namespace, device: torch.device, precision: str,
                  option: str) -> None:
    """Median-step img/s without and with `option` (torch_layout: NCHW against genlab's layout; compiled:
    eager against torch.compile), rounds alternating, and their ratio."""
    rates: dict[bool, list[float]] = {False: [], True: []}
    channels_last = False
    for _ in range(args.rounds):
        for on in (True, False) if option == "torch_layout" else (False, True):
            seconds, _, used = step_seconds(spec, args.shape, args.num_classes, args.steps, device, precision,
                                            **{option: on})
            rates[on].append(spec.batch_size / statistics.median(seconds))
            channels_last |= used
    off, on = statistics.median(rates[False]), statistics.median(rates[True])
    if option == "torch_layout":
        layout = "channels_last" if channels_last else "NCHW"
        line = f"NCHW {on:8.1f} img/s  genlab ({layout}) {off:8.1f} img/s  ratio {off / on:.2f}x"
    else:
        line = f"eager {off:8.1f} img/s  torch.compile {on:8.1f} img/s  ratio {on / off:.2f}x"
    print(f"{spec.name:10s} {line}", flush=True)


if __name__ == "__main__":
    main()
