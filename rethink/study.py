"""The study: rank complexity measures by how well they predict the generalization gap
over many runs (Jiang et al. 2020, "Fantastic generalization measures and where to find
them"; Dziugaite et al. 2020, "In search of robust measures of generalization").

The measures themselves live in :mod:`rethink.measures`; this module scores them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .measures import DOCS, GROUPS, MEASURES, compute

#: Result.config keys that can be the hyper-parameters of a sweep (those that vary are used).
HYPERPARAMETERS = ("model", "dataset", "corruption", "weight_decay", "augment", "crop", "lr", "momentum",
                   "batch_size", "max_epochs", "stop_at_train_acc", "normalize", "lr_decay", "seed")


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's tau-b between two sequences, over the positions where both are finite (and
    +-inf counts as ordered). ``(P - Q) / sqrt((P + Q + T_a) (P + Q + T_b))`` with P concordant,
    Q discordant pairs, T_a pairs tied only in a, T_b tied only in b. NaN with fewer than 2
    usable positions or when either side is constant."""
    x = torch.tensor([float(v) for v in a], dtype=torch.float64)
    y = torch.tensor([float(v) for v in b], dtype=torch.float64)
    ok = ~(torch.isnan(x) | torch.isnan(y))
    x, y = x[ok], y[ok]
    if len(x) < 2:
        return math.nan
    dx = torch.sign(x[:, None] - x[None, :])
    dy = torch.sign(y[:, None] - y[None, :])
    iu = torch.triu_indices(len(x), len(x), 1)
    dx, dy = dx[iu[0], iu[1]], dy[iu[0], iu[1]]
    s = float((dx * dy).sum())
    nx, ny = float((dx != 0).sum()), float((dy != 0).sum())
    if nx == 0 or ny == 0:
        return math.nan
    return s / math.sqrt(nx * ny)


def _hp_value(cfg: dict, key: str):
    v = cfg.get(key)
    return tuple(v) if isinstance(v, list) else v


def granulated_tau(values: Sequence[float], gaps: Sequence[float], configs: Sequence[dict],
                   hyperparameters: Sequence[str]) -> tuple[float, dict[str, float]]:
    """Jiang et al.'s granulated Kendall coefficient. For each hyper-parameter h, runs are grouped
    by the values of all the other hyper-parameters; ``psi_h`` is the mean of :func:`kendall_tau`
    over the groups with at least two runs (that differ only in h); the result is
    ``(mean over h of psi_h, {h: psi_h})`` (NaN where no group has two comparable runs)."""
    per: dict[str, float] = {}
    for h in hyperparameters:
        others = [k for k in hyperparameters if k != h]
        groups: dict[tuple, list[int]] = {}
        for i, cfg in enumerate(configs):
            groups.setdefault(tuple(repr(_hp_value(cfg, k)) for k in others), []).append(i)
        taus = [kendall_tau([values[i] for i in idx], [gaps[i] for i in idx]) for idx in groups.values() if len(idx) > 1]
        taus = [t for t in taus if not math.isnan(t)]
        per[h] = sum(taus) / len(taus) if taus else math.nan
    valid = [v for v in per.values() if not math.isnan(v)]
    return (sum(valid) / len(valid) if valid else math.nan), per


class StudyReport:
    """What :func:`study` produced: ``rows`` (one dict per run: run_name, hyper-parameters,
    train_acc, test_acc, gap and every measure), ``ranking`` (one dict per measure: measure,
    tau, granulated, per-hyper-parameter psi, seconds per run), ``hyperparameters`` (the
    config keys that vary), ``seconds`` (group -> total seconds), ``skipped`` (run -> reason),
    ``paths`` (csv, md, png)."""

    def __init__(self, rows, ranking, hyperparameters, seconds, skipped, paths):
        self.rows, self.ranking, self.hyperparameters = rows, ranking, hyperparameters
        self.seconds, self.skipped, self.paths = seconds, skipped, paths

    def __repr__(self) -> str:
        return f"StudyReport({len(self.rows)} runs, {len(self.ranking)} measures, paths={self.paths})"


def _load_runs(results_or_dir):
    import os
    from pathlib import Path

    from .results import Result

    if isinstance(results_or_dir, (str, os.PathLike)):
        d = Path(results_or_dir)
        if not d.is_dir():
            raise ValueError(f"{d} is not a directory of results")
        runs = []
        for p in sorted(d.glob("*.json")):
            try:
                runs.append((Result.load(p), str(p)))
            except (ValueError, KeyError):
                continue  # not a result file
        return runs, d
    runs = []
    for r in results_or_dir:
        if isinstance(r, Result):
            runs.append((r, None))
        elif isinstance(r, (str, os.PathLike)):
            runs.append((Result.load(r), str(r)))
        else:
            raise TypeError(f"expected Results or result paths, got {type(r).__name__}")
    return runs, None


