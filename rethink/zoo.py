"""A model zoo: a factorial grid of training runs for studying generalization measures.

Jiang et al. 2020 ("Fantastic generalization measures and where to find them") trained
over 2,000 CIFAR-10 networks on a factorial grid of hyper-parameters, every one to the
same stopping rule, and asked which complexity measures predict the generalization gap
across them. :func:`zoo` builds such a grid (every combination of the values in ``grid``,
times ``seeds``), trains it through the one runner (resumable; worker processes per
device; a Slurm cluster through submitit with ``executor``), and computes every run's
complexity measures, cached per run, in parallel the same way. :func:`rethink.study.study`
on the folder then scores the measures (Kendall's tau, granulated tau, conditional mutual
information, sign-error).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .results import Result
from .spec import RunSpec

__all__ = ["ZOO_GRID", "ZOO_SETTINGS", "ZooReport", "zoo", "zoo_specs", "MeasureJob"]

#: The default grid: six hyper-parameters with two values each (64 configurations).
ZOO_GRID: dict[str, list] = {
    "model": ["mlp1x128", "mlp2x512"],
    "lr": [0.01, 0.03],
    "batch_size": [32, 128],
    "weight_decay": [0.0, 5e-4],
    "corruption": ["none", "labels:0.2"],
    "train_size": [1000, 4000],
}
#: Settings shared by every run of the default zoo: Fashion-MNIST subsets, a common stopping
#: rule (99% training accuracy, as Jiang et al. required) within a budget of epochs, and the
#: first 2,000 test images for the gap.
ZOO_SETTINGS: dict[str, Any] = {"dataset": "fashion_mnist", "stop_at_train_acc": 0.99, "max_epochs": 300,
                                "test_size": 2000}


def zoo_specs(grid: dict[str, list] | None = None, seeds=(0, 1), **settings: Any) -> list[RunSpec]:
    """Every combination of ``grid``'s values (RunSpec fields -> lists) for every seed, with
    ``settings`` (default :data:`ZOO_SETTINGS`) for all; in grid order, seeds innermost.
    ``model`` (in the grid or the settings) may be user models and ``dataset`` user data, as
    :func:`rethink.fit_random` takes them (see :mod:`rethink.inputs`).

    Raises:
        ValueError: an empty grid value list or no seeds, a bad setting (named), a grid key that
            is not a RunSpec field.
    """
    return [spec for spec, _ in _plan(grid, seeds, None, settings)]


def _plan(grid, seeds, root, settings: dict[str, Any]) -> list[tuple[RunSpec, Any]]:
    """``[(spec, its Subject)]`` of the zoo's runs; each distinct model and dataset read once."""
    from .inputs import as_dataset, as_model
    from .spec import Subject

    if grid is not None and not isinstance(grid, dict):
        raise ValueError(f"grid must be a dict of RunSpec settings -> lists of values, got {type(grid).__name__}")
    grid = dict(ZOO_GRID if grid is None else grid)
    settings = {**ZOO_SETTINGS, **settings}
    seeds = list(seeds) if isinstance(seeds, (list, tuple, range)) else seeds
    if not isinstance(seeds, list) or not seeds:
        raise ValueError(f"seeds must be a non-empty list of seeds, got {seeds!r}")
    for k, v in grid.items():
        if not isinstance(v, (list, tuple)) or not v:
            raise ValueError(f"grid[{k!r}] must be a non-empty list of values, got {v!r}")
        if k in ("seed",):
            raise ValueError("give seeds with seeds=, not in the grid")
        if k in ("model_fingerprint", "dataset_fingerprint"):
            raise ValueError(f"{k} is not a setting: give user models and data as grid['model'] / dataset=")
    models, datas = {}, {}

    def subject(model: Any, dataset: Any) -> Subject:
        if id(model) not in models:
            models[id(model)] = (model, as_model(model))  # the object is held so its id stays its own
        if id(dataset) not in datas:
            datas[id(dataset)] = (dataset, (dataset, None, None) if isinstance(dataset, str) else
                                  (None, *as_dataset(dataset, root=root)))
        name, data, fp = datas[id(dataset)][1]
        return Subject(models[id(model)][1], name if data is None else str(data.name), data, fp)

    plan = []
    for values in itertools.product(*grid.values()):
        run = {**settings, **dict(zip(grid, values))}
        sub = subject(run.pop("model", "mlp1x512"), run.pop("dataset", "digits"))
        for s in seeds:
            plan.append((sub.spec(**{**run, "seed": s}), sub))
    return plan


