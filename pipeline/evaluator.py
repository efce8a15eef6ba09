"""Stage evaluator@<dataset>: train the dataset's classifier once -> data/evaluator/<dataset>.pt,
its test-split features, and metrics/evaluator-<dataset>.json (test accuracy)."""
from pathlib import Path

from genlab.cli import one_arg, run_stage
from genlab.config import load_params


def main(argv):
    params = load_params()
    dataset = one_arg(argv, "dataset name")
    from genlab.metrics.evaluate import train_evaluator, write_metrics

    record = train_evaluator(Path("data/packed") / f"{dataset}.h5", params.evaluator, params.seed)
    write_metrics(Path("metrics") / f"evaluator-{dataset}.json", record)
    print(f"evaluator {dataset}: test accuracy {record['test_accuracy']:.4f}")


if __name__ == "__main__":
    run_stage(main)
