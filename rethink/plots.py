"""Figures 1 and 2 and Table 1 of Zhang et al. (2017), drawn from any set of :class:`rethink.Result`.

- :func:`figure1`: (a) training loss against thousands of SGD steps for the five variants
  (true labels, random labels, shuffled pixels, random pixels, Gaussian), (b) steps to fit
  relative to true labels against the label-corruption level, (c) test error against it.
- :func:`figure2`: learning curves (test accuracy per epoch) with and without
  regularizers, with the gain early stopping could give shaded, and small Inception with
  and without batch norm.
- :func:`table1`: the paper's Table 1 as markdown (train/test accuracy with and without
  augmentation and weight decay, then the randomized variants), and below it the
  randomized runs trained with regularizers (the paper's Appendix E).

With several seeds, values are means and the spread (sample standard deviation over
seeds) is drawn as bands / error bars and written after a cell's value. Everything takes
results only (plain data, e.g. from ``rethink.load_runs(folder)``), so it works on runs
made anywhere. Plotting uses matplotlib's headless Agg canvas and never opens a window.
A PNG written by :func:`figure1` or :func:`figure2` carries the plotted numbers as JSON in
a text chunk; :func:`read_figure_data` reads them back.
"""

from __future__ import annotations

import io
import json
import math
import os
import statistics
import struct
import zlib
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ._io import atomic_write_bytes
from .paper import MODEL_NAMES
from .results import Result

__all__ = ["VARIANTS", "figure1", "figure1_data", "figure2", "figure2_data", "read_figure_data", "table1",
           "table1_cells", "model_label", "mean_spread"]

#: The five variants of the randomization test, in the paper's order, with display names.
VARIANTS = {"true": "true labels", "random_labels": "random labels", "shuffled_pixels": "shuffled pixels",
            "random_pixels": "random pixels", "gaussian": "Gaussian"}
_STYLE = {"true": ("tab:blue", "-", "o"), "random_labels": ("tab:red", "-", "s"),
          "shuffled_pixels": ("tab:green", "--", "^"), "random_pixels": ("tab:purple", "-.", "D"),
          "gaussian": ("tab:orange", ":", "v")}
PNG_DATA_KEY = "rethink:figure1"
PNG_DATA_KEY2 = "rethink:figure2"


def model_label(name: Any) -> str:
    """The paper's display name of a model ("MLP 1x512"), else the name itself."""
    return MODEL_NAMES.get(str(name), str(name))


def mean_spread(values: Iterable[float | None]) -> tuple[float, float, int]:
    """(mean, sample standard deviation, count) of the finite values; spread 0 for one value,
    NaN for none."""
    v = [float(x) for x in values if x is not None and not math.isnan(float(x))]
    if not v:
        return math.nan, math.nan, 0
    return sum(v) / len(v), (statistics.stdev(v) if len(v) > 1 else 0.0), len(v)


def _check_results(results: Iterable[Result], where: str) -> list[Result]:
    out = [results] if isinstance(results, Result) else list(results)
    for r in out:
        if not isinstance(r, Result):
            raise TypeError(f"{where}: expected rethink.Result objects, got {type(r).__name__}")
    return out


def _plain(d: dict[str, Any]) -> bool:
    """No weight decay, no augmentation, no dropout: the settings of the randomization test."""
    return not d["weight_decay"] and d["augment"] is None and not d["dropout"]


def _key(d: dict[str, Any], multi_dataset: bool) -> str:
    label = model_label(d["model"])
    return f"{label} ({d['dataset']})" if multi_dataset else label


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return None if math.isnan(obj) or math.isinf(obj) else obj
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def _save(fig, path: Path, key: str, data: dict) -> Path:
    fmt = path.suffix.lstrip(".").lower() or "png"
    buf = io.BytesIO()
    kwargs: dict[str, Any] = {"format": fmt}
    if fmt == "png":
        kwargs["metadata"] = {key: json.dumps(_json_safe(data), separators=(",", ":"))}
    fig.savefig(buf, **kwargs)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _figure(width: float, height: float, panels: int, dpi: int):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(1, panels)


# ----------------------------------------------------------------------------- Figure 1


def _loss_curve(r: Result) -> tuple[list[int], list[float], str]:
    """(steps, losses, source): the windowed SGD loss when recorded, else the per-epoch loss
    on the training set (results of rethink 0.1)."""
    if r.loss_log:
        return [int(s) for s, _ in r.loss_log], [float(v) for _, v in r.loss_log], "sgd"
    return [int(h["step"]) for h in r.history], [float(h["train_loss"]) for h in r.history], "epoch"


