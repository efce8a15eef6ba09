"""Stage evaluator@<dataset>: train the dataset's classifier once -> its weights, its features of the
test and training splits (the latter for the memorization check), and a metrics file with its test accuracy (null with the reason for unlabelled data)."""
from pathlib import Path

from genlab.cli import positional, run_stage
from genlab.config import load_params


def main(argv):
    data, weights, features, train_features, metrics = map(Path, positional(
        argv, "packed.h5", "weights.pt", "features.h5", "train_features.h5", "metrics.json"))
    params = load_params(models=False)
    from genlab.data.hdf5 import say_whole_splits

    say_whole_splits(data, {"evaluator.train_limit": ("train", params.evaluator["train_limit"]),
                            "evaluator.memorization_train": ("train", params.evaluator["memorization_train"])})
    from genlab.io import write_metrics
    from genlab.metrics.evaluate import train_evaluator

    record = train_evaluator(data, weights, features, params.evaluator, params.seed, train_features,
                             device=params.eval["device"])
    write_metrics(metrics, record, {k: record.get(k) for k in ("test_accuracy", "train_images", "test_images")})
    accuracy = record["test_accuracy"]
    print(f"evaluator {record['dataset']}: " + (f"test accuracy {accuracy:.4f}" if accuracy is not None
                                               else record["reason"]))


if __name__ == "__main__":
    run_stage(main)
