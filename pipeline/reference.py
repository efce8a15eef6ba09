"""Stage reference@<dataset>: N real train images scored like a model's samples against the test
split: the floor every model of that dataset is read against."""
from pathlib import Path

from genlab.cli import positional, run_stage
from genlab.config import load_params


def main(argv):
    data, real, classifier, classifier_features, out = map(Path, positional(
        argv, "packed.h5", "real_features.h5", "classifier.pt", "classifier_features.h5", "metrics.json"))
    params = load_params(models=False)
    from genlab.io import write_metrics
    from genlab.metrics.evaluate import EvaluatorFiles, evaluate_reference, metric_numbers

    record = {"model": "reference", **evaluate_reference(
        data, params.sample["num_samples"], real, EvaluatorFiles(classifier, classifier_features),
        params.eval, params.seed)}
    write_metrics(out, record, metric_numbers(record))
    print(f"reference (real train vs test): FID {record['fid']['value']:.2f}  KID {record['kid']['mean']:.4f} "
          f"(N={record['fid']['n_fake']} vs {record['fid']['n_real']})")


if __name__ == "__main__":
    run_stage(main)
