"""Memorization per example (Feldman & Zhang 2020, "What neural networks memorize and why").

The memorization score of training example i is

    mem(i) = P[h(x_i) = y_i | i in S] - P[h(x_i) = y_i | i not in S],

the difference in accuracy on the example between networks trained on random subsets S
of the training set that hold it and those that do not. :func:`memorization` estimates it
from ``runs`` fits, each on a random ``subset`` fraction (e.g. 70%) of a pool of training
examples, all with the same corrupted labels; the influence of training example i on
test example j is the same difference for accuracy on j (``influence=True``). Fits and
predictions go through the one runner (:mod:`rethink.runner`), so they are cached,
resumable and spread over devices or a cluster like any sweep.

With partially corrupted labels the examples whose labels were flipped can only be fitted
by memorizing them: :class:`MemorizationReport` gives the AUROC of the scores against the
known flipped set, and how it grows with the number of runs.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ._check import check_int, check_path
from ._io import atomic_torch_save, atomic_write_json
from .results import Result
from .spec import subset_indices

__all__ = ["MemorizationReport", "PredictJob", "memorization", "memorization_scores", "auroc"]


@dataclass(frozen=True)
class PredictJob:
    """Correctness of a finished run's network on every example of its training pool (on the
    labels it was trained on) and, with ``test``, on every test example; cached in
    ``<run_name>.preds.pt`` as bool tensors ``train`` (pool,) and ``test`` (num_test,)."""

    run_name: str
    test: bool = False
    root: str | None = None
    #: the user Dataset when the run trained on one (else the spec's dataset is loaded)
    data: Any = field(default=None, compare=False, hash=False, repr=False)

    @property
    def name(self) -> str:
        return f"{self.run_name}.preds"

    def finished(self, out_dir: Path) -> dict | None:
        path = out_dir / f"{self.run_name}.preds.pt"
        if not path.exists():
            return None
        try:
            d = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - a damaged cache is recomputed
            return None
        return d if (not self.test or "test" in d) else None

    def __call__(self, out_dir: Path, device: str) -> dict:
        from ._build import resolve_device
        from .run import Run
        from .train import load_model

        result = Result.load(out_dir / f"{self.run_name}.json")
        dev = resolve_device(device)
        net, _ = load_model(result, device=dev)
        run = Run.of_result(result, self.data, root=self.root)
        pool = run.spec.train_pool or len(run.dataset.train)
        out = {"train": _correct(net, run.loader("train", device=dev, subset=torch.arange(pool)))}
        if self.test:
            out["test"] = _correct(net, run.loader("test", device=dev, subset=None))
        atomic_torch_save(out, out_dir / f"{self.run_name}.preds.pt")
        return out


@torch.no_grad()
def _correct(net: torch.nn.Module, loader) -> torch.Tensor:
    return torch.cat([(net(x).argmax(1) == y).cpu() for x, y in loader])


def memorization_scores(in_mask: torch.Tensor, correct: torch.Tensor) -> torch.Tensor:
    """mem(i) = mean(correct[k, i] over runs k with in_mask[k, i]) - mean over runs without.

    Args:
        in_mask: bool (runs, n): example i was in run k's training subset.
        correct: bool (runs, n): run k's network classified example i correctly.

    Returns:
        float64 (n,); NaN where an example was in every run or in none.
    """
    if in_mask.shape != correct.shape or in_mask.dim() != 2:
        raise ValueError(f"in_mask and correct must both be (runs, n), got {tuple(in_mask.shape)} and "
                         f"{tuple(correct.shape)}")
    a, c = in_mask.double(), correct.double()
    n_in, n_out = a.sum(0), (1 - a).sum(0)
    return (a * c).sum(0) / n_in - ((1 - a) * c).sum(0) / n_out


def influence_scores(in_mask: torch.Tensor, correct_test: torch.Tensor) -> torch.Tensor:
    """infl(i, j) = mean(correct_test[k, j] | i in run k's subset) - mean(... | i not in it):
    float32 (n_train, n_test) from bool ``in_mask`` (runs, n_train) and ``correct_test``
    (runs, n_test)."""
    a, c = in_mask.double(), correct_test.double()
    n_in, n_out = a.sum(0)[:, None], (1 - a).sum(0)[:, None]
    return ((a.T @ c) / n_in - ((1 - a).T @ c) / n_out).float()


def auroc(scores: torch.Tensor, positive: torch.Tensor) -> float:
    """Area under the ROC curve of ``scores`` for the bool labels ``positive`` (ties count
    half; examples with a NaN score left out); NaN when one class is empty."""
    ok = ~torch.isnan(scores)
    s, y = scores[ok].double(), positive[ok].bool()
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = _average_ranks(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _average_ranks(x: torch.Tensor) -> torch.Tensor:
    order = torch.argsort(x, stable=True)
    sorted_x = x[order]
    ranks = torch.empty_like(x)
    ranks[order] = torch.arange(1, len(x) + 1, dtype=x.dtype)
    # average the ranks of tied values
    _, inverse, counts = torch.unique_consecutive(sorted_x, return_inverse=True, return_counts=True)
    sums = torch.zeros(len(counts), dtype=x.dtype).index_add_(0, inverse, ranks[order])
    ranks[order] = (sums / counts)[inverse]
    return ranks


@dataclass
class MemorizationReport:
    """What :func:`memorization` estimated.

    Attributes:
        scores: float64 (pool,) memorization score of every pool example (NaN where it was in
            every run's subset or in none).
        in_runs: int64 (pool,) how many runs held each example.
        flipped: bool (pool,) whether the example's training label was corrupted (differs from
            the true label).
        auroc: AUROC of ``scores`` against ``flipped`` (NaN without flipped labels).
        auroc_by_runs: {number of runs: AUROC from the first that many runs}.
        influence: float32 (pool, num_test) influence scores, or None.
        results: the fits' Results. paths: files written.
    """

    scores: torch.Tensor
    in_runs: torch.Tensor
    flipped: torch.Tensor
    auroc: float
    auroc_by_runs: dict[int, float]
    influence: torch.Tensor | None = None
    results: list[Result] = field(default_factory=list, repr=False)
    paths: dict[str, Any] = field(default_factory=dict)


def memorization(model: Any = "mlp1x512", dataset: Any = "fashion_mnist", corruption: str = "labels:0.2", *,
                 runs: int = 50, subset: float = 0.7, train_pool: int | None = None, seed: int = 0,
                 out_dir: str | os.PathLike = "memorization", influence: bool = False, root: str | None = None,
                 device: str = "auto", devices=None, executor: Any = None, progress: bool = True,
                 execution: Any = None, **settings: Any) -> MemorizationReport:
    """Estimate every pool example's memorization score from ``runs`` fits on random subsets.

    Run k trains ``model`` (``seed + k``) on a random ``subset`` fraction of the first
    ``train_pool`` training images (default: all), drawn with seed ``seed + k``; every run
    sees the same corruption (drawn with ``seed``). ``settings`` are RunSpec fields for every
    run (max_epochs, lr, stop_at_train_acc, ...). Writes each run's result and predictions and
    ``memorization.json`` (scores, AUROC, settings) into ``out_dir``; ``influence.pt`` too with
    ``influence``. ``model`` and ``dataset`` are anything :func:`rethink.fit_random` takes
    (names, ``nn.Module`` classes, factories or instances; Datasets, tensors, torch datasets).

    Raises:
        ValueError: runs < 2, subset outside (0, 1), a pool larger than the training set, a bad
            setting (named).
    """
    from .corruption import corrupted_labels
    from .runner import Execution, FitJob
    from .spec import Subject

    runs = check_int("runs", runs, low=2)  # the scores compare runs with and without each example
    if train_pool is not None:  # a pool of 0 or 1 leaves no example both in and out of a subset
        check_int("train_pool", train_pool, low=2)
    ex = execution or Execution(out_dir, root, device, devices, executor, progress)
    root, out_dir = ex.root, check_path("out_dir", ex.out_dir)
    if not (isinstance(subset, (int, float)) and 0 < subset < 1):
        raise ValueError(f"subset must be a fraction in (0, 1), got {subset!r}")
    for bad in ("train_size", "subset_seed", "corruption_seed", "seed"):
        if bad in settings:
            raise ValueError(f"memorization sets {bad} itself")
    subject = Subject.of(model, dataset, root)
    base = subject.spec(corruption=corruption, seed=seed, corruption_seed=seed, **settings)
    ds = subject.load(root)
    pool = len(ds.train) if train_pool is None else int(train_pool)
    if pool > len(ds.train):
        raise ValueError(f"train_pool={pool} exceeds the {len(ds.train)} training images of {base.dataset}")
    size = max(1, min(pool - 1, round(subset * pool)))
    specs = [base.replace(seed=seed + k, subset_seed=seed + k, train_size=size, train_pool=pool)
             for k in range(runs)]
    out = Path(out_dir)
    root_s = str(root) if root is not None else None
    results = ex.run([FitJob.of(subject, s, root_s) for s in specs], desc="memorization fits")
    failed = [r.run_name for r in results if r.status != "completed"]
    if failed:
        raise RuntimeError(f"{len(failed)} fit(s) failed, e.g. {failed[0]}: the scores need every run")
    preds = ex.run([PredictJob(r.run_name, influence, root_s, subject.data) for r in results],
                   desc="memorization predictions")
    in_mask = torch.zeros(runs, pool, dtype=torch.bool)
    for k, s in enumerate(specs):
        in_mask[k, subset_indices(len(ds.train), s.train_size, s.subset_seed, s.train_pool)] = True
    correct = torch.stack([p["train"] for p in preds])
    scores = memorization_scores(in_mask, correct)
    corr = base.corruption_object()
    labels = ds.train.labels[:pool]
    flipped = corrupted_labels(labels, ds.num_classes, corr, "train") != labels
    counts = sorted({n for n in (5, 10, 20, 50, 100, 200, 500, 1000) if n < runs} | {runs})
    by_runs = {n: auroc(memorization_scores(in_mask[:n], correct[:n]), flipped) for n in counts}
    report = MemorizationReport(scores=scores, in_runs=in_mask.sum(0), flipped=flipped,
                                auroc=by_runs[runs], auroc_by_runs=by_runs, results=results)
    report.paths["json"] = out / "memorization.json"
    atomic_write_json(report.paths["json"], {
        "settings": {**base.to_dict(), "runs": runs, "subset": subset, "train_pool": pool, "train_size": size},
        "auroc": report.auroc, "auroc_by_runs": {str(k): v for k, v in by_runs.items()},
        "flipped": int(flipped.sum()), "pool": pool,
        "scores": [None if math.isnan(v) else round(v, 6) for v in scores.tolist()],
        "flipped_mask": flipped.int().tolist(),
        "mean_score_flipped": float(scores[flipped].nanmean()) if flipped.any() else None,
        "mean_score_clean": float(scores[~flipped].nanmean()),
    })
    if influence:
        report.influence = influence_scores(in_mask, torch.stack([p["test"] for p in preds]))
        report.paths["influence"] = out / "influence.pt"
        atomic_torch_save(report.influence, report.paths["influence"])
    return report
