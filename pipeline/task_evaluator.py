"""Stage task_evaluator@<task>: the classifier view of a task's target domain (the dataset's classifier
where the targets are the dataset's images; none, with the reason, for a new domain)."""
from pathlib import Path

from genlab.cli import positional, run_stage


def main(argv):
    task, dataset_classifier, weights, features, metrics = map(Path, positional(
        argv, "task.h5", "dataset_classifier.pt", "weights.pt", "features.h5", "metrics.json"))
    from genlab.io import write_metrics
    from genlab.metrics.tasks import task_evaluator

    record = task_evaluator(task, dataset_classifier, weights, features)
    write_metrics(metrics, record, {k: record.get(k) for k in ("test_accuracy", "test_images")})
    accuracy = record["test_accuracy"]
    print(f"task evaluator {record['dataset']}: " + (f"test accuracy {accuracy:.4f}" if accuracy is not None
                                                    else record["reason"]))


if __name__ == "__main__":
    run_stage(main)
