"""``rethink.Result``: what one training run of the randomization test produced.

A Result is plain data (JSON on disk) so that plots, tables and measures can be made
from any set of result files without the models that produced them.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._check import check_choice
from ._io import atomic_write_json

#: Version of the on-disk result format. ``Result.load`` refuses newer files and reads
#: every older one (format 1: rethink 0.1, without ``loss_log``).
FORMAT_VERSION = 2

class DamagedFile(ValueError):
    """A result file that cannot be read as one (truncated, not UTF-8, fields of the wrong
    type); the message names the file."""


class NewerFormat(ValueError):
    """A result file of a newer format than this rethink reads (never set aside or
    overwritten: a newer rethink wrote it); the message names the file."""


#: The statuses of a run (see :attr:`Result.status`).
STATUSES = ("completed", "running", "interrupted", "failed")

#: Keys of one ``Result.history`` entry (one per epoch).
HISTORY_KEYS = ("epoch", "step", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "seconds")


@dataclass
class Result:
    """The record of one ``fit_random`` run.

    Attributes:
        history: one dict per epoch with keys ``epoch`` (int, 1-based), ``step`` (int, SGD
            steps taken so far), ``lr`` (float, learning rate used in that epoch's last
            step), ``train_loss``/``train_acc`` (float, whole corrupted training split, eval
            mode, no augmentation; accuracy in [0, 1]), ``test_loss``/``test_acc`` (float,
            test split; NaN when there is none) and ``seconds`` (float, wall time since the
            start of training).
        steps_to_fit: SGD steps until training accuracy first reached the target, or None.
        epochs_to_fit: epochs until then, or None.
        config: every setting of the run (model, dataset, corruption string, seed, lr, ...)
            plus ``versions`` (rethink, torch, device name).
        status: ``"completed"``, ``"running"`` (an unfinished run's latest state), ``"interrupted"``
            (stopped by KeyboardInterrupt; its checkpoint resumes it) or
            ``"failed"`` (e.g. a NaN loss; ``error`` says why).
        error: the reason for a failed run, else None.
        loss_log: the training loss as the optimizer saw it: ``[step, loss]`` pairs, the mean
            minibatch cross-entropy over each window of ``config["loss_window"]`` SGD steps
            ending at ``step`` (Figure 1a's curves; empty for results of rethink 0.1).
        path: the file the result was read from or written to (in memory only), else None.
        model: the trained ``nn.Module`` (in memory only; not written by :meth:`save`).
        init_state: the model's ``state_dict`` at initialization (in memory only), for
            measures such as distance from initialization.
    """

    history: list[dict[str, Any]] = field(default_factory=list)
    steps_to_fit: int | None = None
    epochs_to_fit: int | None = None
    config: dict[str, Any] = field(default_factory=dict)
    status: str = "completed"
    error: str | None = None
    format_version: int = FORMAT_VERSION
    loss_log: list[list[float]] = field(default_factory=list)
    path: Any = field(default=None, repr=False, compare=False)
    model: Any = field(default=None, repr=False, compare=False)
    init_state: Any = field(default=None, repr=False, compare=False)

    @property
    def final(self) -> dict[str, Any]:
        """The last epoch's metrics plus ``gap`` (train_acc - test_acc), or {} with no history."""
        if not self.history:
            return {}
        last = dict(self.history[-1])
        last["gap"] = last.get("train_acc", math.nan) - last.get("test_acc", math.nan)
        return last

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "status": self.status,
            "error": self.error,
            "steps_to_fit": self.steps_to_fit,
            "epochs_to_fit": self.epochs_to_fit,
            "config": self.config,
            "history": self.history,
            "loss_log": self.loss_log,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "<dict>") -> Result:
        version = d.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise ValueError(f"{source}: not a rethink result (no integer format_version)")
        if version > FORMAT_VERSION:
            raise NewerFormat(
                f"{source}: result format_version {version} is newer than this rethink reads "
                f"({FORMAT_VERSION}); upgrade rethink"
            )
        kinds = {"history": list, "config": dict, "loss_log": list, "status": str}
        for k, kind in kinds.items():
            if k in d and not isinstance(d[k], kind):
                raise DamagedFile(f"{source}: damaged result: {k} must be a {kind.__name__}, got {d[k]!r:.80}")
        if d.get("status", "completed") not in STATUSES:
            raise DamagedFile(f"{source}: damaged result: status {d['status']!r} is not one of {STATUSES}")
        if not all(isinstance(h, dict) for h in d.get("history", [])) or \
                not all(isinstance(v, list) for v in d.get("loss_log", [])):
            raise DamagedFile(f"{source}: damaged result: every history entry must be a dict and every "
                              f"loss_log entry a list")
        return cls(
            history=list(d.get("history", [])),
            steps_to_fit=d.get("steps_to_fit"),
            epochs_to_fit=d.get("epochs_to_fit"),
            config=dict(d.get("config", {})),
            status=d.get("status", "completed"),
            error=d.get("error"),
            format_version=version,
            loss_log=[list(v) for v in d.get("loss_log", [])],
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Write the result as JSON, atomically (temporary file, then rename). Returns the path."""
        path = Path(path)
        atomic_write_json(path, self.to_dict())
        self.path = path
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Result:
        """Read a result written by :meth:`save`. Raises ValueError for a newer format or a
        non-result, and :class:`DamagedFile` (a ValueError naming the file) for a file that is
        truncated, not UTF-8 or has fields of the wrong type."""
        path = Path(path)
        try:
            d = json.loads(path.read_bytes().decode("utf-8"))
        except UnicodeDecodeError as e:
            raise DamagedFile(f"{path}: not valid UTF-8 text, so not a result ({e})") from None
        except json.JSONDecodeError as e:
            raise DamagedFile(f"{path}: not valid JSON ({e})") from None
        except RecursionError:
            raise DamagedFile(f"{path}: not valid JSON (nested too deeply)") from None
        if not isinstance(d, dict):
            raise ValueError(f"{path}: not a rethink result")
        r = cls.from_dict(d, source=str(path))
        r.path = path
        return r

    @property
    def spec(self):
        """The :class:`rethink.spec.RunSpec` of this run (from its config)."""
        from .spec import RunSpec

        return RunSpec.from_config(self.config)

    @property
    def run_name(self) -> str | None:
        return self.config.get("run_name")

    def summary(self) -> dict[str, Any]:
        """The facts of this run that tables, figures and reports use, as a flat dict.

        Keys: ``run_name``, ``model``, ``dataset``, ``corruption`` (the config string),
        ``variant`` (:attr:`rethink.Corruption.variant`: "true", "random_labels", "labels",
        "shuffled_pixels", "random_pixels", "gaussian"), ``label_noise`` (the label
        corruption probability for label variants, else None), ``seed``, ``weight_decay``,
        ``augment`` (None without augmentation), ``dropout``, ``status``, ``epochs``,
        ``steps``, ``steps_to_fit``, ``epochs_to_fit``, ``train_loss``, ``train_acc``,
        ``test_loss``, ``test_acc`` (final epoch; NaN without history), ``gap``,
        ``best_test_acc`` and ``best_test_epoch`` (the best test accuracy over the whole
        schedule: what early stopping could have kept), ``seconds``, ``num_classes``,
        ``chance`` (1/num_classes or NaN).
        """
        from .corruption import Corruption

        c = self.config or {}
        corr = Corruption.parse(c.get("corruption") or "none")
        variant = corr.variant
        fin = self.final
        nan = math.nan
        num_classes = c.get("num_classes")
        tests = [(h.get("test_acc", nan), h.get("epoch")) for h in self.history]
        tests = [(a, e) for a, e in tests if a is not None and not math.isnan(a)]
        best = max(tests, key=lambda t: t[0]) if tests else (nan, None)
        aug = c.get("augment")
        return {
            "run_name": c.get("run_name"),
            "model": c.get("model"),
            "dataset": c.get("dataset"),
            "corruption": c.get("corruption"),
            "variant": variant,
            "label_noise": corr.label_probability if corr.is_label_corruption or variant == "true" else None,
            "seed": c.get("seed"),
            "weight_decay": float(c.get("weight_decay") or 0.0),
            "augment": None if aug in (None, "", "none") else str(aug),
            "dropout": float(c.get("dropout") or 0.0),
            "status": self.status,
            "epochs": fin.get("epoch", 0) if fin else 0,
            "steps": fin.get("step", 0) if fin else 0,
            "steps_to_fit": self.steps_to_fit,
            "epochs_to_fit": self.epochs_to_fit,
            "train_loss": float(fin.get("train_loss", nan)) if fin else nan,
            "train_acc": float(fin.get("train_acc", nan)) if fin else nan,
            "test_loss": float(fin.get("test_loss", nan)) if fin else nan,
            "test_acc": float(fin.get("test_acc", nan)) if fin else nan,
            "gap": float(fin.get("gap", nan)) if fin else nan,
            "best_test_acc": float(best[0]),
            "best_test_epoch": best[1],
            "seconds": float(fin.get("seconds", nan)) if fin else nan,
            "num_classes": num_classes,
            "chance": 1.0 / num_classes if isinstance(num_classes, int) and num_classes > 0 else nan,
        }

    def to_dataframe(self):
        """The history as a pandas DataFrame (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as e:
            raise ImportError("Result.to_dataframe needs pandas: pip install pandas") from e
        return pd.DataFrame(self.history)


def load_model(result_or_path: Result | str | os.PathLike, device: Any = "cpu") -> tuple[Any, dict[str, Any]]:
    """Rebuild the trained model of a run: ``(model in eval mode, init_state)``.

    Accepts a Result (its in-memory model when present, else the ``.pt`` file beside the
    JSON it was read from, or in its ``config["out_dir"]``), or the path of a result JSON
    (the ``.pt`` beside it). Raises FileNotFoundError when the weights file is missing
    (the message names it) and ValueError when the run used a model that is not in
    :func:`rethink.models.names` or the weights file is damaged.
    """
    if isinstance(result_or_path, Result):
        r = result_or_path
        if r.model is not None:
            return r.model, r.init_state
        if r.path is not None:
            pt = Path(r.path).with_suffix(".pt")
        elif r.config.get("out_dir"):
            pt = Path(r.config["out_dir"]) / f"{r.config['run_name']}.pt"
        else:
            raise ValueError("result has no model in memory and no file to load its weights from")
    else:
        from ._check import check_path

        p = check_path("result_or_path (a Result or the path of its JSON)", result_or_path)
        pt = p.with_suffix(".pt") if p.suffix == ".json" else p
    import torch

    from . import models as _models

    if not pt.exists():
        raise FileNotFoundError(f"weights file {str(pt)!r} not found")
    try:
        saved = torch.load(pt, map_location="cpu", weights_only=False)
        name = saved["model"]
    except (AttributeError, ImportError) as e:  # a user model's class that is not importable here
        raise ValueError(f"weights file {str(pt)!r} holds a user model that cannot be imported here "
                         f"({type(e).__name__}: {e})") from e
    except Exception as e:  # noqa: BLE001 - a truncated or foreign file
        raise ValueError(f"weights file {str(pt)!r} is damaged or not rethink's ({type(e).__name__}: {e})") from e
    if saved.get("user_model") is not None:
        from .inputs import rebuild

        net = rebuild(saved["user_model"], saved["input_shape"], saved["num_classes"])
    elif name not in _models.names():
        raise ValueError(f"run used model {name!r}, which cannot be rebuilt here (a class or factory that is not "
                         f"importable by name); load {str(pt)!r} with torch.load and apply 'model_state' to your "
                         f"module")
    else:
        net = _models.create(name, tuple(saved["input_shape"]), int(saved["num_classes"]),
                             dropout=float(saved.get("dropout", 0.0)))
    net.load_state_dict(saved["model_state"])
    return net.to(device).eval(), saved["init_state"]


def load_runs(out_dir: str | os.PathLike | Iterable, status: str | Iterable[str] | None = None,
              *, on_error: str = "warn") -> list[Result]:
    """The results in a folder (every ``*.json`` that is a rethink result, sorted by name), or
    the results given as a list of Results / result paths.

    Args:
        status: keep only results with this status ("completed", "running", "interrupted", "failed") or
            any of these statuses; None keeps all.
        on_error: a damaged JSON file (e.g. truncated by a crash) is skipped with a warning
            ("warn"), skipped silently ("skip") or raises ("raise"). JSON files that are not
            rethink results (e.g. a cache) are always skipped.

    Each Result read from a file has ``Result.path`` set. Raises ValueError for a result
    written by a newer rethink, for a folder that does not exist, and for an unknown
    ``status`` or ``on_error``.
    """
    if status is not None and not isinstance(status, str) and not (
            isinstance(status, Iterable) and all(isinstance(s, str) for s in status)):
        raise ValueError(f"status must be one of {STATUSES}, a list of them or None, got {status!r}")
    statuses = {status} if isinstance(status, str) else (set(status) if status is not None else None)
    for s in statuses or ():
        check_choice("status", s, STATUSES)
    check_choice("on_error", on_error, ("warn", "skip", "raise"))
    if isinstance(out_dir, (str, os.PathLike)):
        folder = Path(out_dir)
        if not folder.is_dir():
            raise ValueError(f"results folder {str(folder)!r} does not exist or is not a folder")
        items: list[Any] = sorted(folder.glob("*.json"))
    else:
        items = list(out_dir)
    out = []
    for item in items:
        if isinstance(item, Result):
            r = item
        elif isinstance(item, (str, os.PathLike)):
            try:
                r = Result.load(item)
            except ValueError as e:
                if isinstance(e, NewerFormat) or on_error == "raise":
                    raise
                if isinstance(e, DamagedFile) and on_error == "warn":
                    warnings.warn(f"skipping a damaged result file: {e}", stacklevel=2)
                continue
        else:
            raise TypeError(f"expected Results or result paths, got {type(item).__name__}")
        if statuses is None or r.status in statuses:
            out.append(r)
    return out
