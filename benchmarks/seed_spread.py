"""How far a new training seed moves each number: the Inception cross-check scored for EVERY seed of the
default run (the pipeline scores it on each model's first seed only, eval.inception_seeds), beside the
rank key, read from the run's own files. Prints, per model, the seed mean ± std (ddof=1) of Inception FID
and KID at the pipeline's N and of the rank key, the Spearman correlation of the two orders, and the
adjacent rows of the Inception-FID order that the rank key's tie groups keep apart.

    python benchmarks/seed_spread.py            # after `dvc repro`, from the repository root

It reads samples/<m>/seed-<s>.h5, the cached real Inception features and metrics/<m>/seed-<s>.protocol.json;
it writes nothing but its table (and --json)."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from genlab.config import load_params
from genlab.io import read_record
from genlab.layout import seed_path
from genlab.metrics import stats
from genlab.metrics.inception import eval_settings
from genlab.metrics.features import extract_features, load_features
from genlab.metrics.fid import compute_fid_kid
from genlab.metrics.registry import metric_numbers
from genlab.models import MODEL_TYPES
from genlab.sampling.sample import read_samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument("--models", nargs="+", help="only these entries of params.yaml (default: every noise-to-image one)")
    args = parser.parse_args()
    params = load_params()
    cfg = params.eval
    device, precision, runtime = eval_settings(cfg)
    key = params.report["rank_by"]
    rows, started = {}, time.perf_counter()
    models = args.models or [m for m, spec in params.models.items() if MODEL_TYPES[spec.type].trains_on == "dataset"]
    for name in tqdm(models, desc="models"):
        spec = params.models[name]
        real, _ = load_features(Path("data/features") / f"{spec.dataset}-test-n{cfg['num_real']}.h5")
        fids, kids, keys = [], [], []
        for seed in params.seeds_of(name):
            images, _, _ = read_samples(seed_path(Path("samples") / name, seed, ".h5"))
            fake = extract_features(images[:cfg["num_fake"]], batch_size=cfg["batch_size"], device=device,
                                    precision=precision, runtime=runtime, desc=f"{name} seed {seed}")
            scores = compute_fid_kid(fake, real, kid_subset_size=cfg["kid_subset_size"], seed=params.seed)
            fids.append(scores["fid"])
            kids.append(scores["kid_mean"])
            keys.append(metric_numbers(read_record(seed_path(Path("metrics") / name, seed, ".json")))[key])
        rows[name] = {"fid": fids, "kid": kids, key: keys}
    seconds = time.perf_counter() - started
    fid_means = {m: float(np.mean(r["fid"])) for m, r in rows.items()}
    key_scores = {m: np.asarray(r[key]) for m, r in rows.items()}
    groups = stats.rank_groups(key_scores, margin=0.0, threshold=params.report["tie_probability"])
    order = sorted(fid_means, key=fid_means.get)
    print(f"{'model':10} {'FID mean ± std':>18} {'KID x1e3 mean ± std':>22} {key:>24}  group")
    for m in order:
        r = rows[m]
        print(f"{m:10} {np.mean(r['fid']):8.1f} ± {np.std(r['fid'], ddof=1):6.1f} "
              f"{1e3 * np.mean(r['kid']):10.1f} ± {1e3 * np.std(r['kid'], ddof=1):6.1f} "
              f"{np.mean(r[key]):12.2f} ± {np.std(r[key], ddof=1):6.2f}  {groups[m]}")
    kept = [(a, b) for a, b in zip(order, order[1:]) if groups[a] != groups[b]]
    rho = stats.spearman(fid_means, {m: float(v.mean()) for m, v in key_scores.items()})
    print(f"Spearman(FID mean, {key} mean) = {'—' if rho is None else f'{rho:.2f}'}")
    print(f"adjacent FID-order pairs in different {key} groups: {kept or 'none'}")
    print(f"({len(models)} models x {len(params.seeds_of(models[0]))} seeds, {seconds:.0f} s; "
          f"N = {cfg['num_fake']} vs {cfg['num_real']}; spread: std over training seeds, ddof=1)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