def study(results_or_dir, out_dir=None, *, measures="all", device="auto", seed=0, dataset=None,
          progress: bool = False, **compute_kwargs) -> StudyReport:
    """Rank complexity measures by how well they predict the generalization gap across runs.

    For every completed run (a directory of result JSONs written by ``fit_random``/``sweep``,
    or a list of Results / result paths), computes :func:`compute` and the gap
    ``train_acc - test_acc`` of the last epoch. Then, per measure, Kendall's tau with the gap
    over all runs and the granulated tau (:func:`granulated_tau`) over the config keys in
    :data:`HYPERPARAMETERS` that vary. Writes into ``out_dir`` (default: the results directory):
    ``measures.csv`` (one row per run), ``measures.md`` (the ranking and the time per measure)
    and ``measures.png`` (each measure against the gap).

    ``dataset``: optional training data instead of the dataset named in each run's config:
    a Dataset (the run's corruption is applied), an ``(x, y)`` pair used as is, or a callable
    ``result -> either``. Other keyword arguments go to :func:`compute`.

    Raises:
        ValueError: no results, no completed run, or a list given without ``out_dir``.
    """
    import csv
    from pathlib import Path

    from ._io import atomic_write_text

    runs, d = _load_runs(results_or_dir)
    if out_dir is None:
        if d is None:
            raise ValueError("study of a list of results needs out_dir")
        out_dir = d
    out_dir = Path(out_dir)
    if not runs:
        raise ValueError(f"no results found in {results_or_dir}")
    rows, skipped, configs = [], {}, []
    seconds: dict[str, float] = {}
    it = runs
    if progress:
        from tqdm import tqdm

        it = tqdm(runs, desc="measures")
    for res, path in it:
        name = res.config.get("run_name") or (Path(path).stem if path else f"run{len(rows) + len(skipped)}")
        if res.status != "completed" or not res.history:
            skipped[name] = f"status {res.status}" + (f": {res.error}" if res.error else "")
            continue
        data = dataset(res) if callable(dataset) else dataset
        target = res if (res.model is not None or path is None) else path
        try:
            m = compute(target, data, measures=measures, device=device, seed=seed, **compute_kwargs)
        except (ValueError, RuntimeError, FileNotFoundError) as e:
            skipped[name] = f"{type(e).__name__}: {e}"
            continue
        fin = res.final
        row = {"run_name": name}
        row.update({k: _hp_value(res.config, k) for k in HYPERPARAMETERS})
        row.update({"train_acc": fin.get("train_acc"), "test_acc": fin.get("test_acc"), "gap": fin.get("gap")})
        row.update(m)
        rows.append(row)
        configs.append(res.config)
        for g, s in m.seconds.items():
            seconds[g] = seconds.get(g, 0.0) + s
    if not rows:
        raise ValueError(f"no completed run could be measured ({len(skipped)} skipped: {skipped})")
    names = [k for k in MEASURES if k in rows[0]]
    hps = [h for h in HYPERPARAMETERS if len({repr(_hp_value(c, h)) for c in configs}) > 1]
    gaps = [r["gap"] for r in rows]
    group_of = {m: g for g, ms in GROUPS.items() for m in ms}
    ranking = []
    for k in names:
        vals = [r[k] for r in rows]
        gran, per = granulated_tau(vals, gaps, configs, hps)
        finite = sum(1 for v in vals if not math.isnan(v))
        ranking.append({"measure": k, "tau": kendall_tau(vals, gaps), "granulated": gran, "runs": finite,
                        **{f"psi_{h}": per[h] for h in hps},
                        "seconds_per_run": seconds.get(group_of[k], 0.0) / len(rows)})
    ranking.sort(key=lambda r: -abs(r["tau"]) if not math.isnan(r["tau"]) else math.inf)

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out_dir / "measures.csv", "md": out_dir / "measures.md", "png": out_dir / "measures.png"}
    import io

    buf = io.StringIO()
    cols = ["run_name", *HYPERPARAMETERS, "train_acc", "test_acc", "gap", *names]
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({c: r.get(c) for c in cols})
    atomic_write_text(paths["csv"], buf.getvalue())
    atomic_write_text(paths["md"], _markdown(rows, ranking, hps, seconds, skipped))
    _plot(rows, names, paths["png"])
    return StudyReport(rows, ranking, hps, seconds, skipped, {k: str(v) for k, v in paths.items()})


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if isinstance(v, float):
        return f"{v:+.3f}" if abs(v) <= 1 else f"{v:.4g}"
    return str(v)


