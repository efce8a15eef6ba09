"""Quality of a short training budget, without the pipeline: train one params.yaml model with
overrides for a number of steps, then score 500 samples with the dataset classifier.

    python benchmarks/budget_probe.py gan --steps 1100 -S lr=0.001 -S batch_size=64
    python benchmarks/budget_probe.py dcgan --steps 450 -S width=16 -S lr=0.001 --grid /tmp/dcgan.png

Prints the training seconds, classifier-FID (lower is better), classifier-IS and how many of the
10 classes hold at least 1% of the samples. Needs the packed data and the evaluator
(`dvc repro evaluator@fashion-mnist`). This is how the default budgets in params.yaml were chosen.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import yaml

from genlab.config import parse_params
from genlab.data.hdf5 import read_info
from genlab.metrics.classifier import classifier_view
from genlab.metrics.features import load_features
from genlab.models import build_model
from genlab.grid import balanced_labels, save_grid, to_uint8
from genlab.training.data import epoch_order, open_train_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a key of params.yaml's models")
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("-S", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a model key to override (YAML value), e.g. -S lr=0.001")
    parser.add_argument("--grid", type=Path, help="write a 10x10 sample grid here")
    parser.add_argument("--samples", type=int, default=500)
    args = parser.parse_args()

    raw = yaml.safe_load(Path("params.yaml").read_text())
    entry = raw["models"][args.model]
    for item in args.overrides:
        key, _, value = item.partition("=")
        entry[key] = yaml.safe_load(value)
    params = parse_params(raw)  # the same validation the pipeline applies
    spec = params.model(args.model)
    # The pipeline's paths for this dataset, as dvc.yaml writes them.
    packed = Path("data/packed") / f"{spec.dataset}.h5"
    classifier = Path("data/evaluator") / f"{spec.dataset}.pt"
    classifier_features = Path("data/features") / f"{spec.dataset}-test-classifier.h5"

    data = open_train_data(packed, device=torch.device("cpu"), memory_budget_bytes=params.data["memory_budget_mb"] << 20,
                           shuffle_buffer=params.data["shuffle_buffer"])
    torch.manual_seed(params.seed)
    model = build_model(spec, data.image_shape, len(read_info(packed)["class_names"])).train()
    optimizers = model.configure_optimizers()
    shuffle = torch.Generator().manual_seed(params.seed)
    per_epoch = data.n // spec.batch_size
    start = time.perf_counter()
    step = 0
    while step < args.steps:
        order = epoch_order(data.n, shuffle, params.data["shuffle_buffer"])
        for images, labels in data.batches(order, spec.batch_size, min(per_epoch, args.steps - step)):
            model.training_step(model.to_input(images), labels, optimizers, step)
            step += 1
    seconds = time.perf_counter() - start

    model.eval()
    with torch.no_grad():
        model.after_training(data)
        y = balanced_labels(args.samples, model.num_classes) if model.conditional else None
        samples = to_uint8(model.generate(model.sample_latent(args.samples, torch.Generator().manual_seed(1)), y))
    real, _ = load_features(classifier_features)
    record = classifier_view(samples.numpy(), None if y is None else y.numpy(), classifier, real, params.seed)
    if args.grid:
        save_grid(args.grid, samples[:100], nrow=10)
    print(f"{args.model} {' '.join(args.overrides)} steps={args.steps}: train {seconds:.1f} s, "
          f"clf-FID {record['classifier_fid']['value']:.1f}, clf-IS {record['classifier_is']['mean']:.2f}, "
          f"classes {record['class_histogram']['classes_covered']}/{record['class_histogram']['num_classes']}")


if __name__ == "__main__":
    main()
