"""Which training images a nearly-fitted Fashion-MNIST run still gets wrong, and their nearest neighbours.

For every finished run under ``--results`` (default: results/fashion/constant_lr) that ends with
at most ``--max-wrong`` training images misclassified, this rebuilds the trained network from its
weights, prepares the training set as the run saw it (its training subset, corruption, crop and
per-image whitening, ``rethink.run.Run.training_tensors``), and records for each misclassified image its
(corrupted) label, the prediction, and its nearest other training image (Euclidean distance
between the prepared images) with that image's label and prediction. For scale it also records
the distribution of every training image's nearest-neighbour distance: over all of the
dataset's training images, and for a run on a training subset (``train_size``) over that
run's own images (its indices are then positions in its subset, and ``image`` /
``nearest_image`` give the images' indices in the training split).

    python scripts/fashion_misfits.py [--results results/fashion/constant_lr]
                                      [--out docs/results/fashion/misfits.json]

The output is one small JSON that ``scripts/make_report.py report`` reads (the weights it is
computed from stay under results/).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from rethink.measures import training_tensors  # noqa: E402
from rethink.results import Result, load_model  # noqa: E402
from rethink.run import Run  # noqa: E402

BLOCK = 4096


def nearest(xf: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(distance, index) of the nearest other row of ``xf`` for each index in ``rows``."""
    if len(rows) == 0:
        return torch.empty(0, dtype=xf.dtype), torch.empty(0, dtype=torch.long)
    sq = (xf * xf).sum(1)
    dist, idx = [], []
    for start in range(0, len(rows), BLOCK):
        r = rows[start:start + BLOCK]
        d2 = (sq[r, None] + sq[None] - 2 * xf[r] @ xf.T).clamp_min_(0)
        d2[torch.arange(len(r)), r] = float("inf")
        v, i = d2.min(1)
        dist.append(v.sqrt())
        idx.append(i)
    return torch.cat(dist), torch.cat(idx)


def analyse(path: Path, max_wrong: int) -> dict | None:
    """The misclassified training images of the finished run stored at ``path`` and their
    nearest neighbours; None for a file that is no run's result, a run not completed or one with
    more than ``max_wrong`` images wrong. A run with some images wrong, within the limit, whose
    weights were not kept is returned as its identity, its training accuracy and ``skipped``
    (the reason), so that the report can say which runs it could not look into."""
    try:
        r = Result.load(path)
    except ValueError:  # not a run's result file
        return None
    if r.status != "completed":
        return None
    s = r.summary()
    wrong_expected = round((1 - s["train_acc"]) * r.config["num_train"])
    if wrong_expected > max_wrong:
        return None
    ident = {"run_name": r.config["run_name"], "model": r.config["model"], "dataset": r.config["dataset"],
             "corruption": r.config["corruption"], "train_acc": s["train_acc"],
             "weight_decay": r.config.get("weight_decay", 0.0), "augment": r.config.get("augment")}
    try:
        model, _ = load_model(path)
    except FileNotFoundError as e:  # its weights were not kept (e.g. trained on another machine)
        if wrong_expected == 0:  # it fits: nothing misclassified to look into
            return None
        print(f"skipped {path.name}: {e}", file=sys.stderr)
        return ident | {"skipped": "its weights were not kept"}
    run = Run.of_result(r)  # the run's own view: its training subset, corruption, crop, normalization
    x, y = run.training_tensors()
    with torch.no_grad():
        pred = torch.cat([model(x[i:i + 2048]).argmax(1) for i in range(0, len(x), 2048)])
    wrong = (pred != y).nonzero().flatten()
    xf = x.reshape(len(x), -1).double()
    dist, idx = nearest(xf, wrong)
    out = ident | {
        "wrong": [
            {"index": int(i), "label": int(y[i]), "predicted": int(pred[i]), "nearest": int(j),
             "distance": round(float(d), 4), "nearest_label": int(y[j]), "nearest_predicted": int(pred[j])}
            for i, d, j in zip(wrong.tolist(), dist.tolist(), idx.tolist())],
        "crop": r.config["crop"], "normalize": r.config["normalize"],
    }
    if run.subset is not None:  # a subset: indices above are positions in it; "image": in the training split
        for x_ in out["wrong"]:
            x_["image"], x_["nearest_image"] = int(run.subset[x_["index"]]), int(run.subset[x_["nearest"]])
        out["nearest_neighbour"] = scale(xf, run.spec.crop, run.spec.normalize)  # the scale of its own images
    return out


def scale(xf: torch.Tensor, crop, normalize) -> dict:
    """The distribution of every row's nearest-neighbour distance: median, 1% quantile, the
    number closer than 1."""
    dist, _ = nearest(xf, torch.arange(len(xf)))
    q = torch.quantile(dist.float(), torch.tensor([0.01, 0.5]))
    return {"images": len(xf), "crop": crop, "normalize": normalize, "median": round(float(q[1]), 4),
            "p01": round(float(q[0]), 4), "below_1": int((dist < 1).sum())}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", type=Path, default=ROOT / "results" / "fashion" / "constant_lr")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "fashion" / "misfits.json")
    p.add_argument("--max-wrong", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    if args.max_wrong < 0:
        raise SystemExit(f"--max-wrong must be >= 0, got {args.max_wrong}")
    torch.set_num_threads(args.threads)
    found = [a for a in (analyse(f, args.max_wrong) for f in sorted(args.results.rglob("*.json"))) if a]
    runs = [a for a in found if "skipped" not in a]
    if not runs:
        raise SystemExit(f"no finished run under {args.results} ends with <= {args.max_wrong} images misclassified"
                         + (f" and has its weights ({len(found)} without them)" if found else ""))
    ref = runs[0]
    views = {(a["dataset"], a["crop"], a["normalize"]) for a in runs}
    if len(views) > 1:  # the whole split's scale is measured in one view
        raise SystemExit(f"runs under {args.results} see their data in different views (dataset, crop, "
                         f"normalize): {sorted(views, key=str)}; give --results one folder per view")
    x, _ = training_tensors(ref["dataset"], "none", normalize=ref["normalize"], crop=ref["crop"])
    out = {"nearest_neighbour": scale(x.reshape(len(x), -1).double(), ref["crop"], ref["normalize"]),
           "runs": runs, "not_analysed": [a for a in found if "skipped" in a]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=args.out.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(out, f, indent=1)
    os.replace(tmp, args.out)
    os.chmod(args.out, 0o644)
    print(f"wrote {args.out}: {len(runs)} runs, {len(found) - len(runs)} without their weights (not analysed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