def _average_curves(curves: list[tuple[list[int], list[float]]]) -> dict[str, list]:
    """Mean and spread over seeds at every step that at least one seed reached."""
    by_step: dict[int, list[float]] = defaultdict(list)
    for steps, losses in curves:
        for s, v in zip(steps, losses):
            by_step[s].append(v)
    steps = sorted(by_step)
    stats = [mean_spread(by_step[s]) for s in steps]
    return {"step": steps, "train_loss": [m for m, _, _ in stats], "spread": [sd for _, sd, _ in stats],
            "seeds": [n for _, _, n in stats]}


def figure1_data(results: Iterable[Result], model: str | None = None) -> dict[str, Any]:
    """The numbers :func:`figure1` plots, as plain data.

    Only runs without weight decay, augmentation or dropout are used (the paper's settings
    for the randomization test).

    Returns a dict with
      - ``"a"``: {"model": label, "source": "sgd" (windowed minibatch loss) or "epoch",
        "curves": {variant: [{"seed", "step": [...], "train_loss": [...]}]}, "mean":
        {variant: {"step", "train_loss", "spread", "seeds"}}} for ``model`` (default: the
        first model with a variant run);
      - ``"b"``: {model: {"label_noise", "steps_to_fit", "relative", "relative_spread",
        "seeds"}}: ``relative`` is the mean over seeds of steps_to_fit / steps_to_fit of the
        same seed's true-label run (NaN where a run did not fit);
      - ``"c"``: {model: {"label_noise", "test_error", "spread", "seeds"}}.

    Raises:
        TypeError: an element is not a Result. ValueError: ``model`` has no run.
    """
    results = _check_results(results, "figure1_data")
    descs = [(r, r.summary()) for r in results if r.history]
    descs = [(r, d) for r, d in descs if _plain(d)]
    multi = len({d["dataset"] for _, d in descs}) > 1
    # a model with only label-noise runs has panels (b) and (c); panel (a) then says it has no data
    order = [d["model"] for _, d in descs if d["variant"] in VARIANTS] + [d["model"] for _, d in descs]
    models = list(dict.fromkeys(order))
    if model is None:
        model = models[0] if models else None
    elif model_label(model) not in {model_label(m) for m in models}:
        raise ValueError(f"figure1: no run of model {model!r} among the results (have {models})")
    curves: dict[str, list] = defaultdict(list)
    source = "sgd"
    for r, d in descs:
        if d["variant"] in VARIANTS and model_label(d["model"]) == model_label(model):
            steps, losses, src = _loss_curve(r)
            source = src if src == "epoch" else source
            curves[d["variant"]].append({"seed": d["seed"], "dataset": d["dataset"], "step": steps,
                                         "train_loss": losses})
    curves = {v: curves[v] for v in VARIANTS if v in curves}
    mean = {v: _average_curves([(c["step"], c["train_loss"]) for c in cs]) for v, cs in curves.items()}

    cells: dict[str, dict[float, list]] = defaultdict(lambda: defaultdict(list))
    true_fit: dict[tuple, float] = {}
    for _, d in descs:
        if d["label_noise"] is None:
            continue
        fit = math.nan if d["steps_to_fit"] is None else float(d["steps_to_fit"])
        cells[_key(d, multi)][float(d["label_noise"])].append((d["seed"], fit, 1.0 - d["test_acc"]))
        if d["label_noise"] == 0.0:
            true_fit[(_key(d, multi), d["seed"])] = fit
    b, c = {}, {}
    for key, levels in cells.items():
        ps = sorted(levels)
        fits, rel, rel_sd, errs, err_sd, seeds = [], [], [], [], [], []
        for p in ps:
            runs = levels[p]
            fit_vals = [f for _, f, _ in runs]
            fits.append(mean_spread(fit_vals)[0] if all(not math.isnan(f) for f in fit_vals) else math.nan)
            ratios = [f / true_fit.get((key, s), math.nan) for s, f, _ in runs]
            m, sd, _ = mean_spread(ratios)
            ok = all(not math.isnan(x) for x in ratios)
            rel.append(m if ok else math.nan)
            rel_sd.append(sd if ok else math.nan)
            em, esd, n = mean_spread([e for _, _, e in runs])
            errs.append(em)
            err_sd.append(esd)
            seeds.append(n)
        b[key] = {"label_noise": ps, "steps_to_fit": fits, "relative": rel, "relative_spread": rel_sd, "seeds": seeds}
        c[key] = {"label_noise": ps, "test_error": errs, "spread": err_sd, "seeds": seeds}
    return {"a": {"model": model_label(model) if model is not None else None, "source": source, "curves": curves,
                  "mean": mean}, "b": b, "c": c}