@dataclass(frozen=True)
class MeasureJob:
    """The complexity measures of one finished run, cached in ``<run_name>.measures.json``
    (keyed by the measure settings and by the sha256 of the run's weights file
    ``<run_name>.pt``, so other settings, or a run retrained since, are recomputed; where the
    weights file is absent, as in a committed result folder, the cache is used as it is)."""

    run_name: str
    settings: tuple = ()  # sorted (key, value) pairs for rethink.measures.compute
    #: the user Dataset when the run trained on one (else the spec's dataset is loaded)
    data: Any = field(default=None, compare=False, hash=False, repr=False)

    @classmethod
    def make(cls, run_name: str, settings: dict | None = None) -> MeasureJob:
        """The job for ``run_name`` with ``settings`` for :func:`rethink.measures.compute` completed
        by compute's defaults, so equal settings given differently share one cache entry."""
        import inspect

        from .measures import check_settings, compute

        check_settings({} if settings is None else settings)
        params = inspect.signature(compute).parameters
        full = {k: p.default for k, p in params.items()
                if k in ("measures", "seed", "max_examples", "samples", "batch_size", "sharpness_steps")}
        full.update(settings or {})
        full.pop("memory_budget", None)  # how the work is chunked, not what is computed
        if isinstance(full.get("measures"), (list, tuple)):
            full["measures"] = tuple(full["measures"])
        return cls(run_name, tuple(sorted(full.items())))

    @property
    def name(self) -> str:
        return f"{self.run_name}.measures"

    def _key(self) -> str:
        return repr(self.settings)

    def finished(self, out_dir: Path) -> dict | None:
        import json

        from ._io import file_digest

        path, pt = out_dir / f"{self.run_name}.measures.json", out_dir / f"{self.run_name}.pt"
        try:
            d = json.loads(path.read_text())
            # without its weights file (e.g. a committed result folder) the cache is the only record
            weights = file_digest(pt) if pt.exists() else None
        except (OSError, ValueError):
            return None
        ok = isinstance(d, dict) and d.get("settings") == self._key() and (weights is None
                                                                            or d.get("weights") == weights)
        if ok and weights is not None and dict(self.settings).get("measures") == "all":
            from .measures import MEASURES  # "all" of an older rethink: measures added since are missing

            ok = set(MEASURES) <= set(d.get("values", {}))
        return d if ok else None

    def __call__(self, out_dir: Path, device: str) -> dict:
        from ._io import atomic_write_json, file_digest
        from .measures import compute

        settings = dict(self.settings)
        if isinstance(settings.get("measures"), tuple):
            settings["measures"] = list(settings["measures"])
        pt = out_dir / f"{self.run_name}.pt"
        weights = file_digest(pt) if pt.exists() else None
        values = compute(str(out_dir / f"{self.run_name}.json"), dataset=self.data, device=device, **settings)
        if weights is None or file_digest(pt) != weights:
            raise RuntimeError(f"the weights {str(pt)!r} changed while their measures were computed; rerun")
        out = {"settings": self._key(), "weights": weights, "values": dict(values), "seconds": dict(values.seconds)}
        atomic_write_json(out_dir / f"{self.run_name}.measures.json", out)
        return out


@dataclass
class ZooReport:
    """What :func:`zoo` produced: ``results`` (one per run, in grid order), ``measures``
    (run name -> {measure: value}, for completed runs when measures were computed),
    ``out_dir``."""

    results: list[Result]
    measures: dict[str, dict] = field(default_factory=dict)
    out_dir: Path | None = None


def zoo(grid: dict[str, list] | None = None, seeds=(0, 1), out_dir: str | os.PathLike = "zoo", *,
        measures: bool = True, measure_settings: dict | None = None, root: str | None = None, device: str = "auto",
        devices=None, executor: Any = None, progress: bool = True, execution: Any = None,
        **settings: Any) -> ZooReport:
    """Train the factorial grid of :func:`zoo_specs` into ``out_dir`` and compute the measures
    of every run that completed (``measure_settings`` go to :func:`rethink.measures.compute`,
    e.g. ``samples``, ``max_examples``). Finished runs and cached measures are reused (a run
    whose measures are cached, or any finished run with ``measures=False``, is not trained
    again for want of its weights file); runs
    and measures spread over ``devices`` or an ``executor`` (:func:`rethink.runner.run_jobs`);
    ``execution`` (a :class:`rethink.runner.Execution`) gives out_dir, root, device, devices,
    executor and progress at once.

    Returns a :class:`ZooReport`. Raises ValueError for a bad grid, seed, setting or measure
    setting (named), before anything runs."""
    import dataclasses

    from .runner import Execution, FitJob

    ex = execution or Execution(out_dir, root, device, devices, executor, progress)
    root, out_dir = ex.root, ex.out_dir
    plan = _plan(grid, seeds, root, settings)
    cached: set[str] = set()
    if measures:  # bad measure settings are refused before anything is trained
        proto = MeasureJob.make("", measure_settings)
        # a finished run whose measures are cached needs no weights file: it is not trained again
        cached = {spec.run_name() for spec, _ in plan
                  if dataclasses.replace(proto, run_name=spec.run_name()).finished(Path(out_dir)) is not None}
    # without measures no weights are read: a finished run stored without them is not trained again
    results = ex.fits([FitJob.of(sub, spec, root, weights=measures and spec.run_name() not in cached)
                       for spec, sub in plan],
                      desc="zoo")
    report = ZooReport(results=results, out_dir=Path(out_dir))
    if measures:
        done = [(r, sub) for r, (_, sub) in zip(results, plan) if r.status == "completed"]
        jobs = [dataclasses.replace(MeasureJob.make(r.run_name, measure_settings), data=sub.data) for r, sub in done]
        outs = ex.run(jobs, desc="measures")
        report.measures = {j.run_name: o["values"] for j, o in zip(jobs, outs)}
    return report
