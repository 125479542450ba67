"""The main job: the paper's whole randomization test on one model and one dataset.

:func:`randomization_test` trains the model on the five variants of the data (true
labels, random labels, shuffled pixels, random pixels, Gaussian), on a sweep of
partially corrupted labels, on true labels with weight decay and augmentation (the rows
of the paper's Table 1) and, optionally, on random labels with those regularizers (the
paper's Appendix E), for every seed. It writes every run's result, ``summary.csv``,
``figure1.png``, ``figure2.png``, ``table1.md`` and ``verdict.txt`` into one folder, and
answers the question the test asks with a verdict computed from the numbers: can this
model fit noise as readily as it fits the data?

The runs go through the one runner (:func:`rethink.runner.run_specs`), so they resume,
skip finished runs of the same settings and spread over several GPUs the same way as a
sweep. The same job on the command line: ``rethink randomization-test``.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import plots
from ._check import check_seed
from ._io import atomic_write_text
from .augment import parse_augment
from .corruption import Corruption
from .results import Result
from .spec import RunSpec

__all__ = ["DEFAULT_CORRUPTIONS", "DEFAULT_LABEL_NOISE", "PlannedRun", "RandomizationTestReport", "plan_runs",
           "randomization_test", "verdict", "write_summary_csv"]

#: The five variants of the paper's randomization test.
DEFAULT_CORRUPTIONS = ("none", "random_labels", "shuffled_pixels", "random_pixels", "gaussian")
#: Label-corruption levels of Figure 1 (b) and (c).
DEFAULT_LABEL_NOISE = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
#: Regularizers of the Table 1 grid: weight decay value and augmentation. "flip" rather than
#: the paper's random crops on the 8x8 digits, where a crop moves the digit by a large part of
#: its width; on 28x28 images use "crop" with crop=24 (the paper: 28 of 32).
DEFAULT_GRID_WEIGHT_DECAY = 5e-4
DEFAULT_GRID_AUGMENT = "flip"

#: Columns of summary.csv: the run's facts (:meth:`rethink.Result.summary`), then statistics
#: over the seeds of its group (the same settings but the seed).
SUMMARY_COLUMNS = ("run_name", "model", "dataset", "corruption", "variant", "label_noise", "seed", "weight_decay",
                   "augment", "dropout", "status", "epochs", "steps", "steps_to_fit", "epochs_to_fit", "train_loss",
                   "train_acc", "test_loss", "test_acc", "gap", "best_test_acc", "best_test_epoch", "chance",
                   "seconds")
GROUP_COLUMNS = ("seeds", "train_acc_mean", "train_acc_spread", "test_acc_mean", "test_acc_spread",
                 "steps_to_fit_mean", "steps_to_fit_spread", "best_test_acc_mean", "best_test_acc_spread")


@dataclass
class RandomizationTestReport:
    """What :func:`randomization_test` produced.

    Attributes:
        results: one :class:`rethink.Result` per run, in the order of :func:`plan_runs`.
        paths: files written: ``"out_dir"``, ``"results"`` (list of result JSON paths),
            ``"summary"``, ``"figure1"``, ``"figure2"`` (None without a true-label run), ``"table1"``,
            ``"verdict"``.
        verdict: one or two sentences computed from the results (see :func:`verdict`).
        table: the markdown of table1.md.
    """

    results: list[Result]
    paths: dict[str, Any] = field(default_factory=dict)
    verdict: str = ""
    table: str = ""

    def __iter__(self):  # allows ``results, paths, verdict, table = report``
        return iter((self.results, self.paths, self.verdict, self.table))


# ----------------------------------------------------------------------------- verdict


def _pct(x: float) -> str:
    """Percent with at most one decimal; never rounds a value below 1 up to 100%."""
    if x is None or math.isnan(x):
        return "n/a"
    return plots.percent(x, 1).rstrip("0").rstrip(".") + "%"


def _pick(descs: list[dict[str, Any]], variant: str) -> list[dict[str, Any]]:
    return [d for d in descs if d["variant"] == variant and plots._plain(d)]


def _fit_steps(ds: list[dict[str, Any]]) -> tuple[float, float]:
    """(mean, spread) of steps to fit over runs; NaN unless every run fitted."""
    if not ds or any(d["steps_to_fit"] is None for d in ds):
        return math.nan, math.nan
    m, sd, _ = plots.mean_spread(d["steps_to_fit"] for d in ds)
    return m, sd


def verdict(results: Iterable[Result], *, chance_tolerance: float = 0.05) -> str:
    """One or two sentences that answer the randomization test, computed from ``results``.

    Uses runs without regularizers: true labels and random labels (means over seeds, with
    the spread over seeds when there are several), and the pixel variants when present. For
    example: "MLP 1x512 on digits fits random labels to 100% train accuracy in 2.1x the steps
    of true labels; test accuracy falls from 97% to 10% (chance: 10%). ..."

    Raises:
        ValueError: no true-label or no random-label run among the results.
    """
    descs = [r.summary() for r in results if r.history]
    true, rand = _pick(descs, "true"), _pick(descs, "random_labels")
    if not true or not rand:
        missing = "true-label" if not true else "random-label"
        raise ValueError(f"verdict: no {missing} run (without weight decay or augmentation) among the results")
    models = sorted({plots.model_label(d["model"]) for d in true + rand})
    who = f"{' / '.join(models)} on {' / '.join(sorted({str(d['dataset']) for d in true + rand}))}"
    chance = plots.mean_spread(d["chance"] for d in rand)[0]
    t_test, t_sd, n = plots.mean_spread(d["test_acc"] for d in true)
    r_test, r_sd, _ = plots.mean_spread(d["test_acc"] for d in rand)
    r_train = plots.mean_spread(d["train_acc"] for d in rand)[0]
    (t_steps, _), (r_steps, r_steps_sd) = _fit_steps(true), _fit_steps(rand)
    near_chance = not math.isnan(chance) and abs(r_test - chance) <= chance_tolerance
    chance_txt = f"chance: {_pct(chance)}" if not math.isnan(chance) else "chance unknown"
    spread = (lambda sd: f" ± {_pct(sd)}") if n > 1 else (lambda sd: "")
    falls = f"test accuracy falls from {_pct(t_test)}{spread(t_sd)} to {_pct(r_test)}{spread(r_sd)} ({chance_txt})"
    seeds = f" (mean of {n} seeds ± spread)" if n > 1 else ""
    if not math.isnan(r_steps):
        if not math.isnan(t_steps) and t_steps > 0:
            sd = f" ± {r_steps_sd:,.0f}" if n > 1 else ""
            how = f"in {r_steps / t_steps:.1f}x the steps of true labels ({r_steps:,.0f}{sd} vs {t_steps:,.0f})"
        else:
            how = f"in {r_steps:,.0f} steps (true labels did not reach the target)"
        first = f"{who} fits random labels to {_pct(r_train)} train accuracy {how}; {falls}{seeds}."
        extra = []
        for v in ("shuffled_pixels", "random_pixels", "gaussian"):
            s = _fit_steps(_pick(descs, v))[0]
            if not math.isnan(s) and not math.isnan(t_steps) and t_steps > 0:
                extra.append(f"{plots.VARIANTS[v]} {s / t_steps:.1f}x")
        second = ("It can memorize the training set, so its accuracy on true labels is not explained by a "
                  "capacity too small to fit noise")
        if not near_chance:
            second += f" (note: random-label test accuracy is more than {_pct(chance_tolerance)} from chance)"
        if extra:
            second += "; steps to fit relative to true labels: " + ", ".join(extra)
        return " ".join([f"{first} {second}.", *_more(results)])
    target = plots.mean_spread(r.config.get("stop_at_train_acc") for r in results)[0]
    target = 1.0 if math.isnan(target) else target
    epochs = max(d["epochs"] for d in rand)
    first = (f"{who} does not fit random labels to {_pct(target)} train accuracy within {epochs} "
             f"epoch{'s' if epochs != 1 else ''} (it reaches {_pct(r_train)}); {falls}{seeds}.")
    return " ".join([f"{first} Within this budget the randomization test does not show that it can memorize the "
                     f"training set.", *_more(results)])


def _more(results: Iterable[Result]) -> list[str]:
    """The verdict's sentences on the label-noise sweep (Figure 1 b, c) and the regularizers
    (Table 1), each naming what is missing."""
    results = list(results)
    out = []
    data = plots.figure1_data(results)
    for key, c in data["c"].items():
        ps = c["label_noise"]
        if len(ps) < 3:
            continue
        errs = ", ".join(f"{p:g}: {_pct(e)}" for p, e in zip(ps, c["test_error"]))
        b = data["b"].get(key, {})
        unfit = [p for p, r in zip(b.get("label_noise", []), b.get("relative", [])) if math.isnan(r)]
        note = (f"; at label noise {', '.join(f'{p:g}' for p in unfit)} not every run reached the target, so "
                f"Figure 1b leaves {'it' if len(unfit) == 1 else 'them'} out" if unfit else "")
        out.append(f"Label noise ({key}): test error by corruption level {errs}{note}.")
    descs = [r.summary() for r in results if r.history]
    groups: dict[str, list[float]] = {}
    for d in descs:
        if d["variant"] == "true":
            groups.setdefault(plots.regularizer_label(d), []).append(d["test_acc"])
    if len(groups) > 1 and "no regularizer" in groups:
        def acc(v):
            m, sd, n = plots.mean_spread(v)
            return _pct(m) + (f" ± {_pct(sd)}" if n > 1 else "")

        base = plots.mean_spread(groups["no regularizer"])[0]
        parts = [f"{name} {acc(v)}" for name, v in sorted(groups.items()) if name != "no regularizer"]
        diffs = [abs(plots.mean_spread(v)[0] - base) for name, v in groups.items() if name != "no regularizer"]
        out.append(f"Regularizers (true labels, final test accuracy): none {acc(groups['no regularizer'])}, "
                   f"{', '.join(parts)}; "
                   f"the largest change is {100 * max(diffs):.1f} points.")
    return out


# ----------------------------------------------------------------------------- summary.csv


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if math.isnan(v) else repr(v)
    return v


def _group_key(r: Result) -> tuple:
    cfg = {k: v for k, v in (r.config or {}).items() if k not in ("seed", "corruption_seed", "subset_seed",
                                                                    "run_name", "versions", "device", "out_dir")}
    return tuple(sorted((k, repr(v)) for k, v in cfg.items()))


def write_summary_csv(results: Iterable[Result], path: str | os.PathLike) -> Path:
    """One row per result with the columns of :data:`SUMMARY_COLUMNS` (final epoch) and
    :data:`GROUP_COLUMNS` (mean and spread over the runs of the same settings but the seed),
    written atomically. Accuracies are fractions in [0, 1]; empty cells mean "none"."""
    results = list(results)
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in results:
        groups[_group_key(r)].append(r.summary())
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(SUMMARY_COLUMNS + GROUP_COLUMNS)
    for r in results:
        d, g = r.summary(), groups[_group_key(r)]
        stats = [len(g)]
        for key in ("train_acc", "test_acc", "steps_to_fit", "best_test_acc"):
            m, sd, n = plots.mean_spread(x[key] for x in g)
            unfit = key == "steps_to_fit" and any(x[key] is None for x in g)
            stats += [math.nan, math.nan] if unfit else [m, sd]
        w.writerow([_csv_value(d[c]) for c in SUMMARY_COLUMNS] + [_csv_value(v) for v in stats])
    path = Path(path)
    atomic_write_text(path, buf.getvalue())
    return path


# ----------------------------------------------------------------------------- the plan


def _corruption_string(c: Any) -> str:
    if isinstance(c, str) and c.strip().lower() in ("true", "true_labels", "none", ""):
        return "none"
    return str(Corruption.parse(c))


def _label_noise_string(level: Any) -> str:
    try:
        p = float(level)
    except (TypeError, ValueError):
        p = math.nan
    if isinstance(level, bool) or math.isnan(p) or not 0.0 <= p <= 1.0:
        raise ValueError(f"label noise level {level!r} is not a probability in [0, 1]")
    return "none" if p == 0.0 else "random_labels" if p == 1.0 else _corruption_string(f"labels:{p:g}")


@dataclass(frozen=True)
class PlannedRun:
    """One run of the job: its :class:`RunSpec` and why it is there ("variant",
    "label_noise", "grid" or "regularized_random"). Attributes of the spec read through."""

    spec: RunSpec
    purpose: str

    def __getattr__(self, name: str) -> Any:
        return getattr(self.spec, name)


def plan_runs(corruptions: Sequence[Any] = DEFAULT_CORRUPTIONS, label_noise: Sequence[float] = DEFAULT_LABEL_NOISE,
              seeds: Sequence[int] = (0,), *, grid: bool = True, grid_weight_decay: float = DEFAULT_GRID_WEIGHT_DECAY,
              grid_augment: str | None = DEFAULT_GRID_AUGMENT, regularized_random: bool = False,
              **settings: Any) -> list[PlannedRun]:
    """The runs of a randomization test, without duplicates.

    Label-noise level 0 is the true-label run and level 1 the random-label run (the same
    runs as the variants of those names). With ``grid``, true labels are also trained with
    weight decay ``grid_weight_decay``, with augmentation ``grid_augment``, and with both
    (Table 1's columns); a None/0 value drops the runs that need it. With
    ``regularized_random``, random labels get the same three regularized runs (Appendix E).
    ``settings`` (RunSpec fields: model, dataset, lr, max_epochs, weight_decay, augment, crop,
    dropout, epochs_after_fit, ...) apply to every run; ``weight_decay``/``augment`` there
    apply to the variant and label-noise runs too (the paper uses neither).

    Raises:
        ValueError: a label-noise level outside [0, 1], an empty seed list or a bad seed, a
            bad setting (named).
    """
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds is empty: give at least one seed")
    for s in seeds:
        check_seed("seed", s)
    base_wd = float(settings.pop("weight_decay", 0.0) or 0.0)
    base = RunSpec(**settings)
    base_aug = base.augment
    g_aug = parse_augment(grid_augment)
    g_wd = float(grid_weight_decay or 0.0)
    combos = []
    if g_wd:
        combos.append((g_wd, base_aug))
    if g_aug:
        combos.append((base_wd, g_aug))
    if g_wd and g_aug:
        combos.append((g_wd, g_aug))
    noise = [_label_noise_string(p) for p in label_noise]
    variants = [_corruption_string(c) for c in corruptions]
    runs: list[PlannedRun] = []
    seen: set[RunSpec] = set()

    def add(c: str, seed: int, wd: float, aug: str | None, purpose: str) -> None:
        spec = base.replace(corruption=c, seed=seed, weight_decay=wd, augment=aug)
        if spec not in seen:
            seen.add(spec)
            runs.append(PlannedRun(spec, purpose))

    for seed in seeds:
        for c in variants:
            add(c, seed, base_wd, base_aug, "variant")
        for c in noise:
            add(c, seed, base_wd, base_aug, "label_noise")
        for wd, aug in combos if grid else []:
            add("none", seed, wd, aug, "grid")
        for wd, aug in combos if regularized_random else []:
            add("random_labels", seed, wd, aug, "regularized_random")
    return runs


# ----------------------------------------------------------------------------- the job


def randomization_test(model: Any = "mlp1x512", dataset: Any = "digits", *, root: str | os.PathLike | None = None,
                       corruptions: Sequence[Any] = DEFAULT_CORRUPTIONS,
                       label_noise: Sequence[float] = DEFAULT_LABEL_NOISE, seeds: Sequence[int] = (0,),
                       out_dir: str | os.PathLike = "results", device: str = "auto",
                       devices: Sequence[str] | None = None, executor: Any = None, resume: bool = True,
                       progress: bool = True, grid: bool = True, grid_weight_decay: float = DEFAULT_GRID_WEIGHT_DECAY,
                       grid_augment: str | None = DEFAULT_GRID_AUGMENT, regularized_random: bool = False,
                       execution: Any = None, **settings: Any) -> RandomizationTestReport:
    """Run the paper's randomization test on ``model`` and ``dataset`` and write its report.

    Trains every run of :func:`plan_runs` (the paper's settings unless ``settings`` say
    otherwise), then writes into ``out_dir``: ``<run_name>.json`` per run (and its weights),
    ``summary.csv``, ``figure1.png``, ``figure2.png``, ``table1.md`` and ``verdict.txt``.

    Args:
        model, dataset, root, device: as for :func:`rethink.fit_random` (a name, an
            ``nn.Module`` class, factory or instance; a dataset name, Dataset, tensor tuple
            or torch dataset: see :mod:`rethink.inputs`).
        corruptions: corruption specs (``"none"``/``"true"``, ``"random_labels"``,
            ``"shuffled_pixels"``, ``"random_pixels"``, ``"gaussian"``, ``"labels:0.4"``...).
        label_noise: label-corruption probabilities for Figure 1 (b), (c).
        seeds: one full set of runs per seed (tables and figures show mean and spread).
        out_dir: folder for every file (checked writable before any run).
        devices, executor: spread the runs over worker processes or a cluster
            (:func:`rethink.runner.run_jobs`).
        resume: (the default, as in every command) reuse finished runs of the same settings
            in ``out_dir`` (their result files: a run stored without its weights, e.g. a
            committed result, counts as finished) and let interrupted runs continue from
            their checkpoint; False trains every run anew.
        progress: progress bars (tqdm, on stderr).
        grid, grid_weight_decay, grid_augment, regularized_random: see :func:`plan_runs`.
        execution: a :class:`rethink.runner.Execution` giving out_dir, root, device,
            devices, executor, progress and resume at once (then those keywords are unused).
        **settings: RunSpec fields for every run (lr, batch_size, max_epochs, crop,
            normalize, dropout, stop_at_train_acc, epochs_after_fit, ...).

    Returns:
        A :class:`RandomizationTestReport` (results, paths, verdict, table).

    Raises:
        ValueError: a bad corruption, label-noise level, seed or setting (before anything
            runs or is written).
    """
    from .runner import Execution, FitJob
    from .spec import Subject

    for k in ("out_dir", "run_name", "resume", "progress", "corruption", "seed", "model", "dataset",
              "model_fingerprint", "dataset_fingerprint"):
        if k in settings:
            raise ValueError(f"randomization_test sets {k!r} itself; do not pass it as a setting")
    ex = execution or Execution(out_dir, root, device, devices, executor, progress, resume)
    root = ex.root
    subject = Subject.of(model, dataset, root)
    plan = plan_runs(corruptions, label_noise, seeds, grid=grid, grid_weight_decay=grid_weight_decay,
                     grid_augment=grid_augment, regularized_random=regularized_random, **subject.identity(),
                     **settings)
    out = Path(ex.out_dir)
    # its results are read, never their networks: a run stored without its weights is not retrained
    jobs = [FitJob.of(subject, p.spec, root, resume=ex.resume, weights=False) for p in plan]
    model, dataset = subject.model.name, subject.dataset
    results = ex.run(jobs, desc=f"randomization test {model}/{dataset}")
    paths: dict[str, Any] = {"out_dir": out, "results": [out / f"{j.name}.json" for j in jobs]}
    table = plots.table1(results)
    try:
        text = verdict(results)
    except ValueError as e:
        text = f"No verdict: {e}."
    label = plots.model_label(model)
    paths["summary"] = write_summary_csv(results, out / "summary.csv")
    paths["figure1"] = plots.figure1(results, out / "figure1.png", model=model, title=f"{label} on {dataset}")
    # Figure 2 draws true-label learning curves: a label-noise sweep alone has none to draw
    has_true = any(r.history and r.summary()["variant"] == "true" for r in results)
    paths["figure2"] = (plots.figure2(results, out / "figure2.png", model=model, title=f"{label} on {dataset}")
                        if has_true else None)
    paths["table1"] = out / "table1.md"
    atomic_write_text(paths["table1"], f"# Table 1: {label} on {dataset}\n\n" + table)
    paths["verdict"] = out / "verdict.txt"
    atomic_write_text(paths["verdict"], text + "\n")
    return RandomizationTestReport(results=results, paths=paths, verdict=text, table=table)
