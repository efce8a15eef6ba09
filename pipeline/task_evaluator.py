"""Stage task_evaluator@<task>: the classifier view of a task's target domain (the dataset's classifier
where the targets are the dataset's images; none, with the source-only accuracy, for a new domain)."""
from pathlib import Path

from genlab.cli import positional, run_stage


def main(argv):
    task, dataset_classifier, weights, features, metrics = map(Path, positional(
        argv, "task.h5", "dataset_classifier.pt", "weights.pt", "features.h5", "metrics.json"))
    from genlab.io import write_metrics
    from genlab.metrics.task_classifier import task_evaluator

    record = task_evaluator(task, dataset_classifier, weights, features)
    write_metrics(metrics, record, {k: record.get(k) for k in ("test_accuracy", "test_images", "source_only_accuracy")})
    print(f"task evaluator {record['dataset']}: " + ", ".join(
        f"{k} {record[k]:.4f}" for k in ("test_accuracy", "source_only_accuracy") if record.get(k) is not None))


if __name__ == "__main__":
    run_stage(main)
