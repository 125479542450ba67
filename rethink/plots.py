"""Figure 1 and Table 1 of Zhang et al. (2017), drawn from any set of :class:`rethink.Result`.

- :func:`figure1` draws the paper's three panels: (a) training loss against SGD steps for
  the five variants (true labels, random labels, shuffled pixels, random pixels,
  Gaussian), (b) steps to fit relative to true labels against the label-corruption level,
  (c) test error against the label-corruption level.
- :func:`table1` writes the paper's Table 1 as markdown: train/test accuracy of each model
  with and without augmentation and weight decay, then the randomized variants.

Both take results only (plain data, e.g. from ``rethink.train.load_results(folder)``), so
they work on runs made anywhere. Plotting uses matplotlib's headless "Agg" backend and
never opens a window.

A PNG written by :func:`figure1` carries the plotted numbers as JSON in a text chunk
(key ``rethink:figure1``); :func:`read_figure_data` reads them back.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import zlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .results import Result

__all__ = [
    "VARIANTS",
    "describe",
    "figure1",
    "figure1_data",
    "read_figure_data",
    "table1",
]

#: The five variants of the randomization test, in the paper's order, with display names.
VARIANTS = {
    "true": "true labels",
    "random_labels": "random labels",
    "shuffled_pixels": "shuffled pixels",
    "random_pixels": "random pixels",
    "gaussian": "Gaussian",
}

_MODEL_NAMES = {
    "mlp1x512": "MLP 1x512",
    "mlp3x512": "MLP 3x512",
    "alexnet_small": "small AlexNet",
    "inception_small": "small Inception",
    "inception_small_nobn": "small Inception w/o BN",
    "resnet18": "ResNet-18",
}

_STYLES = {"true": "-", "random_labels": "-", "shuffled_pixels": "--", "random_pixels": "-", "gaussian": ":"}

_COLORS = {
    "true": "tab:blue",
    "random_labels": "tab:red",
    "shuffled_pixels": "tab:green",
    "random_pixels": "tab:purple",
    "gaussian": "tab:orange",
}

PNG_DATA_KEY = "rethink:figure1"

_FLOAT = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def _parse_corruption(text: Any) -> tuple[str, float | None]:
    """(variant, label-noise level) of a corruption string as written by ``str(Corruption)``.

    Variant is one of :data:`VARIANTS` or ``"labels"`` (partial label corruption, 0 < p < 1);
    the level is the label-corruption probability for label variants, else None.
    ``"labels:0"`` counts as true labels and ``"labels:1"`` as random labels.
    """
    s = str(text if text is not None else "none").strip().lower()
    if s in ("", "none", "true", "true_labels"):
        return "true", 0.0
    if s.startswith("random_labels"):
        return "random_labels", 1.0
    m = re.match(r"^labels(?:\s*[:=(]\s*(?:p\s*=\s*)?(" + _FLOAT + "))?", s)
    if m:
        p = float(m.group(1)) if m.group(1) is not None else 1.0
        if p <= 0.0:
            return "true", 0.0
        if p >= 1.0:
            return "random_labels", 1.0
        return "labels", p
    for kind in ("shuffled_pixels", "random_pixels", "gaussian"):
        if s.startswith(kind):
            return kind, None
    return s, None


def _is_zero(x: Any) -> bool:
    try:
        return x is None or float(x) == 0.0
    except (TypeError, ValueError):
        return False


def _no_aug(a: Any) -> bool:
    return a is None or str(a).strip().lower() in ("", "none", "noaug", "false")


def _model_label(name: Any) -> str:
    return _MODEL_NAMES.get(str(name), str(name))


def describe(result: Result) -> dict[str, Any]:
    """The facts of one result that plots, tables and summaries use, as a flat dict.

    Keys: ``run_name``, ``model``, ``dataset``, ``corruption`` (the config string),
    ``variant`` (see :func:`_parse_corruption`), ``label_noise`` (float or None),
    ``seed``, ``weight_decay`` (float), ``augment`` (str or None), ``status``,
    ``epochs``, ``steps``, ``steps_to_fit``, ``epochs_to_fit``, ``train_loss``,
    ``train_acc``, ``test_loss``, ``test_acc`` (final epoch; NaN without history),
    ``gap``, ``seconds``, ``num_classes``, ``chance`` (1/num_classes or NaN).
    """
    c = result.config or {}
    variant, p = _parse_corruption(c.get("corruption"))
    fin = result.final
    nan = math.nan
    num_classes = c.get("num_classes")
    try:
        wd = float(c.get("weight_decay") or 0.0)
    except (TypeError, ValueError):
        wd = nan
    aug = c.get("augment")
    return {
        "run_name": c.get("run_name"),
        "model": c.get("model"),
        "dataset": c.get("dataset"),
        "corruption": c.get("corruption"),
        "variant": variant,
        "label_noise": p,
        "seed": c.get("seed"),
        "weight_decay": wd,
        "augment": None if _no_aug(aug) else str(aug),
        "status": result.status,
        "epochs": fin.get("epoch", 0) if fin else 0,
        "steps": fin.get("step", 0) if fin else 0,
        "steps_to_fit": result.steps_to_fit,
        "epochs_to_fit": result.epochs_to_fit,
        "train_loss": float(fin.get("train_loss", nan)) if fin else nan,
        "train_acc": float(fin.get("train_acc", nan)) if fin else nan,
        "test_loss": float(fin.get("test_loss", nan)) if fin else nan,
        "test_acc": float(fin.get("test_acc", nan)) if fin else nan,
        "gap": float(fin.get("gap", nan)) if fin else nan,
        "seconds": float(fin.get("seconds", nan)) if fin else nan,
        "num_classes": num_classes,
        "chance": 1.0 / num_classes if isinstance(num_classes, int) and num_classes > 0 else nan,
    }


def _check_results(results: Iterable[Result], where: str) -> list[Result]:
    if isinstance(results, Result):
        results = [results]
    out = list(results)
    for r in out:
        if not isinstance(r, Result):
            raise TypeError(f"{where}: expected rethink.Result objects, got {type(r).__name__}")
    return out


def _mean(xs: Sequence[float]) -> float:
    xs = [float(x) for x in xs if x is not None and not math.isnan(float(x))]
    return sum(xs) / len(xs) if xs else math.nan


def _paper_settings(d: dict[str, Any]) -> bool:
    """No weight decay and no augmentation: the settings of the randomized runs."""
    return _is_zero(d["weight_decay"]) and d["augment"] is None


def _group_key(d: dict[str, Any], multi_dataset: bool) -> str:
    label = _model_label(d["model"])
    return f"{label} ({d['dataset']})" if multi_dataset else label


# ----------------------------------------------------------------------------- Figure 1


def figure1_data(results: Iterable[Result], model: str | None = None) -> dict[str, Any]:
    """The numbers :func:`figure1` plots, as plain data.

    Only runs without weight decay and augmentation are used (the paper's settings for
    the randomization test); with several seeds, panel (b) and (c) values are means.

    Returns a dict with
      - ``"a"``: {"model": label, "curves": {variant: [{"seed", "step": [...], "train_loss": [...]}]}}
        for ``model`` (default: the first model with a true-label or randomized run);
      - ``"b"``: {model label: {"label_noise": [...], "steps_to_fit": [...], "relative": [...]}}
        (``relative`` = steps_to_fit / steps_to_fit at true labels, NaN where a run did not fit);
      - ``"c"``: {model label: {"label_noise": [...], "test_error": [...]}}.
    """
    results = _check_results(results, "figure1_data")
    descs = [(r, describe(r)) for r in results]
    descs = [(r, d) for r, d in descs if _paper_settings(d) and r.history]
    multi_dataset = len({d["dataset"] for _, d in descs}) > 1

    # (a) training loss curves of one model.
    models_in_order: list[Any] = []
    for _, d in descs:
        if d["variant"] in VARIANTS and d["model"] not in models_in_order:
            models_in_order.append(d["model"])
    if model is None:
        model = models_in_order[0] if models_in_order else None
    elif model not in models_in_order and _model_label(model) not in [_model_label(m) for m in models_in_order]:
        raise ValueError(f"figure1: no run of model {model!r} among the results (have {models_in_order})")
    curves: dict[str, list[dict[str, Any]]] = {}
    for r, d in descs:
        if d["variant"] not in VARIANTS or _model_label(d["model"]) != _model_label(model):
            continue
        curves.setdefault(d["variant"], []).append(
            {
                "seed": d["seed"],
                "dataset": d["dataset"],
                "step": [int(h["step"]) for h in r.history],
                "train_loss": [float(h["train_loss"]) for h in r.history],
            }
        )
    curves = {v: curves[v] for v in VARIANTS if v in curves}

    # (b), (c): label-corruption level -> steps to fit, test error, per model.
    by_model: dict[str, dict[float, dict[str, list]]] = defaultdict(lambda: defaultdict(lambda: {"fit": [], "err": []}))
    for _, d in descs:
        if d["label_noise"] is None:
            continue
        cell = by_model[_group_key(d, multi_dataset)][float(d["label_noise"])]
        cell["fit"].append(math.nan if d["steps_to_fit"] is None else float(d["steps_to_fit"]))
        cell["err"].append(1.0 - d["test_acc"])
    b: dict[str, dict[str, list]] = {}
    c: dict[str, dict[str, list]] = {}
    for key, levels in by_model.items():
        ps = sorted(levels)
        fits = [_mean(levels[p]["fit"]) if all(not math.isnan(x) for x in levels[p]["fit"]) else math.nan for p in ps]
        base = fits[0] if ps and ps[0] == 0.0 else math.nan
        rel = [f / base if base and not math.isnan(base) and not math.isnan(f) else math.nan for f in fits]
        b[key] = {"label_noise": ps, "steps_to_fit": fits, "relative": rel}
        c[key] = {"label_noise": ps, "test_error": [_mean(levels[p]["err"]) for p in ps]}
    return {"a": {"model": _model_label(model) if model is not None else None, "curves": curves}, "b": b, "c": c}


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return None if math.isnan(obj) or math.isinf(obj) else obj
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    return obj


def figure1(
    results: Iterable[Result],
    path: str | os.PathLike,
    *,
    model: str | None = None,
    title: str | None = None,
    dpi: int = 90,
) -> Path:
    """Draw the paper's Figure 1 from ``results`` and save it to ``path``.

    Panels: (a) training loss vs SGD step for the five variants of ``model`` (default:
    the first model found); (b) steps until the run first reached its target train
    accuracy, relative to true labels, vs label corruption, one line per model;
    (c) test error vs label corruption, one line per model. Panel (b) and (c) use
    results whose corruption is a label corruption (true labels = 0, random labels = 1).
    Runs with weight decay or augmentation are left out. A panel without data says so.

    Args:
        results: rethink.Result objects (e.g. ``rethink.train.load_results(folder)``).
        path: output file; the format follows the suffix (``.png``, ``.pdf``, ``.svg``).
            A PNG also carries the plotted numbers (see :func:`read_figure_data`).
        model: model name whose curves panel (a) shows.
        title: optional figure title.
        dpi: resolution of raster output.

    Returns:
        The path written (written atomically).

    Raises:
        TypeError: an element of ``results`` is not a Result.
        ValueError: ``model`` has no run among the results.
    """
    # A bare Figure with the Agg canvas: headless, and pyplot's global state stays untouched.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    data = figure1_data(results, model=model)
    path = Path(path)

    fig = Figure(figsize=(13.5, 3.9), dpi=dpi)
    FigureCanvasAgg(fig)
    ax_a, ax_b, ax_c = fig.subplots(1, 3)

    # (a)
    curves = data["a"]["curves"]
    for variant, runs in curves.items():
        for i, run in enumerate(runs):
            ax_a.plot(
                [s / 1000.0 for s in run["step"]],
                run["train_loss"],
                color=_COLORS.get(variant),
                ls=_STYLES.get(variant, "-"),
                label=VARIANTS[variant] if i == 0 else None,
                lw=1.8 if _STYLES.get(variant) == "-" else 2.2,
            )
    ax_a.set_xlabel("thousand steps")
    ax_a.set_ylabel("average training loss")
    ax_a.set_title(f"(a) learning curves{': ' + data['a']['model'] if data['a']['model'] else ''}", fontsize=10)
    if curves:
        ax_a.legend(fontsize=8)
        ax_a.set_ylim(bottom=0)
    else:
        ax_a.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax_a.transAxes)

    # (b)
    markers = "os^Dv<>p*h"
    for i, (key, series) in enumerate(data["b"].items()):
        xs = [p for p, r in zip(series["label_noise"], series["relative"]) if not math.isnan(r)]
        ys = [r for r in series["relative"] if not math.isnan(r)]
        if xs:
            ax_b.plot(xs, ys, marker=markers[i % len(markers)], label=key, lw=1.6)
    ax_b.set_xlabel("label corruption")
    ax_b.set_ylabel("time to overfit (relative to true labels)")
    ax_b.set_title("(b) convergence slowdown", fontsize=10)
    if ax_b.lines:
        ax_b.legend(fontsize=8)
    else:
        ax_b.text(0.5, 0.5, "no label-corruption runs\nthat fitted", ha="center", va="center", transform=ax_b.transAxes)

    # (c)
    for i, (key, series) in enumerate(data["c"].items()):
        xs = [p for p, e in zip(series["label_noise"], series["test_error"]) if not math.isnan(e)]
        ys = [e for e in series["test_error"] if not math.isnan(e)]
        if xs:
            ax_c.plot(xs, ys, marker=markers[i % len(markers)], label=key, lw=1.6)
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

    import io

    from ._io import atomic_write_bytes

    fmt = path.suffix.lstrip(".").lower() or "png"
    buf = io.BytesIO()
    kwargs: dict[str, Any] = {"format": fmt}
    if fmt == "png":
        kwargs["metadata"] = {PNG_DATA_KEY: json.dumps(_json_safe(data), separators=(",", ":"))}
    fig.savefig(buf, **kwargs)
    atomic_write_bytes(path, buf.getvalue())
    return path


def read_figure_data(path: str | os.PathLike) -> dict[str, Any]:
    """The numbers a PNG written by :func:`figure1` plots (NaN written as None).

    Raises:
        ValueError: the file is not a PNG or carries no rethink figure data.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG file")
    pos = 8
    key = PNG_DATA_KEY.encode("latin-1")
    while pos + 8 <= len(raw):
        (length,) = struct.unpack(">I", raw[pos : pos + 4])
        ctype = raw[pos + 4 : pos + 8]
        body = raw[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if ctype == b"tEXt":
            k, _, v = body.partition(b"\x00")
            if k == key:
                return json.loads(v.decode("latin-1"))
        elif ctype == b"zTXt":
            k, _, v = body.partition(b"\x00")
            if k == key:
                return json.loads(zlib.decompress(v[1:]).decode("latin-1"))
        elif ctype == b"iTXt":
            k, _, rest = body.partition(b"\x00")
            if k == key:
                compressed, _method = rest[0], rest[1]
                rest = rest[2:]
                _lang, _, rest = rest.partition(b"\x00")
                _tkey, _, text = rest.partition(b"\x00")
                if compressed:
                    text = zlib.decompress(text)
                return json.loads(text.decode("utf-8"))
        elif ctype == b"IEND":
            break
    raise ValueError(f"{path}: no {PNG_DATA_KEY} data in this PNG (not written by rethink.plots.figure1?)")


# ----------------------------------------------------------------------------- Table 1


def _fmt_pct(x: float) -> str:
    return "-" if x is None or math.isnan(x) else f"{100.0 * x:.2f}"


def _cell(descs: list[dict[str, Any]]) -> str:
    if not descs:
        return "-"
    tr = _mean([d["train_acc"] for d in descs])
    te = _mean([d["test_acc"] for d in descs])
    mark = "" if all(d["status"] == "completed" for d in descs) else "*"
    return f"{_fmt_pct(tr)}/{_fmt_pct(te)}{mark}"


def _fmt_wd(values: set[float]) -> str:
    return "wd " + "/".join(f"{v:g}" for v in sorted(values)) if values else "wd"


def table1_cells(results: Iterable[Result]) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """The header and rows of :func:`table1`: (column names, [(row label, cells)]).

    Each cell is ``"train/test"`` accuracy in percent with two decimals (means over
    seeds), ``"-"`` where no run exists, and a trailing ``*`` where a run did not
    complete.
    """
    results = _check_results(results, "table1")
    descs = [describe(r) for r in results if r.history]
    multi_dataset = len({d["dataset"] for d in descs}) > 1
    rows: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    wd_values: set[float] = set()
    aug_values: set[str] = set()
    for d in descs:
        key = _group_key(d, multi_dataset)
        has_wd = not _is_zero(d["weight_decay"])
        has_aug = d["augment"] is not None
        if has_wd:
            wd_values.add(d["weight_decay"])
        if has_aug:
            aug_values.add(d["augment"])
        if d["variant"] == "true":
            col = {(True, True): "aug+wd", (True, False): "aug", (False, True): "wd", (False, False): "none"}[
                (has_aug, has_wd)
            ]
            rows[key][col].append(d)
        elif d["variant"] in VARIANTS and not has_wd and not has_aug:
            rows[key][d["variant"]].append(d)
    aug_name = "/".join(sorted(aug_values)) or "aug"
    wd_name = _fmt_wd(wd_values)
    names = {
        "aug+wd": f"{aug_name} + {wd_name}",
        "aug": aug_name,
        "wd": wd_name,
        "none": "no regularizer",
        **{v: VARIANTS[v] for v in VARIANTS if v != "true"},
    }
    order = ["aug+wd", "aug", "wd", "none", "random_labels", "shuffled_pixels", "random_pixels", "gaussian"]
    columns = [c for c in order if any(c in row for row in rows.values())]
    body = [(key, [_cell(row.get(c, [])) for c in columns]) for key, row in rows.items()]
    return [names[c] for c in columns], body


def table1(results: Iterable[Result]) -> str:
    """Markdown table in the layout of the paper's Table 1.

    One row per model (per model and dataset when several datasets are present). The
    first columns hold true-label runs: with augmentation and weight decay, augmentation
    only, weight decay only, neither (only the columns that have runs). Then one column
    per randomized variant (random labels, shuffled pixels, random pixels, Gaussian),
    from runs without augmentation or weight decay. A cell reads ``train/test`` accuracy
    in percent, two decimals, mean over seeds; ``-`` means no run; ``*`` marks a run that
    did not complete. Partially corrupted labels (0 < p < 1) are not part of this table.

    Raises:
        TypeError: an element of ``results`` is not a Result.
    """
    header, body = table1_cells(results)
    lines = [
        "| model | " + " | ".join(header) + " |",
        "| --- | " + " | ".join("---" for _ in header) + " |",
    ]
    for key, cells in body:
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("train/test accuracy (%). True-label runs first, then randomized variants (no regularizer).")
    return "\n".join(lines) + "\n"
