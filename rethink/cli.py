"""The ``rethink`` command line: ``rethink <command> ...`` and ``python -m rethink <command> ...``.

Every parser of rethink is defined here, with one vocabulary: ``--out-dir`` for the
results folder, lists as space-separated values (``--seeds 0 1 2``; commas work too),
and the settings of a run (:class:`rethink.spec.RunSpec`) spelled the same in every
command. A failing command exits with code 1 and one line on stderr:
``rethink: error: <reason>``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main", "build_parser"]


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (``rethink: error: ...``) and exit code 1."""

    def error(self, message: str):
        sub = self.prog.split(" ", 1)[-1] if " " in self.prog else ""
        self.exit(1, f"rethink: error: {sub}{': ' if sub else ''}{message}\n")


def _split(values: Sequence[str] | str | None) -> list[str] | None:
    """Space- or comma-separated list values as one flat list (None stays None)."""
    if values is None:
        return None
    values = [values] if isinstance(values, str) else values
    return [t.strip() for v in values for t in str(v).split(",") if t.strip()]


def _typed(values, cast, flag: str) -> list | None:
    items = _split(values)
    if items is None:
        return None
    if not items:
        raise ValueError(f"{flag}: empty list")
    out = []
    for t in items:
        try:
            out.append(cast(t))
        except ValueError:
            kind = "an integer" if cast is int else "a number"
            raise ValueError(f"{flag}: {t!r} is not {kind}") from None
    return out


def _none(v: str | None) -> str | None:
    return None if v is None or v.strip().lower() in ("none", "") else v


def _integer(s: str) -> int:
    try:
        return int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {s!r}") from None


def _optional_float(s: str) -> float | None:
    if s.strip().lower() == "none":
        return None
    try:
        return float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number (or 'none'): {s!r}") from None


# ----------------------------------------------------------------------------- shared options

#: (flag, RunSpec field, type, list allowed in sweeps, help)
_RUN_OPTIONS = [
    ("--lr", "lr", float, True, "initial learning rate (default: the paper's per model, rethink.paper.LR; 0.01 for "
                                "others)"),
    ("--momentum", "momentum", float, False, "SGD momentum"),
    ("--weight-decay", "weight_decay", float, True, "L2 weight decay (the paper's default: none)"),
    ("--lr-decay", "lr_decay", float, False, "decay factor per --lr-decay-examples"),
    ("--lr-decay-examples", "lr_decay_examples", _integer, False,
     "training examples per decay step (the default is one CIFAR-10 epoch)"),
    ("--batch-size", "batch_size", _integer, True, "batch size"),
    ("--max-epochs", "max_epochs", _integer, False, "epoch budget (default per dataset: "
                                                    "rethink.spec.DEFAULT_MAX_EPOCHS)"),
    ("--stop-at-train-acc", "stop_at_train_acc", _optional_float, False,
     "stop at this train accuracy ('none': train the whole budget)"),
    ("--stop-at-train-loss", "stop_at_train_loss", _optional_float, False, "stop at this train cross-entropy"),
    ("--epochs-after-fit", "epochs_after_fit", _integer, False,
     "keep training this many epochs after the stopping target"),
    ("--augment", "augment", str, True,
     "none (default), or crop, flip, rotate joined with + (e.g. crop+flip); crop_flip = pad 4, crop, flip"),
    ("--crop", "crop", _integer, False, "crop size: the centre crop (the paper's 28), or the random window of 'crop'"),
    ("--max-rotation", "max_rotation", _integer, False, "degrees of 'rotate' (default {rotation})"),
    ("--normalize", "normalize", str, False, "per_image (the paper's), per_channel or none"),
    ("--dropout", "dropout", float, True, "dropout probability in the model"),
    ("--train-size", "train_size", _integer, True, "train on a random subset of this many training images"),
    ("--test-size", "test_size", _integer, False, "measure test accuracy on the first N test images (default all)"),
    ("--dtype", "dtype", str, False, "float32 or bfloat16 (autocast)"),
    ("--loss-window", "loss_window", _integer, False, "SGD steps per logged training-loss value"),
]


