"""Stage reference@<dataset>: the floor every model of a dataset is read against: N real train images
scored like a model's samples against the test split (model "reference"). A task's floor, its identity
baseline, comes from its task_reference@ stage."""
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
    from genlab.metrics.evaluate import EvaluatorFiles, evaluate_reference, metric_numbers
    from genlab.metrics.registry import summary

    evaluator = EvaluatorFiles(classifier, classifier_features)
    record = {"model": "reference", **evaluate_reference(data, params.sample["num_samples"], real, evaluator,
                                                         params.eval, params.seed)}
    write_metrics(out, record, metric_numbers(record))
    print(f"reference of {data.stem}: {summary(record)}")


if __name__ == "__main__":
    run_stage(main)
