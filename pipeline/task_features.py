"""Stage task_features@<task>: Inception features of a task's real test targets (its dataset's own,
reused, where the targets are the dataset's test images)."""
from pathlib import Path

from genlab.cli import positional, run_stage
from genlab.config import load_params


def main(argv):
    task, dataset, dataset_features, out = map(Path, positional(
        argv, "task.h5", "dataset.h5", "dataset_features.h5", "out.h5"))
    params = load_params(models=False)
    from genlab.metrics.tasks import task_features

    print(f"task features: {task_features(task, dataset, dataset_features, out, params.eval)}")


if __name__ == "__main__":
    run_stage(main)
