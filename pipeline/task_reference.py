"""Stage task_reference@<task>: the real-data side of an image-to-image task's evaluation, in one process
(genlab.metrics.tasks): the target domain's classifier view (its dataset's classifier where the targets
are the dataset's images; none, with the reason, for a new domain), the Inception features of its first N
test targets (the dataset's own, reused, where they are the same images), and the identity baseline,
output = input (model "identity"), the floor of the task's leaderboard section, with a source-only
classifier's task accuracy for domain-adaptation tasks."""
from pathlib import Path

from genlab.cli import positional, run_stage
from genlab.config import load_params


def main(argv):
    (task, dataset, dataset_classifier, dataset_features, weights, classifier_features, train_features,
     evaluator_out, features, out) = map(Path, positional(
        argv, "task.h5", "dataset.h5", "dataset_classifier.pt", "dataset_features.h5", "weights.pt",
        "classifier_features.h5", "train_features.h5", "evaluator.json", "features.h5", "metrics.json"))
    params = load_params(models=False)
    from genlab.metrics.registry import require_valid_metrics

    require_valid_metrics(params.eval["metrics"])
    from genlab.io import write_metrics
    from genlab.metrics.evaluate import EvaluatorFiles, evaluate_identity
    from genlab.metrics.seeds import write_aggregate
    from genlab.metrics.registry import summary
    from genlab.metrics.tasks import task_evaluator, task_features

    view = task_evaluator(task, dataset_classifier, weights, classifier_features, train_features)
    write_metrics(evaluator_out, view, {k: view.get(k) for k in ("test_accuracy", "test_images")})
    accuracy = view["test_accuracy"]
    print(f"task classifier {view['dataset']}: " + (f"test accuracy {accuracy:.4f}" if accuracy is not None
                                                    else view["reason"]))
    print(f"task features: {task_features(task, dataset, dataset_features, features, params.eval)}")
    record = {"model": "identity", **evaluate_identity(task, params.sample["num_samples"], features,
                                                       EvaluatorFiles(weights, classifier_features), params.eval,
                                                       params.evaluator, params.seed)}
    record = write_aggregate(out, {0: record}, "the one set of the first N test inputs", "identity")
    print(f"identity of {task.stem}: {summary(record)}")


if __name__ == "__main__":
    run_stage(main)
