"""``rethink.Result``: what one training run of the randomization test produced.

A Result is plain data (JSON on disk) so that plots, tables and measures can be made
from any set of result files without the models that produced them.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._io import atomic_write_json

#: Version of the on-disk result format. ``Result.load`` refuses newer files.
FORMAT_VERSION = 1

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
        status: ``"completed"``, ``"running"`` (an unfinished run's latest state) or
            ``"failed"`` (e.g. a NaN loss; ``error`` says why).
        error: the reason for a failed run, else None.
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
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "<dict>") -> Result:
        version = d.get("format_version")
        if not isinstance(version, int):
            raise ValueError(f"{source}: not a rethink result (no integer format_version)")
        if version > FORMAT_VERSION:
            raise ValueError(
                f"{source}: result format_version {version} is newer than this rethink reads "
                f"({FORMAT_VERSION}); upgrade rethink"
            )
        return cls(
            history=list(d.get("history", [])),
            steps_to_fit=d.get("steps_to_fit"),
            epochs_to_fit=d.get("epochs_to_fit"),
            config=dict(d.get("config", {})),
            status=d.get("status", "completed"),
            error=d.get("error"),
            format_version=version,
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Write the result as JSON, atomically (temporary file, then rename). Returns the path."""
        path = Path(path)
        atomic_write_json(path, self.to_dict())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Result:
        """Read a result written by :meth:`save`. Raises ValueError for a newer format or a non-result."""
        path = Path(path)
        with open(path, encoding="utf-8") as f:
            try:
                d = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: not valid JSON ({e})") from e
        if not isinstance(d, dict):
            raise ValueError(f"{path}: not a rethink result")
        return cls.from_dict(d, source=str(path))

    def to_dataframe(self):
        """The history as a pandas DataFrame (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as e:
            raise ImportError("Result.to_dataframe needs pandas: pip install pandas") from e
        return pd.DataFrame(self.history)