def _help(field: str, text: str) -> str:
    """A run option's help with its default read from RunSpec (never restated here)."""
    import dataclasses

    from .loader import DEFAULT_MAX_ROTATION
    from .spec import RunSpec

    text = text.replace("{rotation}", str(DEFAULT_MAX_ROTATION))
    default = {f.name: f.default for f in dataclasses.fields(RunSpec)}[field]
    if default is None or "default" in text:
        return text
    return f"{text} (default {default:g})" if isinstance(default, float) else f"{text} (default {default})"


def _add_run_options(p: argparse.ArgumentParser, lists: bool) -> None:
    for flag, field, cast, listable, text in _RUN_OPTIONS:
        if lists and listable:
            p.add_argument(flag, nargs="+", default=argparse.SUPPRESS,
                           help=_help(field, text) + " (several values: one run each)")
        else:
            p.add_argument(flag, type=cast, default=argparse.SUPPRESS, help=_help(field, text))


def _run_settings(args, lists: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for flag, field, cast, listable, _ in _RUN_OPTIONS:
        if not hasattr(args, field):  # not given: the RunSpec default
            continue
        v = getattr(args, field)
        if lists and listable:
            v = _typed(v, cast if cast is not str else str, flag)
            v = [_none(x) if cast is str else x for x in v]
            out[field] = v if len(v) > 1 else v[0]
        else:
            out[field] = _none(v) if cast is str else v
    if getattr(args, "threads", None) is not None:  # given: part of every run's identity
        out["threads"] = args.threads
    return out


def _add_common(p: argparse.ArgumentParser, *, out_default: str | None) -> None:
    p.add_argument("--root", default=None,
                   help="folder of the dataset files (default: $RETHINK_DATA, ./data, then the system's)")
    p.add_argument("--out-dir", default=out_default,
                   help="folder for result files" + (f" (default {out_default})" if out_default else ""))
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--threads", type=_integer, default=None,
                   help="torch CPU threads of every run, recorded in its spec and name (default: torch's setting, "
                        "recorded in the result file; the same rule as the Python API)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _add_reuse(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rerun", action="store_true",
                   help="train every run anew; without it (in every command) finished runs of the same settings "
                        "in --out-dir are reused and interrupted ones continue from their checkpoint")
    p.add_argument("--resume", action="store_true", help=argparse.SUPPRESS)  # the default; rethink 0.2's flag


def _execution(args):
    """The :class:`rethink.runner.Execution` of a command's arguments."""
    from .runner import Execution

    return Execution(out_dir=args.out_dir, root=args.root, device=args.device, devices=_split(getattr(args, "devices",
                     None)), executor=_executor(args) if hasattr(args, "executor") else None,
                     progress=not args.no_progress, resume=not getattr(args, "rerun", False))


def _set_threads(args) -> None:
    import torch

    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)


def _models_help() -> str:
    from . import models

    paper = [n for n in models.names() if not n.startswith("mlp") or n in ("mlp1x512", "mlp3x512")]
    return ("model name: " + ", ".join(paper) + ", or mlp{depth}x{width} (depth 1-4, width 32-2048); or your own "
            "nn.Module class or factory as package.module:name")


_CORRUPTION_HELP = ("none (true labels; 'true' too), random_labels, labels:P (each label replaced with probability P), "
                    "shuffled_pixels, random_pixels, gaussian; options joined with ':': different (labels: never keep "
                    "the true label), value (pixels: permute values, not positions), test (corrupt the test labels "
                    "too), e.g. labels:0.4:different")

_DATASET_HELP = ("digits (embedded), mnist, fashion_mnist, cifar10, or your own data as FILE.npz / FILE.pt holding "
                 "train_images, train_labels (and test_images, test_labels)")


def _measures_help() -> str:
    from .measures import GROUPS

    return "'all' (default), or measure names or groups: " + ", ".join(GROUPS)


def _model(value: str) -> Any:
    """A --model value: a rethink model name, or ``package.module:factory`` imported."""
    if ":" in value:
        from .inputs import import_factory

        return import_factory(value)
    return value


def _data(value: str) -> Any:
    """A --dataset value: a dataset name, or the path of a .npz / .pt file of tensors."""
    return Path(value) if value.endswith((".npz", ".pt")) else value


