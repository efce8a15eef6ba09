"""Stage reference@<dataset or task>: the floor every model of it is read against. A dataset: N real
train images scored like a model's samples against the test split (model "reference"). An
image-to-image task: its identity baseline, output = input for the first N test inputs (model
"identity"), with a source-only classifier's task accuracy for domain-adaptation tasks."""
from pathlib import Path

from genlab.cli import positional, run_stage
from genlab.config import load_params


def main(argv):
    data, real, classifier, classifier_features, out = map(Path, positional(
        argv, "packed.h5", "real_features.h5", "classifier.pt", "classifier_features.h5", "metrics.json"))
    params = load_params(models=False)
    from genlab.metrics.registry import require_valid_metrics

    require_valid_metrics(params.eval["metrics"])
    from genlab.io import write_metrics
    from genlab.metrics.evaluate import (EvaluatorFiles, evaluate_identity, evaluate_reference, is_task_file,
                                         metric_numbers)
    from genlab.metrics.registry import summary

    evaluator, n = EvaluatorFiles(classifier, classifier_features), params.sample["num_samples"]
    if is_task_file(data):
        record = {"model": "identity", **evaluate_identity(data, n, real, evaluator, params.eval, params.evaluator,
                                                           params.seed)}
    else:
        record = {"model": "reference", **evaluate_reference(data, n, real, evaluator, params.eval, params.seed)}
    write_metrics(out, record, metric_numbers(record))
    print(f"{record['model']} of {data.stem}: {summary(record)}")


if __name__ == "__main__":
    run_stage(main)
