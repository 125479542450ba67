"""The main job: the paper's whole randomization test on one model and one dataset.

:func:`randomization_test` trains the model on the five variants of the data (true
labels, random labels, shuffled pixels, random pixels, Gaussian), on a sweep of
partially corrupted labels, and on true labels with weight decay and augmentation (the
rows of the paper's Table 1). It writes every run's result, ``summary.csv``,
``figure1.png``, ``table1.md`` and ``verdict.txt`` into one folder, and answers the
question the test asks with a verdict computed from the numbers: can this model fit
noise as readily as it fits the data?

The same job on the command line: ``rethink randomization-test`` (see :func:`add_cli`).
"""

from __future__ import annotations

import csv
import io
import math
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import plots
from ._io import atomic_write_text
from .results import Result

__all__ = [
    "DEFAULT_CORRUPTIONS",
    "DEFAULT_LABEL_NOISE",
    "RandomizationTestReport",
    "add_cli",
    "plan_runs",
    "randomization_test",
    "verdict",
    "write_summary_csv",
]

#: The five variants of the paper's randomization test.
DEFAULT_CORRUPTIONS = ("none", "random_labels", "shuffled_pixels", "random_pixels", "gaussian")
#: Label-corruption levels of Figure 1 (b) and (c).
DEFAULT_LABEL_NOISE = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
#: Regularizers of the Table 1 grid (true labels only): weight decay value and augmentation.
#: "flip" rather than the paper's random crops ("crop_flip", zero padding 4): on 8x8 digits a
#: 4-pixel shift moves the digit by half its width, and the training set can then no longer be
#: fitted, so every such run would last its whole epoch budget.
DEFAULT_GRID_WEIGHT_DECAY = 5e-4
DEFAULT_GRID_AUGMENT = "flip"

#: Columns of summary.csv (see :func:`rethink.plots.describe`).
SUMMARY_COLUMNS = (
    "run_name",
    "model",
    "dataset",
    "corruption",
    "variant",
    "label_noise",
    "seed",
    "weight_decay",
    "augment",
    "status",
    "epochs",
    "steps",
    "steps_to_fit",
    "epochs_to_fit",
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "gap",
    "chance",
    "seconds",
)


