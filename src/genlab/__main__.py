"""The `genlab` command (also `python -m genlab`): tools around the pipeline that `dvc repro` runs."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _audit(args: argparse.Namespace) -> int:
    from genlab.audit import DEFAULT_TOLERANCE, audit, render
    from genlab.io import cache_dir

    json_path = args.json
    if json_path is None:  # never inside the repository: a stray file there would make the tree dirty
        json_path = cache_dir() / "audits" / f"{args.run}.json"
    result = audit(args.run, Path(args.repo), rev=args.rev, rebuild=not args.no_rebuild, retrain=args.retrain,
                   tolerance=args.tolerance if args.tolerance is not None else DEFAULT_TOLERANCE,
                   json_path=json_path, tag=not args.no_tag, log=lambda m: print(m, file=sys.stderr))
    print(render(result))
    print(f"report: {json_path}")
    return result.exit_code


def _compare(args: argparse.Namespace) -> int:
    from genlab.reporting.compare import compare_runs
    from genlab.tracking import client

    print(f"wrote {compare_runs(client(), args.runs, args.output)}")
    return 0


def _env(args: argparse.Namespace) -> int:
    from genlab.tracking.lineage import environment

    print(json.dumps(environment(), indent=2))
    return 0


def _sample_batch_size() -> int:
    """params.yaml's sample.batch_size when the current directory has one (the evaluate stage's noise batches), else 250."""
    from genlab.config import load_params

    return load_params(models=False).sample["batch_size"] if Path("params.yaml").is_file() else 250


def _generate(args: argparse.Namespace) -> int:
    from genlab.serving.generate import generate

    print(generate(args.model, args.out, n=args.n, seed=args.seed, batch_size=args.batch_size or _sample_batch_size(),
                   label=args.label, input_path=args.input, device=args.device, checkpoint=args.checkpoint))
    return 0


def _score(args: argparse.Namespace) -> int:
    from genlab.io import write_json_atomic
    from genlab.metrics.registry import summary
    from genlab.serving.score import score

    record = score(args.images, args.dataset)
    print(f"{args.images} ({record['scored']['n']} images) against {args.dataset}: {summary(record)}")
    if args.json:
        write_json_atomic(args.json, record)
        print(f"record: {args.json}")
    return 0


def _preset(args: argparse.Namespace) -> int:
    from genlab.presets import PRESETS, PresetError, apply_preset, listing

    if args.list:
        print(listing())
        return 0
    if args.name is None:
        raise PresetError(f"name a preset (allowed names: {', '.join(PRESETS)}), or --list them")
    print(apply_preset(args.name, Path(args.repo), force=args.force))
    return 0


def _server(args: argparse.Namespace) -> int:
    from genlab.server import default_dir, serve

    return serve(Path(args.dir) if args.dir else default_dir(), host=args.host, port=args.port,
                 pg_port=args.pg_port, workers=args.workers)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genlab", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    audit = sub.add_parser(
        "audit", help="rebuild a model's MLflow run from its commit and check every recorded number",
        description="Find the commit whose dvc.lock records the run, check it out in a clean git worktree with "
                    "its outputs from the DVC cache or remote, check that the run's artifacts and metrics are "
                    "the bytes DVC tracks, re-run sample and evaluate there and compare. Exit 0: pass, "
                    "1: a mismatch, 2: the run cannot be audited (the report says why).")
    audit.add_argument("run", help="a training seed's MLflow run: its run id (a model's parent run id: its first seed), "
                            "<model>@<seed>, a model name (its first seed) or a `dvc exp` name")
    audit.add_argument("--repo", default=".", help="the project's git repository (default: the current directory)")
    audit.add_argument("--rev", help="audit the results at this commit instead of the newest one recording the run")
    audit.add_argument("--retrain", action="store_true",
                       help="re-train too and compare the model's bytes (bit-exact only on the same kind of CPU)")
    audit.add_argument("--no-rebuild", action="store_true",
                       help="check lineage, outputs and artifacts only (seconds); re-run nothing")
    audit.add_argument("--tolerance", type=float,
                       help="relative tolerance for metrics rebuilt in another environment (default 0.01)")
    audit.add_argument("--json", type=Path, help="where to write the report (default: ~/.cache/genlab/audits/RUN.json)")
    audit.add_argument("--no-tag", action="store_true", help="do not tag the MLflow run with the verdict")
    audit.set_defaults(func=_audit)

    compare = sub.add_parser(
        "compare", help="MLflow runs side by side in one self-contained HTML page",
        description="Write one HTML file (images embedded, no scripts; to mail or attach) with the runs' final "
                    "sample grids side by side, their per-epoch grids on a shared epoch axis, every per-step "
                    "metric overlaid, the params that differ, and the metrics logged once (FID, KID, ...) with "
                    "their protocols, marked where the protocols differ. Reads the tracking store through MLflow "
                    "(MLFLOW_TRACKING_URI, else the repository's mlflow.db).")
    compare.add_argument("runs", nargs="+", metavar="RUN",
                         help="an MLflow run id (a parent run: its first seed), <model>@<seed>, a model name (its first "
                              "training seed) or a `dvc exp` name")
    compare.add_argument("-o", "--output", type=Path, default=Path("compare.html"),
                         help="the HTML file to write (default: compare.html in the current directory)")
    compare.set_defaults(func=_compare)

    generate = sub.add_parser(
        "generate", help="draw images from a trained model: a PNG grid, an HDF5 samples file or a folder of PNGs",
        description="Load a trained model (weights only) and draw --n images with the evaluate stage's noise for "
                    "--seed (an image-to-image model translates --input). The same seed and batch size give the same "
                    "images as the evaluate stage, and the same bytes on the same machine.")
    generate.add_argument("model", metavar="MODEL",
                          help="models/<m> or models/<m>/seed-<s>, a params entry's name, an MLflow run id, "
                               "runs:/<id>/<path>, or models:/<name>@<alias>")
    generate.add_argument("-o", "--out", type=Path, required=True,
                          help="<file>.png: one grid; <file>.h5: a samples file; anything else: a new folder of PNGs")
    generate.add_argument("--n", type=int, default=64, help="images to draw (default 64)")
    generate.add_argument("--seed", type=int, default=0, help="the noise's seed (default 0)")
    generate.add_argument("--label", type=int, help="a conditional model's class for every image (default: balanced)")
    generate.add_argument("--input", type=Path, help="an image-to-image model's inputs: a folder of PNG/JPEG, .npz or .h5")
    generate.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    generate.add_argument("--checkpoint", choices=("last", "best"), default="last")
    generate.add_argument("--batch-size", type=int, help="noise batch (default: params.yaml's sample.batch_size, else 250)")
    generate.set_defaults(func=_generate)

    score = sub.add_parser(
        "score", help="score images made anywhere under the pipeline's protocol, against a dataset's cached features",
        description="Every metric the evaluate stage computes for samples (the rank key, FID/KID, precision/recall, "
                    "density/coverage, the memorization check) of the images against the dataset's cached real "
                    "features and classifier, with params.yaml's eval settings. Images of another size or channel "
                    "count are refused, never resized.")
    score.add_argument("images", type=Path, metavar="IMAGES", help="a folder of PNG/JPEG files, an .npz or an .h5")
    score.add_argument("--dataset", required=True, help="a dataset or task of params.yaml")
    score.add_argument("--json", type=Path, help="also write the record (every metric with its protocol) here")
    score.set_defaults(func=_score)

    preset = sub.add_parser(
        "preset", help="write a named preset (configs/) as params.yaml, e.g. `genlab preset paper-scale && dvc repro`",
        description="Validate the preset's file under configs/ as the stages validate params.yaml, then write its "
                    "bytes as params.yaml (atomically). Refuses when params.yaml has uncommitted changes (git), "
                    "unless --force. Exit 0: written (or already that preset), 2: refused or invalid.")
    preset.add_argument("name", nargs="?", help="the preset's name (--list shows them)")
    preset.add_argument("--list", action="store_true", help="list the presets and exit")
    preset.add_argument("--force", action="store_true", help="overwrite params.yaml even with uncommitted changes")
    preset.add_argument("--repo", default=".", help="the project's repository root (default: the current directory)")
    preset.set_defaults(func=_preset)

    server = sub.add_parser(
        "server", help="a team's MLflow tracking server on PostgreSQL (runs until Ctrl-C)",
        description="Start a PostgreSQL cluster of its own (Debian's postgresql, run as an unprivileged user) and "
                    "`mlflow server` on it, serving artifacts; print the MLFLOW_TRACKING_URI to export.")
    server.add_argument("--dir", help="where the database and artifacts live "
                                      "(default ~/.local/share/genlab/server; /var/lib/genlab/server for root)")
    server.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    server.add_argument("--port", type=int, default=5000)
    server.add_argument("--pg-port", type=int, help="PostgreSQL's port on 127.0.0.1 (default: a free one)")
    server.add_argument("--workers", type=int, default=2)
    server.set_defaults(func=_server)

    env = sub.add_parser("env", help="print the environment that runs record (Python, torch, CUDA, CPU, packages)")
    env.set_defaults(func=_env)
    return parser


def main(argv: list[str] | None = None) -> int:
    from genlab.errors import GenlabError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except GenlabError as err:  # one line, with the exit code a stage gives the same error (genlab.errors)
        print(err.report(), file=sys.stderr)
        return err.exit_code


if __name__ == "__main__":
    sys.exit(main())