def _markdown(rows, ranking, hps, seconds, skipped) -> str:
    n = len(rows)
    gaps = [r["gap"] for r in rows]
    lines = [
        "# Complexity measures against the generalization gap",
        "",
        f"{n} runs; gap = train accuracy - test accuracy (from {min(gaps):.3f} to {max(gaps):.3f}). "
        f"Hyper-parameters that vary: {', '.join(hps) if hps else 'none'}.",
        "tau: Kendall's tau-b between the measure and the gap over all runs (+1: the measure orders the "
        "runs exactly as their gaps). Granulated: Jiang et al.'s average of tau within groups of runs that "
        "differ in one hyper-parameter (psi_h per hyper-parameter h). Margin, sigma and alpha are expected "
        "to fall as the gap grows (negative tau). runs: runs where the measure is defined (not NaN).",
        "",
        "| rank | measure | tau | granulated | " + " | ".join(f"psi {h}" for h in hps) + (" | " if hps else "")
        + "runs | s / run | definition |",
        "| --- | --- | --- | --- | " + "--- | " * len(hps) + "--- | --- | --- |",
    ]
    for i, r in enumerate(ranking, 1):
        cells = [str(i), r["measure"], _fmt(r["tau"]), _fmt(r["granulated"]), *(_fmt(r[f"psi_{h}"]) for h in hps),
                 str(r["runs"]), f"{r['seconds_per_run']:.3g}", DOCS.get(r["measure"], "").replace("|", "\\|")]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Time per measure group", "", "| group | total s | s / run |", "| --- | --- | --- |"]
    for g, s in sorted(seconds.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {g} | {s:.3g} | {s / n:.3g} |")
    if skipped:
        lines += ["", "## Runs not measured", ""] + [f"- {k}: {v}" for k, v in skipped.items()]
    return "\n".join(lines) + "\n"


def _plot(rows, names, path) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ._io import atomic_write_bytes

    cols = 6
    nr = max(1, math.ceil(len(names) / cols))
    fig, axes = plt.subplots(nr, cols, figsize=(3 * cols, 2.6 * nr), squeeze=False)
    gaps = [r["gap"] for r in rows]
    kinds = sorted({str(r.get("corruption")) for r in rows})
    colors = {k: plt.cm.tab10(i % 10) for i, k in enumerate(kinds)}
    for ax, k in zip(axes.flat, names):
        for kind in kinds:
            pts = [(r[k], r["gap"]) for r in rows if str(r.get("corruption")) == kind and math.isfinite(r[k])]
            if pts:
                ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=12, color=colors[kind], label=kind)
        tau = kendall_tau([r[k] for r in rows], gaps)
        ax.set_title(f"{k}\ntau={tau:+.2f}" if not math.isnan(tau) else k, fontsize=8)
        ax.tick_params(labelsize=6)
        ax.set_ylabel("gap", fontsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    if len(kinds) > 1:
        axes.flat[0].legend(fontsize=6)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())



def add_cli(subparsers) -> None:
    """Register ``rethink measures DIR``."""
    p = subparsers.add_parser("measures", help="rank complexity measures by how well they predict the generalization gap",
                              description="Compute complexity measures for every run in a results directory and rank "
                              "them by Kendall's tau with the generalization gap; writes measures.csv, measures.md "
                              "and measures.png.")
    p.add_argument("results", help="directory of result JSONs (from fit-random or sweep)")
    p.add_argument("--out", default=None, help="output directory (default: the results directory)")
    p.add_argument("--measures", default="all", help="comma-separated measure or group names (default: all)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--samples", type=int, default=8, help="Monte-Carlo draws per PAC-Bayes evaluation")
    p.add_argument("--max-examples", type=int, default=2048, help="training examples for PAC-Bayes and sharpness")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cli)


def _cli(args) -> int:
    import sys

    sel = "all" if args.measures == "all" else [s.strip() for s in args.measures.split(",") if s.strip()]
    rep = study(args.results, args.out, measures=sel, device=args.device, seed=args.seed, samples=args.samples,
                max_examples=args.max_examples, progress=not args.no_progress)
    print(f"measured {len(rep.rows)} runs ({len(rep.skipped)} skipped); ranking in {rep.paths['md']}", file=sys.stderr)
    for r in rep.ranking[:5]:
        print(f"{r['measure']:28s} tau={_fmt(r['tau'])} granulated={_fmt(r['granulated'])}")
    return 0