@dataclass
class RandomizationTestReport:
    """What :func:`randomization_test` produced.

    Attributes:
        results: one :class:`rethink.Result` per run, in the order of :func:`plan_runs`.
        paths: files written: ``"out_dir"``, ``"results"`` (list of result JSON paths),
            ``"summary"`` (summary.csv), ``"figure1"`` (figure1.png), ``"table1"``
            (table1.md), ``"verdict"`` (verdict.txt).
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
    v = 100.0 * x
    if x < 1.0 and v >= 99.95:
        return "99.9%"
    s = f"{v:.1f}".rstrip("0").rstrip(".")
    return s + "%"


def _pick(descs: list[dict[str, Any]], variant: str) -> list[dict[str, Any]]:
    return [d for d in descs if d["variant"] == variant and not d["weight_decay"] and d["augment"] is None]


def _mean(xs: Iterable[float | None]) -> float:
    vals = [float(x) for x in xs if x is not None and not math.isnan(float(x))]
    return sum(vals) / len(vals) if vals else math.nan


def _fit_steps(ds: list[dict[str, Any]]) -> float:
    """Mean steps to fit over runs, NaN unless every run fitted."""
    if not ds or any(d["steps_to_fit"] is None for d in ds):
        return math.nan
    return _mean(d["steps_to_fit"] for d in ds)


def verdict(results: Iterable[Result], *, chance_tolerance: float = 0.05) -> str:
    """One or two sentences that answer the randomization test, computed from ``results``.

    Uses runs without weight decay or augmentation: true labels and random labels (means
    over seeds), and the pixel variants when present. For example: "MLP 1x512 on digits
    fits random labels to 100% train accuracy in 2.1x the steps of true labels; test
    accuracy falls from 97% to 10% (chance: 10%). ..."

    Raises:
        ValueError: no true-label or no random-label run among the results.
    """
    results = [r for r in results if r.history]
    descs = [plots.describe(r) for r in results]
    true, rand = _pick(descs, "true"), _pick(descs, "random_labels")
    if not true or not rand:
        missing = "true-label" if not true else "random-label"
        raise ValueError(f"verdict: no {missing} run (without weight decay or augmentation) among the results")
    models = sorted({plots._model_label(d["model"]) for d in true + rand})
    datasets = sorted({str(d["dataset"]) for d in true + rand})
    who = f"{' / '.join(models)} on {' / '.join(datasets)}"
    chance = _mean(d["chance"] for d in rand)
    t_test, r_test = _mean(d["test_acc"] for d in true), _mean(d["test_acc"] for d in rand)
    r_train = _mean(d["train_acc"] for d in rand)
    t_steps, r_steps = _fit_steps(true), _fit_steps(rand)
    near_chance = not math.isnan(chance) and abs(r_test - chance) <= chance_tolerance
    chance_txt = f"chance: {_pct(chance)}" if not math.isnan(chance) else "chance unknown"
    falls = f"test accuracy falls from {_pct(t_test)} to {_pct(r_test)} ({chance_txt})"
    target = _mean(r.config.get("stop_at_train_acc", 1.0) for r in results if r.config.get("stop_at_train_acc") is not None)
    target = 1.0 if math.isnan(target) else target
    if not math.isnan(r_steps):
        if not math.isnan(t_steps) and t_steps > 0:
            how = f"in {r_steps / t_steps:.1f}x the steps of true labels ({r_steps:,.0f} vs {t_steps:,.0f})"
        else:
            how = f"in {r_steps:,.0f} steps (true labels did not reach the target)"
        first = f"{who} fits random labels to {_pct(r_train)} train accuracy {how}; {falls}."
        extra = []
        for v in ("shuffled_pixels", "random_pixels", "gaussian"):
            s = _fit_steps(_pick(descs, v))
            if not math.isnan(s) and not math.isnan(t_steps) and t_steps > 0:
                extra.append(f"{plots.VARIANTS[v]} {s / t_steps:.1f}x")
        second = (
            "It can memorize the training set, so its accuracy on true labels is not explained by a "
            "capacity too small to fit noise"
        )
        if not near_chance:
            second += f" (note: random-label test accuracy is more than {_pct(chance_tolerance)} from chance)"
        if extra:
            second += "; steps to fit relative to true labels: " + ", ".join(extra)
        return f"{first} {second}."
    epochs = max(d["epochs"] for d in rand)
    first = (
        f"{who} does not fit random labels to {_pct(target)} train accuracy within {epochs} epochs "
        f"(it reaches {_pct(r_train)}); {falls}."
    )
    second = "Within this budget the randomization test does not show that it can memorize the training set."
    return f"{first} {second}"


# ----------------------------------------------------------------------------- summary.csv


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if math.isnan(v) else repr(v)
    return v


def write_summary_csv(results: Iterable[Result], path: str | os.PathLike) -> Path:
    """One row per result with the columns of :data:`SUMMARY_COLUMNS` (final epoch), atomically.

    Accuracies are fractions in [0, 1]; empty cells mean "none" (e.g. a run that did not fit).
    """
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(SUMMARY_COLUMNS)
    for r in results:
        d = plots.describe(r)
        w.writerow([_csv_value(d[c]) for c in SUMMARY_COLUMNS])
    path = Path(path)
    atomic_write_text(path, buf.getvalue())
    return path


# ----------------------------------------------------------------------------- the job


def _corruption_string(c: Any) -> str:
    """Normalize a corruption spec ("true" -> "none") through rethink.Corruption when present."""
    if isinstance(c, str) and c.strip().lower() in ("true", "true_labels", "none", ""):
        return "none"
    try:
        from .corruption import Corruption  # data path
    except ImportError:
        Corruption = None
    if Corruption is not None:
        return str(Corruption.parse(c))
    return str(c)


def _label_noise_string(level: Any) -> str:
    try:
        p = float(level)
    except (TypeError, ValueError):
        p = math.nan
    if isinstance(level, bool) or math.isnan(p) or not 0.0 <= p <= 1.0:
        raise ValueError(f"label noise level {level!r} is not a probability in [0, 1]")
    if p == 0.0:
        return "none"
    if p == 1.0:
        return "random_labels"
    return _corruption_string(f"labels:{p:g}")


@dataclass(frozen=True)
class PlannedRun:
    corruption: str
    seed: int
    weight_decay: float
    augment: str | None
    purpose: str  # "variant", "label_noise" or "grid"


def plan_runs(
    corruptions: Sequence[Any] = DEFAULT_CORRUPTIONS,
    label_noise: Sequence[float] = DEFAULT_LABEL_NOISE,
    seeds: Sequence[int] = (0,),
    *,
    weight_decay: float = 0.0,
    augment: str | None = None,
    grid: bool = True,
    grid_weight_decay: float = DEFAULT_GRID_WEIGHT_DECAY,
    grid_augment: str | None = DEFAULT_GRID_AUGMENT,
) -> list[PlannedRun]:
    """The runs of a randomization test, without duplicates.

    Label-noise level 0 is the true-label run and level 1 the random-label run (the same
    runs as the variants of those names). With ``grid``, true labels are also trained
    with weight decay ``grid_weight_decay``, with augmentation ``grid_augment``, and with
    both (Table 1's columns); a None/0 value drops the runs that need it.

    Raises:
        ValueError: a label-noise level outside [0, 1], an empty seed list or a bad seed.
    """
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds is empty: give at least one seed")
    for s in seeds:
        if not isinstance(s, int) or isinstance(s, bool) or s < 0:
            raise ValueError(f"seed {s!r} is not a non-negative integer")
    base_aug = None if plots._no_aug(augment) else augment
    runs: list[PlannedRun] = []
    seen: set[tuple] = set()

    def add(c: str, seed: int, wd: float, aug: str | None, purpose: str) -> None:
        key = (c, seed, float(wd), aug)
        if key not in seen:
            seen.add(key)
            runs.append(PlannedRun(c, seed, float(wd), aug, purpose))

    noise = [_label_noise_string(p) for p in label_noise]
    variants = [_corruption_string(c) for c in corruptions]
    for seed in seeds:
        for c in variants:
            add(c, seed, weight_decay, base_aug, "variant")
        for c in noise:
            add(c, seed, weight_decay, base_aug, "label_noise")
        if grid:
            g_aug = None if plots._no_aug(grid_augment) else grid_augment
            g_wd = float(grid_weight_decay or 0.0)
            combos = []
            if g_wd:
                combos.append((g_wd, base_aug))
            if g_aug:
                combos.append((weight_decay, g_aug))
            if g_wd and g_aug:
                combos.append((g_wd, g_aug))
            for wd, aug in combos:
                add("none", seed, wd, aug, "grid")
    return runs


def _load_completed(path: Path) -> Result | None:
    if not path.exists():
        return None
    try:
        r = Result.load(path)
    except (ValueError, OSError):
        return None
    return r if r.status == "completed" else None


def randomization_test(
    model: str = "mlp1x512",
    dataset: str = "digits",
    *,
    root: str | os.PathLike | None = None,
    corruptions: Sequence[Any] = DEFAULT_CORRUPTIONS,
    label_noise: Sequence[float] = DEFAULT_LABEL_NOISE,
    seeds: Sequence[int] = (0,),
    out_dir: str | os.PathLike = "results",
    device: str = "auto",
    resume: bool = False,
    progress: bool = True,
    grid: bool = True,
    grid_weight_decay: float = DEFAULT_GRID_WEIGHT_DECAY,
    grid_augment: str | None = DEFAULT_GRID_AUGMENT,
    **fit_kwargs: Any,
) -> RandomizationTestReport:
    """Run the paper's randomization test on ``model`` and ``dataset`` and write its report.

    Trains with :func:`rethink.fit_random` (paper settings unless ``fit_kwargs`` say
    otherwise) every run of :func:`plan_runs`: the variants in ``corruptions``, the
    label-noise levels in ``label_noise`` and, with ``grid``, true labels with weight
    decay and/or augmentation, for every seed. Then writes into ``out_dir``:
    ``<run_name>.json`` per run (and the engine's weights file), ``summary.csv``,
    ``figure1.png``, ``table1.md`` and ``verdict.txt``.

    Args:
        model, dataset, root, device: as for :func:`rethink.fit_random`.
        corruptions: corruption specs (``"none"``/``"true"``, ``"random_labels"``,
            ``"shuffled_pixels"``, ``"random_pixels"``, ``"gaussian"``, ``"labels:0.4"``...).
        label_noise: label-corruption probabilities for Figure 1 (b), (c).
        seeds: one full set of runs per seed.
        out_dir: folder for every file (created).
        resume: skip runs whose result JSON in ``out_dir`` is complete, and let
            interrupted runs continue from their checkpoint.
        progress: one progress bar per run and an overall one (tqdm, on stderr).
        grid, grid_weight_decay, grid_augment: the Table 1 regularizer runs.
        **fit_kwargs: passed to every :func:`rethink.fit_random` call (lr, batch_size,
            max_epochs, ...). ``weight_decay``/``augment`` here apply to the variant and
            label-noise runs too (the paper uses neither).

    Returns:
        A :class:`RandomizationTestReport` (results, paths, verdict, table).

    Raises:
        ValueError: bad corruption, label-noise level or seed (before anything runs).
        Whatever :func:`rethink.fit_random` raises for bad settings.
    """
    from .train import default_run_name, fit_random  # engine

    for k in ("out_dir", "run_name", "resume", "progress", "corruption", "seed"):
        if k in fit_kwargs:
            raise ValueError(f"randomization_test sets {k!r} itself; do not pass it in fit_kwargs")
    weight_decay = float(fit_kwargs.pop("weight_decay", 0.0) or 0.0)
    augment = fit_kwargs.pop("augment", None)
    plan = plan_runs(
        corruptions,
        label_noise,
        seeds,
        weight_decay=weight_decay,
        augment=augment,
        grid=grid,
        grid_weight_decay=grid_weight_decay,
        grid_augment=grid_augment,
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model_name = model if isinstance(model, str) else type(model).__name__
    dataset_name = dataset if isinstance(dataset, str) else getattr(dataset, "name", type(dataset).__name__)

    overall = None
    if progress:
        from tqdm.auto import tqdm

        overall = tqdm(total=len(plan), desc=f"randomization test {model_name}/{dataset_name}", unit="run", position=0)
    results: list[Result] = []
    json_paths: list[Path] = []
    try:
        for run in plan:
            name = default_run_name(model_name, dataset_name, run.corruption, run.weight_decay, run.augment, run.seed)
            path = out / f"{name}.json"
            done = _load_completed(path) if resume else None
            if done is None:
                if overall is not None:
                    overall.set_postfix_str(name, refresh=True)
                done = fit_random(
                    model,
                    dataset,
                    run.corruption,
                    root=root,
                    weight_decay=run.weight_decay,
                    augment=run.augment,
                    device=device,
                    seed=run.seed,
                    out_dir=out,
                    resume=resume,
                    progress=progress,
                    run_name=name,
                    **fit_kwargs,
                )
                done.model = None  # do not hold every trained network in memory
                done.init_state = None
            results.append(done)
            json_paths.append(path)
            if overall is not None:
                overall.update(1)
    finally:
        if overall is not None:
            overall.close()

    table = plots.table1(results)
    try:
        text = verdict(results)
    except ValueError as e:
        text = f"No verdict: {e}."
    paths: dict[str, Any] = {"out_dir": out, "results": json_paths}
    paths["summary"] = write_summary_csv(results, out / "summary.csv")
    paths["figure1"] = plots.figure1(results, out / "figure1.png", model=model_name, title=f"{plots._model_label(model_name)} on {dataset_name}")
    paths["table1"] = out / "table1.md"
    atomic_write_text(paths["table1"], f"# Table 1: {plots._model_label(model_name)} on {dataset_name}\n\n" + table)
    paths["verdict"] = out / "verdict.txt"
    atomic_write_text(paths["verdict"], text + "\n")
    return RandomizationTestReport(results=results, paths=paths, verdict=text, table=table)


# ----------------------------------------------------------------------------- CLI


def _split_list(text: str, what: str) -> list[str]:
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise ValueError(f"--{what}: empty list {text!r}")
    return items


def _floats(text: str, what: str) -> list[float]:
    out = []
    for t in _split_list(text, what):
        try:
            out.append(float(t))
        except ValueError:
            raise ValueError(f"--{what}: {t!r} is not a number") from None
    return out


def _ints(text: str, what: str) -> list[int]:
    out = []
    for t in _split_list(text, what):
        try:
            out.append(int(t))
        except ValueError:
            raise ValueError(f"--{what}: {t!r} is not an integer") from None
    return out


def add_cli(subparsers) -> None:
    """Add ``rethink randomization-test`` to an argparse subparsers object."""
    p = subparsers.add_parser(
        "randomization-test",
        help="run the paper's randomization test (Figure 1, Table 1) on a model and a dataset",
        description=(
            "Train a model on true labels, random labels, shuffled pixels, random pixels and "
            "Gaussian inputs, on a label-noise sweep and on the Table 1 regularizer grid; write "
            "every result, summary.csv, figure1.png, table1.md and a verdict into --out."
        ),
    )
    p.add_argument("--model", default="mlp1x512", help="model name (default: mlp1x512)")
    p.add_argument("--dataset", default="digits", help="dataset name (default: digits, embedded)")
    p.add_argument("--root", default=None, help="folder holding the dataset files (cifar10, mnist, ...)")
    p.add_argument(
        "--corruptions",
        default="true,random_labels,shuffled_pixels,random_pixels,gaussian",
        help="comma-separated variants (default: the paper's five)",
    )
    p.add_argument("--label-noise", default="0,0.2,0.4,0.6,0.8,1.0", help="comma-separated label-corruption levels")
    p.add_argument("--seeds", default="0", help="comma-separated seeds (default: 0)")
    p.add_argument("--out", default="results", help="output folder (default: results/)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--resume", action="store_true", help="skip finished runs, continue interrupted ones")
    p.add_argument("--max-epochs", type=int, default=None, help="epoch budget per run (default: the engine's)")
    p.add_argument("--batch-size", type=int, default=None, help="batch size (default: 128)")
    p.add_argument("--lr", type=float, default=None, help="initial learning rate (default: the paper's for the model)")
    p.add_argument("--no-grid", action="store_true", help="skip the Table 1 weight decay / augmentation runs")
    p.add_argument("--grid-weight-decay", type=float, default=DEFAULT_GRID_WEIGHT_DECAY, help="weight decay of the grid runs")
    p.add_argument("--grid-augment", default=DEFAULT_GRID_AUGMENT, help="augmentation of the grid runs ('none' to skip)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's; 1 is fastest on a busy small machine)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cli_main)


def _cli_main(args) -> int:
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    kwargs: dict[str, Any] = {}
    if args.max_epochs is not None:
        kwargs["max_epochs"] = args.max_epochs
    if args.batch_size is not None:
        kwargs["batch_size"] = args.batch_size
    if args.lr is not None:
        kwargs["lr"] = args.lr
    report = randomization_test(
        args.model,
        args.dataset,
        root=args.root,
        corruptions=_split_list(args.corruptions, "corruptions"),
        label_noise=_floats(args.label_noise, "label-noise"),
        seeds=_ints(args.seeds, "seeds"),
        out_dir=args.out,
        device=args.device,
        resume=args.resume,
        progress=not args.no_progress,
        grid=not args.no_grid,
        grid_weight_decay=args.grid_weight_decay,
        grid_augment=None if plots._no_aug(args.grid_augment) else args.grid_augment,
        **kwargs,
    )
    out = sys.stdout
    out.write(report.table)
    out.write("\n" + report.verdict + "\n\n")
    out.write(
        f"wrote {len(report.results)} results, {report.paths['summary']}, {report.paths['figure1']}, "
        f"{report.paths['table1']} and {report.paths['verdict']}\n"
    )
    return 0
