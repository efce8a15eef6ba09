"""Stage report: metrics/*.json of every model -> reports/leaderboard.{md,csv} and reports/index.html."""
from pathlib import Path

from genlab.cli import run_stage
from genlab.config import load_params


def main(argv):
    params = load_params()
    from genlab.reporting import write_report

    models = [(name, spec.type) for name, spec in params.models.items()]
    models.append(("reference", "real data"))  # train-vs-test: the floor every model is read against
    frame = write_report(models, metrics_dir=Path("metrics"), models_dir=Path("models"),
                         plots_dir=Path("plots/train"), samples_dir=Path("samples"), report_dir=Path("reports"))
    print(frame[["model", "fid", "kid_mean", "n_fake", "status"]].to_string(index=False))


if __name__ == "__main__":
    run_stage(main)