def _table(results) -> str:
    head = "| run | status | epochs | steps to fit | train acc | test acc | gap |"
    lines = [head, "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        f = r.final
        lines.append(
            f"| {r.config.get('run_name', '?')} | {r.status} | {f.get('epoch', 0)} | "
            f"{r.steps_to_fit if r.steps_to_fit is not None else '-'} | {f.get('train_acc', math.nan):.4f} | "
            f"{f.get('test_acc', math.nan):.4f} | {f.get('gap', math.nan):+.4f} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- commands


def _cmd_fit_random(args) -> int:
    from .train import TrainingFailed, fit_random

    _set_threads(args)
    try:
        r = fit_random(_model(args.model), _data(args.dataset), args.corruption, seed=args.seed, root=args.root, device=args.device,
                       out_dir=args.out_dir, resume=not args.rerun, progress=not args.no_progress,
                       run_name=args.run_name, compile=args.compile, **_run_settings(args, lists=False))
    except TrainingFailed as e:
        print(_table([e.result]))
        raise
    print(_table([r]))
    if args.out_dir:
        print(f"result: {Path(args.out_dir) / (r.config['run_name'] + '.json')}")
    else:
        print("not saved: give --out-dir to keep the result and the weights", file=sys.stderr)
    return 0


def _cmd_sweep(args) -> int:
    from .runner import sweep

    _set_threads(args)
    settings = _run_settings(args, lists=True)
    ds = [_data(d) for d in _split(args.dataset)]
    results = sweep([_model(m) for m in _split(args.models)], _split(args.corruptions), _typed(args.seeds, int, "--seeds"),
                    dataset=ds if len(ds) > 1 else ds[0], execution=_execution(args), **settings)
    print(_table(results))
    failed = [r for r in results if r.status != "completed"]
    print(f"results: {args.out_dir} ({len(results)} runs, {len(failed)} failed)")
    if failed:
        raise RuntimeError(f"{len(failed)} run(s) failed, e.g. {failed[0].config.get('run_name')}: {failed[0].error}")
    return 0


def _cmd_randomization_test(args) -> int:
    from .randomization import randomization_test

    _set_threads(args)
    report = randomization_test(
        _model(args.model), _data(args.dataset), corruptions=_split(args.corruptions),
        label_noise=_typed(args.label_noise, float, "--label-noise"), seeds=_typed(args.seeds, int, "--seeds"),
        execution=_execution(args), grid=not args.no_grid, grid_weight_decay=args.grid_weight_decay,
        grid_augment=_none(args.grid_augment), regularized_random=args.regularized_random,
        **_run_settings(args, lists=False))
    sys.stdout.write(report.table + "\n" + report.verdict + "\n\n")
    p = report.paths
    sys.stdout.write(f"wrote {len(report.results)} results, {p['summary']}, {p['figure1']}, {p['figure2']}, "
                     f"{p['table1']} and {p['verdict']}\n")
    return 0


def _cmd_measures(args) -> int:
    from .study import study

    _set_threads(args)
    sel = "all" if args.measures == ["all"] else _split(args.measures)
    rep = study(args.results, args.out_dir, measures=sel, device=args.device, seed=args.seed, samples=args.samples,
                max_examples=args.max_examples, progress=not args.no_progress)
    print(f"measured {len(rep.rows)} runs ({len(rep.skipped)} skipped); ranking in {rep.paths['md']}",
          file=sys.stderr)
    for r in rep.ranking[:5]:
        print(f"{r['measure']:28s} tau={r['tau']:+.3f} granulated={r['granulated']:+.3f}")
    return 0


def _grid(items: list[str] | None) -> dict[str, list] | None:
    """``["lr=0.01,0.03", "model=mlp1x128,mlp2x512"]`` -> {"lr": [0.01, 0.03], ...}, values cast
    like the run options."""
    if not items:
        return None
    casts = {field: cast for _, field, cast, _, _ in _RUN_OPTIONS}
    casts.update(model=_model, corruption=str, dataset=_data)
    grid: dict[str, list] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in casts:
            raise ValueError(f"--grid: {item!r} is not SETTING=v1,v2 with a setting of: {', '.join(sorted(casts))}")
        cast = casts[key]
        grid[key] = [(_none(v) if cast is str and key != "corruption" else cast(v)) for v in _split(values)]
    return grid


def _executor(args):
    if args.executor is None:
        return None
    from .runner import slurm_executor

    params = {"timeout_min": args.timeout_min}
    if args.executor == "slurm" and args.slurm_partition:
        params["slurm_partition"] = args.slurm_partition
    if args.executor == "local":
        import submitit

        ex = submitit.LocalExecutor(folder=str(Path(args.out_dir) / "submitit"))
        ex.update_parameters(timeout_min=args.timeout_min)
        return ex
    return slurm_executor(Path(args.out_dir) / "submitit", **params)


def _cmd_zoo(args) -> int:
    from .zoo import zoo

    _set_threads(args)
    settings = _run_settings(args, lists=False)
    settings["dataset"] = _data(args.dataset)
    rep = zoo(_grid(args.grid), _typed(args.seeds, int, "--seeds"), measures=not args.no_measures,
              execution=_execution(args), **settings)
    done = sum(r.status == "completed" for r in rep.results)
    fitted = sum(r.epochs_to_fit is not None for r in rep.results)
    print(f"zoo: {len(rep.results)} runs in {args.out_dir} ({done} completed, {fitted} reached the stopping target); "
          f"measures of {len(rep.measures)} runs. Next: rethink measures {args.out_dir}")
    return 0


def _cmd_memorization(args) -> int:
    from .memorization import memorization

    _set_threads(args)
    rep = memorization(_model(args.model), _data(args.dataset), args.corruption, runs=args.runs, subset=args.subset,
                       train_pool=args.train_pool, seed=args.seed, influence=args.influence,
                       execution=_execution(args), **_run_settings(args, lists=False))
    print(f"memorization scores of {len(rep.scores)} examples from {len(rep.results)} runs; "
          f"{int(rep.flipped.sum())} labels flipped; AUROC of the scores against them: {rep.auroc:.3f} "
          f"(by runs: {', '.join(f'{k}: {v:.3f}' for k, v in rep.auroc_by_runs.items())}); {rep.paths['json']}")
    return 0


def _default(fn, name: str) -> Any:
    """The default of parameter ``name`` of ``fn``: the CLI never restates a module's default."""
    import inspect

    return inspect.signature(fn).parameters[name].default


def _shown(value: Any) -> str:
    """A default as --help prints it (lists space-separated, as the CLI takes them)."""
    if isinstance(value, (list, tuple)):
        return " ".join(_shown(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _listed(value: Any) -> list[str]:
    """A list default as the strings argparse would have parsed."""
    return [_shown(v) for v in value]


def _parser_fit_random(sub) -> None:
    from .train import fit_random

    p = sub.add_parser("fit-random", help="train one model on (randomized) data",
                       description="Train a model with SGD on randomized data until it fits the training set; "
                                   "print the final metrics.")
    for flag, text in (("model", _models_help()), ("dataset", _DATASET_HELP), ("corruption", _CORRUPTION_HELP)):
        d = _default(fit_random, flag)
        p.add_argument(f"--{flag}", default=d, help=f"{text} (default {_shown(d)})")
    p.add_argument("--seed", type=_integer, default=0, help="seed of the initialization, batch order and "
                                                            "corruption (default 0)")
    p.add_argument("--run-name", default=None, help="result file stem (default: from the settings)")
    p.add_argument("--compile", action="store_true", help="use torch.compile")
    _add_run_options(p, lists=False)
    _add_common(p, out_default=None)
    _add_reuse(p)
    p.set_defaults(func=_cmd_fit_random)


def _parser_sweep(sub) -> None:
    from .runner import sweep

    d = {k: _default(sweep, k) for k in ("models", "dataset", "corruptions", "seeds")}
    s = sub.add_parser("sweep", help="train every combination of models, corruptions, seeds and settings",
                       description="Run fit-random for the product of the given settings, one result file per "
                                   "run; finished runs of the same settings are skipped on a rerun.")
    s.add_argument("--model", "--models", dest="models", nargs="+", default=_listed(d["models"]),
                   help=f"one or more: {_models_help()} (default {_shown(d['models'])})")
    s.add_argument("--dataset", nargs="+", default=[d["dataset"]],
                   help=f"one or more: {_DATASET_HELP} (default {d['dataset']})")
    s.add_argument("--corruption", "--corruptions", dest="corruptions", nargs="+", default=_listed(d["corruptions"]),
                   help=f"one or more: {_CORRUPTION_HELP} (default {_shown(d['corruptions'])})")
    s.add_argument("--seeds", nargs="+", default=_listed(d["seeds"]), help=f"seeds (default {_shown(d['seeds'])})")
    s.add_argument("--devices", nargs="+", default=None, help="one worker per device, e.g. cuda:0 cuda:1, or cpu cpu")
    _add_run_options(s, lists=True)
    _add_common(s, out_default="results")
    _add_reuse(s)
    s.set_defaults(func=_cmd_sweep)


def _parser_randomization_test(sub) -> None:
    from .randomization import randomization_test

    d = {k: _default(randomization_test, k) for k in ("model", "dataset", "corruptions", "label_noise", "seeds",
                                                        "grid_weight_decay", "grid_augment")}
    r = sub.add_parser("randomization-test",
                       help="the paper's randomization test (Figures 1 and 2, Table 1) on a model and a dataset",
                       description="Train a model on true labels, random labels, shuffled pixels, random pixels "
                                   "and Gaussian inputs, on a label-noise sweep and on the Table 1 regularizer "
                                   "grid, for every seed; write every result, summary.csv, figure1.png, "
                                   "figure2.png, table1.md and a verdict into --out-dir.")
    r.add_argument("--model", default=d["model"], help=f"{_models_help()} (default {d['model']})")
    r.add_argument("--dataset", default=d["dataset"], help=f"{_DATASET_HELP} (default {d['dataset']})")
    r.add_argument("--corruption", "--corruptions", dest="corruptions", nargs="+", default=_listed(d["corruptions"]),
                   help=f"the variants: {_CORRUPTION_HELP} (default: the paper's five, {_shown(d['corruptions'])})")
    r.add_argument("--label-noise", nargs="+", default=_listed(d["label_noise"]),
                   help=f"label-corruption levels (default {_shown(d['label_noise'])})")
    r.add_argument("--seeds", nargs="+", default=_listed(d["seeds"]),
                   help=f"seeds: several give mean and spread (default {_shown(d['seeds'])})")
    r.add_argument("--devices", nargs="+", default=None, help="one worker per device, e.g. cuda:0 cuda:1")
    r.add_argument("--no-grid", action="store_true", help="skip the Table 1 weight decay / augmentation runs")
    r.add_argument("--grid-weight-decay", type=float, default=d["grid_weight_decay"],
                   help=f"weight decay of the grid (default {_shown(d['grid_weight_decay'])})")
    r.add_argument("--grid-augment", default=d["grid_augment"],
                   help=f"augmentation of the grid (default {d['grid_augment']}; 'none' to skip)")
    r.add_argument("--regularized-random", action="store_true",
                   help="also train random labels with the grid's regularizers (the paper's Appendix E)")
    _add_run_options(r, lists=False)
    _add_common(r, out_default="results")
    r.add_argument("--out", dest="out_dir", help=argparse.SUPPRESS)  # the name of rethink 0.1
    _add_reuse(r)
    r.set_defaults(func=_cmd_randomization_test)


def _parser_measures(sub) -> None:
    from .measures import compute

    d = {k: _default(compute, k) for k in ("seed", "samples", "max_examples")}
    m = sub.add_parser("measures", help="rank complexity measures by how well they predict the generalization gap",
                       description="Compute complexity measures for every run in a results folder and rank them "
                                   "by how well they predict the generalization gap; writes measures.csv, "
                                   "measures.md and measures.png.")
    m.add_argument("results", help="folder of result JSONs (from fit-random, sweep or zoo)")
    m.add_argument("--measures", nargs="+", default=["all"], help=_measures_help())
    m.add_argument("--seed", type=_integer, default=d["seed"],
                   help=f"seed of the Monte-Carlo draws and subsamples (default {d['seed']})")
    m.add_argument("--samples", type=_integer, default=d["samples"],
                   help=f"Monte-Carlo draws per PAC-Bayes evaluation (default {d['samples']})")
    m.add_argument("--max-examples", type=_integer, default=d["max_examples"],
                   help=f"training examples for PAC-Bayes and sharpness (default {d['max_examples']})")
    _add_common(m, out_default=None)
    m.set_defaults(func=_cmd_measures)


def _parser_zoo(sub) -> None:
    from .zoo import ZOO_SETTINGS, zoo

    seeds = _default(zoo, "seeds")
    z = sub.add_parser("zoo", help="train a factorial grid of models (a model zoo) and compute their measures",
                       description="Train every combination of the --grid values for every seed to a common "
                                   "stopping rule, then compute each run's complexity measures (cached per run); "
                                   "`rethink measures DIR` scores the measures. Default grid: rethink.zoo.ZOO_GRID "
                                   "on Fashion-MNIST subsets.")
    z.add_argument("--grid", nargs="+", default=None, metavar="SETTING=V1,V2",
                   help="e.g. model=mlp1x128,mlp2x512 lr=0.01,0.03 batch-size=32,128 (default: the built-in grid)")
    z.add_argument("--dataset", default=ZOO_SETTINGS["dataset"],
                   help=f"{_DATASET_HELP} (default {ZOO_SETTINGS['dataset']}, the default grid's)")
    z.add_argument("--seeds", nargs="+", default=_listed(seeds), help=f"replicate seeds (default {_shown(seeds)})")
    z.add_argument("--devices", nargs="+", default=None, help="one worker per device, e.g. cuda:0 cuda:1, or cpu cpu")
    z.add_argument("--executor", choices=["slurm", "local"], default=None,
                   help="run every job through submitit: on a Slurm cluster, or submitit's local executor")
    z.add_argument("--slurm-partition", default=None, help="Slurm partition (with --executor slurm)")
    z.add_argument("--timeout-min", type=_integer, default=60, help="time limit per job in minutes (executors)")
    z.add_argument("--no-measures", action="store_true", help="train only")
    _add_run_options(z, lists=False)
    _add_common(z, out_default="zoo")
    _add_reuse(z)
    z.set_defaults(func=_cmd_zoo)


def _parser_memorization(sub) -> None:
    from .memorization import memorization

    d = {k: _default(memorization, k) for k in ("model", "dataset", "corruption", "runs", "subset", "seed")}
    mz = sub.add_parser("memorization", help="memorization score of every training example (Feldman & Zhang 2020)",
                        description="Train --runs networks on random --subset fractions of the training pool, all "
                                    "with the same corrupted labels, and estimate every example's memorization "
                                    "score; report its AUROC against the examples whose labels were flipped.")
    mz.add_argument("--model", default=d["model"], help=f"{_models_help()} (default {d['model']})")
    mz.add_argument("--dataset", default=d["dataset"], help=f"{_DATASET_HELP} (default {d['dataset']})")
    mz.add_argument("--corruption", default=d["corruption"],
                    help=f"corruption of every run: {_CORRUPTION_HELP} (default {d['corruption']})")
    mz.add_argument("--runs", type=_integer, default=d["runs"], help=f"fits on random subsets (default {d['runs']})")
    mz.add_argument("--subset", type=float, default=d["subset"],
                    help=f"fraction of the pool per fit (default {_shown(d['subset'])})")
    mz.add_argument("--train-pool", type=_integer, default=None, help="use the first N training images (default all)")
    mz.add_argument("--seed", type=_integer, default=d["seed"], help="seed of the corruption and of run k's subset "
                                                                     f"and initialization (seed + k) (default {d['seed']})")
    mz.add_argument("--influence", action="store_true", help="also the influence of training on test examples")
    mz.add_argument("--devices", nargs="+", default=None, help="one worker per device")
    _add_run_options(mz, lists=False)
    _add_common(mz, out_default="memorization")
    _add_reuse(mz)
    mz.set_defaults(func=_cmd_memorization)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    from ._version import __version__

    parser = _Parser(prog="rethink", description="Randomization tests of Zhang et al. 2017, 'Understanding deep "
                                                 "learning requires rethinking generalization'.")
    parser.add_argument("--version", action="version", version=f"rethink {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="command", parser_class=_Parser)
    _parser_fit_random(sub)
    _parser_sweep(sub)
    _parser_randomization_test(sub)
    _parser_measures(sub)
    _parser_zoo(sub)
    _parser_memorization(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, usage errors (argparse printed the reason)
        return int(e.code or 0) if isinstance(e.code, int) else 1
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 1
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 speaks
        import contextlib

        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            return _run_command(args)
    return _run_command(args)


def _run_command(args) -> int:
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("rethink: error: interrupted (finished runs are kept; rerun with --resume to continue)", file=sys.stderr)
        return 130
    except Exception as e:  # one line, no traceback
        reason = " ".join(str(e).split()) or type(e).__name__
        print(f"rethink: error: {reason}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