def _coinciding(mean: dict[str, dict]) -> dict[str, str]:
    """variant -> an earlier variant whose mean curve it follows within 1% at every shared step
    (such curves would hide each other)."""
    out = {}
    names = list(mean)
    for i, v in enumerate(names):
        for u in names[:i]:
            a = dict(zip(mean[u]["step"], mean[u]["train_loss"]))
            pts = [(a[s], y) for s, y in zip(mean[v]["step"], mean[v]["train_loss"]) if s in a]
            if pts and all(abs(x - y) <= 0.01 * max(abs(x), 1e-12) for x, y in pts):
                out[v] = u
                break
    return out


def figure1(results: Iterable[Result], path: str | os.PathLike, *, model: str | None = None,
            title: str | None = None, dpi: int = 90) -> Path:
    """Draw the paper's Figure 1 from ``results`` and save it to ``path`` (atomically).

    Panels: (a) training loss against thousands of SGD steps for the five variants of
    ``model`` (the mean minibatch loss per window of steps; mean over seeds with a band of
    one spread); every curve has its own line style and markers, and a curve that
    coincides with another is named in the legend; (b) steps until the run first reached
    its target, relative to the same seed's true-label run, against label corruption
    (error bars: spread over seeds); (c) test error against label corruption (error bars).
    Runs with weight decay, augmentation or dropout are left out. A panel without data says so.

    Args:
        results: rethink.Result objects (e.g. ``rethink.load_runs(folder)``).
        path: output file; the format follows the suffix (``.png``, ``.pdf``, ``.svg``). A
            PNG also carries the plotted numbers (:func:`read_figure_data`).
        model: model name whose curves panel (a) shows. title: figure title. dpi: resolution.

    Raises:
        TypeError: an element of ``results`` is not a Result.
        ValueError: ``model`` has no run among the results.
    """
    data = figure1_data(results, model=model)
    fig, (ax_a, ax_b, ax_c) = _figure(13.5, 3.9, 3, dpi)
    mean = data["a"]["mean"]
    same = _coinciding(mean)
    for k, (variant, m) in enumerate(mean.items()):
        color, ls, marker = _STYLE[variant]
        xs = [s / 1000.0 for s in m["step"]]
        label = VARIANTS[variant] + (f" (= {VARIANTS[same[variant]]})" if variant in same else "")
        ax_a.plot(xs, m["train_loss"], color=color, ls=ls, marker=marker, ms=4, lw=1.6, label=label,
                  markevery=(k, max(1, len(xs) // 8)), fillstyle="none" if variant in same else "full")
        if max(m["seeds"], default=0) > 1:
            lo = [y - s for y, s in zip(m["train_loss"], m["spread"])]
            hi = [y + s for y, s in zip(m["train_loss"], m["spread"])]
            ax_a.fill_between(xs, lo, hi, color=color, alpha=0.15, lw=0)
    ax_a.set_xlabel("thousand steps")
    ax_a.set_ylabel("average training loss" + (" (per epoch)" if data["a"]["source"] == "epoch" else ""))
    ax_a.set_title(f"(a) learning curves{': ' + data['a']['model'] if data['a']['model'] else ''}", fontsize=10)
    if mean:
        ax_a.legend(fontsize=8)
        ax_a.set_ylim(bottom=0)
    else:
        ax_a.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax_a.transAxes)
    markers = "os^Dv<>p*h"
    for i, (key, s) in enumerate(data["b"].items()):
        pts = [(p, r, e) for p, r, e in zip(s["label_noise"], s["relative"], s["relative_spread"]) if not math.isnan(r)]
        if pts:
            ax_b.errorbar([p for p, _, _ in pts], [r for _, r, _ in pts], yerr=[e for _, _, e in pts],
                          marker=markers[i % len(markers)], label=key, lw=1.6, capsize=3)
    missing = [f"{key}: {', '.join(f'{p:g}' for p, r in zip(s['label_noise'], s['relative']) if math.isnan(r))}"
               for key, s in data["b"].items() if any(math.isnan(r) for r in s["relative"])]
    if missing and ax_b.lines:
        ax_b.text(0.02, 0.98, "not drawn (a run did not reach the target):\n" + "\n".join(missing), fontsize=7,
                  va="top", ha="left", transform=ax_b.transAxes)
    ax_b.set_xlabel("label corruption")
    ax_b.set_ylabel("time to overfit (relative to true labels)")
    ax_b.set_title("(b) convergence slowdown", fontsize=10)
    if ax_b.lines:
        ax_b.legend(fontsize=8)
    else:
        ax_b.text(0.5, 0.5, "no label-corruption runs\nthat fitted", ha="center", va="center", transform=ax_b.transAxes)
    for i, (key, s) in enumerate(data["c"].items()):
        pts = [(p, e, sd) for p, e, sd in zip(s["label_noise"], s["test_error"], s["spread"]) if not math.isnan(e)]
        if pts:
            ax_c.errorbar([p for p, _, _ in pts], [e for _, e, _ in pts], yerr=[sd for _, _, sd in pts],
                          marker=markers[i % len(markers)], label=key, lw=1.6, capsize=3)
    ax_c.set_xlabel("label corruption")
    ax_c.set_ylabel("test error")
    ax_c.set_title("(c) generalization error growth", fontsize=10)
    ax_c.set_ylim(0, 1)
    if ax_c.lines:
        ax_c.legend(fontsize=8)
    else:
        ax_c.text(0.5, 0.5, "no label-corruption runs", ha="center", va="center", transform=ax_c.transAxes)
    for ax in (ax_a, ax_b, ax_c):
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _save(fig, Path(path), PNG_DATA_KEY, data)


# ----------------------------------------------------------------------------- Figure 2


def regularizer_label(d: dict[str, Any]) -> str:
    """The regularizers of a run summary (``augment``, ``weight_decay``, ``dropout``), e.g.
    "crop + wd 0.0005", or "no regularizer"."""
    parts = []
    if d["augment"]:
        parts.append(d["augment"])
    if d["weight_decay"]:
        parts.append(f"wd {d['weight_decay']:g}")
    if d["dropout"]:
        parts.append(f"dropout {d['dropout']:g}")
    return " + ".join(parts) or "no regularizer"


def _mean_test_curve(rs: list[Result]) -> dict[str, list]:
    by_epoch: dict[int, list[float]] = defaultdict(list)
    for r in rs:
        for h in r.history:
            by_epoch[int(h["epoch"])].append(float(h["test_acc"]))
    epochs = sorted(by_epoch)
    stats = [mean_spread(by_epoch[e]) for e in epochs]
    acc = [m for m, _, _ in stats]
    best, running = [], -math.inf
    for a in acc:
        running = max(running, a) if not math.isnan(a) else running
        best.append(running if running > -math.inf else math.nan)
    return {"epoch": epochs, "test_acc": acc, "spread": [s for _, s, _ in stats], "best_so_far": best,
            "seeds": len(rs)}


def figure2_data(results: Iterable[Result], model: str | None = None) -> dict[str, Any]:
    """The numbers :func:`figure2` plots: ``{"regularizers": {"model": label, "curves":
    {setting: curve}}, "batch_norm": {label: curve}}`` where a curve is ``{"epoch",
    "test_acc" (mean over seeds), "spread", "best_so_far" (running maximum of the mean),
    "seeds"}``. Only true-label runs are used. ``model`` (default: the first model with
    true-label runs) is the model of the regularizer panel; the batch-norm panel holds the
    unregularized small Inception with and without batch norm, when present."""
    results = _check_results(results, "figure2_data")
    descs = [(r, r.summary()) for r in results if r.history]
    true = [(r, d) for r, d in descs if d["variant"] == "true"]
    models = list(dict.fromkeys(d["model"] for _, d in true))
    if model is None:
        model = models[0] if models else None
    elif model not in models:
        raise ValueError(f"figure2: no true-label run of model {model!r} among the results (have {models})")
    groups: dict[str, list[Result]] = defaultdict(list)
    for r, d in true:
        if d["model"] == model:
            groups[regularizer_label(d)].append(r)
    order = sorted(groups, key=lambda s: (s != "no regularizer", s))
    bn = {}
    for name in ("inception_small", "inception_small_nobn"):
        rs = [r for r, d in true if d["model"] == name and _plain(d)]
        if rs:
            bn[model_label(name)] = _mean_test_curve(rs)
    return {"regularizers": {"model": model_label(model) if model else None,
                             "curves": {s: _mean_test_curve(groups[s]) for s in order}},
            "batch_norm": bn}


def figure2(results: Iterable[Result], path: str | os.PathLike, *, model: str | None = None,
            title: str | None = None, dpi: int = 90) -> Path:
    """Draw the paper's Figure 2 from ``results`` and save it to ``path`` (atomically).

    Left: test accuracy per epoch of ``model`` on true labels, one curve per regularizer
    setting (mean over seeds); the area between a curve and its running maximum is shaded:
    what early stopping at the best epoch could have kept (the paper's indicator). Right:
    small Inception with and without batch norm (true labels, no regularizer); without those
    runs the figure has the left panel only. A PNG carries the plotted numbers (:func:`read_figure_data`).

    Raises:
        TypeError: an element of ``results`` is not a Result.
        ValueError: ``model`` has no true-label run.
    """
    data = figure2_data(results, model=model)
    if data["batch_norm"]:
        fig, (ax_r, ax_b) = _figure(10.5, 3.9, 2, dpi)
    else:  # no empty panel: without small Inception runs the batch-norm comparison is left out
        fig, ax_r = _figure(5.6, 3.9, 1, dpi)
        ax_b = None
    colors = ["tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange", "tab:brown", "tab:pink"]

    styles, markers = ["-", "--", "-.", ":"], "os^Dv<>"

    def draw(ax, curves):  # every curve its own colour, line style and markers: none hides another
        for i, (name, c) in enumerate(curves.items()):
            color = colors[i % len(colors)]
            ax.plot(c["epoch"], c["test_acc"], color=color, lw=1.6, ls=styles[i % len(styles)],
                    marker=markers[i % len(markers)], ms=4, markevery=(i, max(1, len(c["epoch"]) // 8)),
                    fillstyle="none" if i else "full",
                    label=f"{name} (best {max(c['best_so_far']):.3f})" if c["best_so_far"] else name)
            ax.fill_between(c["epoch"], c["test_acc"], c["best_so_far"], color=color, alpha=0.2, lw=0)
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
        if curves:
            ax.legend(fontsize=8)

    draw(ax_r, data["regularizers"]["curves"])
    ax_r.set_title(f"(a) {data['regularizers']['model'] or 'no true-label runs'}: regularizers", fontsize=10)
    if ax_b is not None:
        draw(ax_b, data["batch_norm"])
        ax_b.set_title("(b) small Inception with and without batch norm", fontsize=10)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _save(fig, Path(path), PNG_DATA_KEY2, data)


def read_figure_data(path: str | os.PathLike) -> dict[str, Any]:
    """The numbers a PNG written by :func:`figure1` or :func:`figure2` plots (NaN as None).

    Raises:
        ValueError: the file is not a PNG or carries no rethink figure data.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG file")
    pos = 8
    keys = (PNG_DATA_KEY.encode("latin-1"), PNG_DATA_KEY2.encode("latin-1"))
    while pos + 8 <= len(raw):
        (length,) = struct.unpack(">I", raw[pos:pos + 4])
        ctype, body = raw[pos + 4:pos + 8], raw[pos + 8:pos + 8 + length]
        pos += 12 + length
        k, _, v = body.partition(b"\x00")
        if k in keys and ctype == b"tEXt":
            return json.loads(v.decode("latin-1"))
        if k in keys and ctype == b"zTXt":
            return json.loads(zlib.decompress(v[1:]).decode("latin-1"))
        if k in keys and ctype == b"iTXt":
            compressed, rest = v[0], v[2:]
            _lang, _, rest = rest.partition(b"\x00")
            _tkey, _, text = rest.partition(b"\x00")
            return json.loads((zlib.decompress(text) if compressed else text).decode("utf-8"))
        if ctype == b"IEND":
            break
    raise ValueError(f"{path}: no rethink figure data in this PNG (not written by rethink.plots?)")


# ----------------------------------------------------------------------------- Table 1


def percent(fraction: float, digits: int = 2) -> str:
    """``fraction`` in percent with ``digits`` decimals, rounded, except that a fraction below 1
    never reads as 100 (59,999 of 60,000 training images is ``99.99``, not ``100.00``, which
    would read as fitted): there it is cut, not rounded. The one rule of every accuracy shown."""
    text = f"{100.0 * fraction:.{digits}f}"
    if fraction < 1.0 and float(text) >= 100.0:
        text = f"{math.floor(100.0 * fraction * 10 ** digits) / 10 ** digits:.{digits}f}"
    return text


def _fmt_pct(x: float) -> str:
    return "-" if x is None or math.isnan(x) else percent(x)


def _cell(descs: list[dict[str, Any]]) -> str:
    """``train/test`` in percent, means over seeds; ``± spread`` of the test accuracy with
    several seeds; ``*`` when a run did not complete; ``-`` without runs."""
    if not descs:
        return "-"
    tr, _, _ = mean_spread(d["train_acc"] for d in descs)
    te, sd, n = mean_spread(d["test_acc"] for d in descs)
    mark = "" if all(d["status"] == "completed" for d in descs) else "*"
    spread = f" ± {100.0 * sd:.2f}" if n > 1 else ""
    return f"{_fmt_pct(tr)}/{_fmt_pct(te)}{spread}{mark}"


def table1_cells(results: Iterable[Result]) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """The header and rows of :func:`table1`'s first table: (column names, [(row label, cells)])."""
    results = _check_results(results, "table1")
    descs = [r.summary() for r in results if r.history]
    multi = len({d["dataset"] for d in descs}) > 1
    rows: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    wd_values: set[float] = set()
    aug_values: set[str] = set()
    for d in descs:
        if d["dropout"]:
            continue
        key = _key(d, multi)
        has_wd, has_aug = bool(d["weight_decay"]), d["augment"] is not None
        if d["variant"] == "true":
            wd_values |= {d["weight_decay"]} if has_wd else set()
            aug_values |= {d["augment"]} if has_aug else set()
            col = {(True, True): "aug+wd", (True, False): "aug", (False, True): "wd", (False, False): "none"}[
                (has_aug, has_wd)]
            rows[key][col].append(d)
        elif d["variant"] in VARIANTS and not has_wd and not has_aug:
            rows[key][d["variant"]].append(d)
    aug_name = "/".join(sorted(aug_values)) or "aug"
    wd_name = "wd " + "/".join(f"{v:g}" for v in sorted(wd_values)) if wd_values else "wd"
    names = {"aug+wd": f"{aug_name} + {wd_name}", "aug": aug_name, "wd": wd_name, "none": "no regularizer",
             **{v: VARIANTS[v] for v in VARIANTS if v != "true"}}
    order = ["aug+wd", "aug", "wd", "none", "random_labels", "shuffled_pixels", "random_pixels", "gaussian"]
    columns = [c for c in order if any(c in row for row in rows.values())]
    body = [(key, [_cell(row.get(c, [])) for c in columns]) for key, row in rows.items()]
    return [names[c] for c in columns], body


def _regularized_random(descs: list[dict[str, Any]], multi: bool) -> list[str]:
    """Rows of the Appendix E table: randomized runs trained with a regularizer."""
    groups: dict[tuple, list] = defaultdict(list)
    for d in descs:
        if d["variant"] != "true" and d["variant"] in VARIANTS and not _plain(d):
            groups[(_key(d, multi), VARIANTS[d["variant"]], regularizer_label(d))].append(d)
    return [f"| {m} | {v} | {s} | {_cell(ds)} |" for (m, v, s), ds in groups.items()]


def table1(results: Iterable[Result]) -> str:
    """Markdown tables in the layout of the paper's Table 1.

    First table: one row per model (per model and dataset when several datasets are
    present); true-label runs with augmentation and weight decay, augmentation only,
    weight decay only, neither (only the columns that have runs); then one column per
    randomized variant, from runs without regularizers. A cell reads ``train/test``
    accuracy in percent, two decimals, mean over seeds, followed by ``± spread`` (sample
    standard deviation of the test accuracy over seeds) when there are several seeds; ``-``
    means no run; ``*`` marks a run that did not complete. Partially corrupted labels
    (0 < p < 1) and dropout runs are not part of it. A second table lists randomized runs
    trained with regularizers (the paper's Appendix E), when there are any.

    Raises:
        TypeError: an element of ``results`` is not a Result.
    """
    results = _check_results(results, "table1")
    header, body = table1_cells(results)
    lines = ["| model | " + " | ".join(header) + " |", "| --- | " + " | ".join("---" for _ in header) + " |"]
    lines += [f"| {key} | " + " | ".join(cells) + " |" for key, cells in body]
    lines += ["", "train/test accuracy (%). True-label runs first, then randomized variants (no regularizer)."]
    descs = [r.summary() for r in results if r.history]
    extra = _regularized_random(descs, len({d["dataset"] for d in descs}) > 1)
    if extra:
        lines += ["", "Randomized runs with regularizers (the paper's Appendix E):", "",
                  "| model | variant | regularizer | train/test (%) |", "| --- | --- | --- | --- |", *extra]
    return "\n".join(lines) + "\n"
