"""Empirical Rademacher complexity of a model class on a dataset, measured by fitting.

The empirical Rademacher complexity of a class H on n points is
``E_sigma [ sup_{h in H} (1/n) sum_i sigma_i h(x_i) ]`` with sigma_i uniform in {-1, +1}.
Training stands in for the supremum: for each of ``draws`` seeded draws of sigma,
:func:`rademacher` trains the model on the labels sigma and evaluates
``(1/n) sum_i sigma_i f(x_i)`` for the trained network's sign predictions ``f(x_i)`` in
{-1, +1}. The paper's observation is that deep networks fit random labels, so this is
about 1 and Rademacher bounds say nothing.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["RademacherResult", "rademacher"]


@dataclass
class RademacherResult:
    """What :func:`rademacher` measured.

    Attributes:
        correlations: per draw, ``(1/n) sum_i sigma_i f(x_i)`` in [-1, 1] (classes=2; NaN otherwise).
        mean, std: mean and sample standard deviation of ``correlations`` (std 0 for one draw):
            the estimate of the empirical Rademacher complexity and its spread.
        fit_scores: per draw, ``(train_acc - 1/K) / (1 - 1/K)``: 0 for chance, 1 for a perfect fit
            of the random labels (equals the correlation when K = 2).
        fit_score: their mean.
        train_accs: per draw, the accuracy on the random training labels.
        classes: K, the number of random classes.
        n: number of training points.
        results: the ``rethink.Result`` of each fit (with its model in memory).
    """

    correlations: list[float]
    mean: float
    std: float
    fit_scores: list[float]
    fit_score: float
    train_accs: list[float]
    classes: int
    n: int
    results: list[Any] = field(default_factory=list, repr=False)


def _spread(v: list[float]) -> float:
    v = [x for x in v if not math.isnan(x)]
    return statistics.stdev(v) if len(v) > 1 else (0.0 if v else math.nan)


def _mean(v: list[float]) -> float:
    v = [x for x in v if not math.isnan(x)]
    return sum(v) / len(v) if v else math.nan


def rademacher(model: Any = "mlp1x512", dataset: Any = "digits", draws: int = 5, *, seed: int = 0,
               classes: int = 2, root=None, progress: bool = False, **fit_kwargs) -> RademacherResult:
    """Estimate the empirical Rademacher complexity of a model class by fitting random labels.

    For draw j = 0..draws-1: labels drawn uniformly from ``classes`` classes (seed
    ``seed + j``; for classes=2 they are sigma in {-1, +1} coded as 0/1) replace the training
    labels; ``rethink.fit_random(model, that dataset, corruption="none", seed=seed + j,
    **fit_kwargs)`` trains a fresh copy of the model (a name or a class / factory is built
    anew from the draw's seed, a module instance is copied so every draw starts from its
    weights); then
    ``(1/n) sum_i sigma_i f(x_i)`` with ``f(x_i) = +1`` when class 1 is predicted, else -1.

    Args:
        model: a ``rethink.models`` name, an ``nn.Module`` class or factory, or an instance
            (``classes`` outputs); see :mod:`rethink.inputs`.
        dataset: anything :func:`rethink.fit_random` takes (a name with ``root``, a Dataset,
            tensors, a torch dataset); its training images are used.
        draws: number of random labelings (>= 1).
        classes: K >= 2 random classes (the correlation is defined for K = 2 only).
        fit_kwargs: passed to ``fit_random`` (e.g. ``max_epochs``, ``lr``, ``device``).

    Returns:
        :class:`RademacherResult`.

    Raises:
        ValueError: draws < 1, classes < 2, a seed outside [0, 2^63), a dataset that is neither
            a name nor a Dataset, an empty training split, a model without parameters.
    """
    from . import datasets
    from ._check import check_int, check_seed
    from .inputs import as_dataset, as_model
    from .run import Run
    from .runner import FitJob, run_jobs
    from .train import make_spec

    draws = check_int("draws", draws, low=1)
    classes = check_int("classes", classes, low=2, high=datasets.MAX_CLASSES)
    seed = check_seed("seed", seed)
    check_seed("seed + draws - 1 (the seed of the last draw)", seed + draws - 1)
    source = as_model(model)
    for bad in ("corruption", "out_dir", "seed"):
        if bad in fit_kwargs:
            raise ValueError(f"rademacher draws its own labels and keeps no files: {bad}= is not accepted")
    device = fit_kwargs.pop("device", "auto")
    ds = as_dataset(dataset, root=root)[0]
    n = len(ds.train.labels)
    if n == 0:
        raise ValueError(f"no training data: dataset {ds.name!r} has an empty training split")
    jobs, relabeled = [], []
    for j in range(draws):
        g = torch.Generator().manual_seed(seed + j)
        ytr = torch.randint(0, classes, (n,), generator=g)
        yte = torch.randint(0, classes, (len(ds.test.labels),), generator=g)
        rand = datasets.from_tensors(ds.train.images, ytr, ds.test.images, yte, num_classes=classes,
                                     name=f"{ds.name}-random{classes}-{seed + j}")
        spec, module, data = make_spec(source, rand, "none", seed=seed + j, **fit_kwargs)
        jobs.append(FitJob(spec, module=module, data=data))
        relabeled.append(rand)
    fits = run_jobs(jobs, None, device=device, progress=progress, desc="rademacher draws")
    correlations, scores, accs, results = [], [], [], []
    for j, (res, rand) in enumerate(zip(fits, relabeled)):
        if res.status != "completed":
            raise RuntimeError(f"rademacher: draw {j} did not complete ({res.status}: {res.error})")
        trained = res.model.eval()
        dev = next(trained.parameters()).device
        loader = Run(res.spec, rand).loader("train", device=dev)  # the view it was trained on
        with torch.no_grad():
            preds, ys = zip(*((trained(x.to(next(trained.parameters()).dtype)).argmax(1), y) for x, y in loader))
        pred, y = torch.cat(preds), torch.cat(ys)
        acc = float((pred == y).double().mean())
        if classes == 2:
            sigma = 2.0 * y.double() - 1.0
            f = 2.0 * pred.double() - 1.0
            correlations.append(float((sigma * f).mean()))
        else:
            correlations.append(math.nan)
        accs.append(acc)
        scores.append((acc - 1.0 / classes) / (1.0 - 1.0 / classes))
        results.append(res)
    return RademacherResult(correlations=correlations, mean=_mean(correlations), std=_spread(correlations),
                            fit_scores=scores, fit_score=_mean(scores), train_accs=accs, classes=classes, n=n,
                            results=results)
