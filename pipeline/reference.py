"""Stage reference@<dataset>: the floor every model of a dataset is read against: disjoint sets of N real
train images scored like a model's seeds against the test split (model "reference"), so the floor has a
spread. A task's floor, its identity
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
    from genlab.metrics.evaluate import EvaluatorFiles, evaluate_reference
    from genlab.metrics.registry import summary
    from genlab.metrics.seeds import write_aggregate

    evaluator = EvaluatorFiles(classifier, classifier_features)
    records = evaluate_reference(data, params.sample["num_samples"], real, evaluator, params.eval, params.seed)
    record = write_aggregate(out, {k: {"model": "reference", **r} for k, r in records.items()},
                             "disjoint subsets of real training images", "reference")
    print(f"reference of {data.stem} ({len(records)} subsets; the first): {summary(record)}")


if __name__ == "__main__":
    run_stage(main)
