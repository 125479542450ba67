"""One run as one object: its spec, its data as the network sees it, and its files.

A :class:`Run` is made once from a :class:`rethink.spec.RunSpec` and its Dataset. It holds
what every consumer of a run needs and used to rebuild for itself (training, the measures,
memorization's predictions, Rademacher's draws):

- the corruption, parsed once from the spec (:attr:`Run.corruption`);
- the training subset (:attr:`Run.subset`) and the test subset;
- the loaders of the run's view (:meth:`Run.loader`, :meth:`Run.data`): the shuffled,
  augmented training stream, and the evaluation passes over the (corrupted) training set and
  the test set, every one with the spec's crop and normalization;
- its files (:class:`RunFiles`): the result JSON, checkpoint and weights in ``out_dir``, and
  the one answer to "is this run finished, and is it the same run?".
"""

from __future__ import annotations

import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .augment import check_view
from .loader import DEFAULT_MAX_ROTATION, RandomizedLoader
from .results import NewerFormat, Result
from .spec import RunSpec, subset_indices

__all__ = ["Run", "RunData", "RunFiles", "OtherRun", "EVAL_BATCH"]

#: Batch size of the evaluation passes (at least the training batch size).
EVAL_BATCH = 1024


class OtherRun(ValueError):
    """A file in a run's place holds another run (the message names the settings that differ)."""


@dataclass
class RunData:
    """The loaders of one run on one device (see :meth:`Run.data`).

    Attributes:
        train: the training stream (shuffled, augmented as the spec says, the spec's batch size).
        train_eval: one pass over the corrupted training set (no augmentation).
        test_eval: one pass over the test set (None when the dataset has none).
    """

    train: RandomizedLoader
    train_eval: RandomizedLoader
    test_eval: RandomizedLoader | None


class Run:
    """A run: a resolved spec, its Dataset, and optionally its files.

    Args:
        spec: the run's settings (resolved here against the dataset's size).
        dataset: the rethink Dataset it trains on (``spec.dataset`` names it).
        out_dir: the folder of its files (None: none).
        name: its file stem (default ``spec.run_name()``).

    Raises:
        ValueError: a ``test_size`` larger than the test split, a subset larger than the
            training set, a bad name.
    """

    def __init__(self, spec: RunSpec, dataset, *, out_dir: str | Path | None = None, name: str | None = None):
        self.dataset = dataset
        self.spec = spec.resolved(num_train=len(dataset.train))
        #: the corruption with its seed: parsed once, for every loader of the run
        self.corruption = self.spec.corruption_object()
        #: int64 sorted indices of the training images the run uses (None: all)
        self.subset = subset_indices(len(dataset.train), self.spec.train_size, self.spec.subset_seed,
                                     self.spec.train_pool)
        test_size = self.spec.test_size
        if test_size is not None and test_size > len(dataset.test):
            raise ValueError(f"test_size={test_size} exceeds the {len(dataset.test)} test images of "
                             f"{dataset.name!r}")
        #: int64 indices of the test images evaluated (None: all)
        self.test_subset = torch.arange(test_size) if test_size is not None else None
        self.name = name or self.spec.run_name()
        self.files = RunFiles(Path(out_dir), self.name) if out_dir is not None else None

    @classmethod
    def of(cls, spec: RunSpec, dataset=None, *, root=None, out_dir=None, name: str | None = None) -> Run:
        """The run of ``spec`` on ``dataset`` (default: ``spec.dataset`` loaded from ``root``)."""
        from . import datasets as _datasets

        if dataset is None:
            if spec.dataset_fingerprint is not None:
                raise ValueError(f"run {spec.run_name()!r} trained on a user dataset ({spec.dataset!r}): pass it")
            dataset = _datasets.load(spec.dataset, root=root)
        return cls(spec, dataset, out_dir=out_dir, name=name)

    @classmethod
    def of_result(cls, result: Result | str | Path, dataset=None, *, root=None) -> Run:
        """The run a Result (or the path of its JSON) recorded, with its files beside it."""
        r = result if isinstance(result, Result) else Result.load(result)
        out_dir = Path(r.path).parent if r.path is not None else None
        return cls.of(r.spec, dataset, root=root, out_dir=out_dir, name=r.run_name)

    # -- the view ----------------------------------------------------------------------
    @property
    def num_train(self) -> int:
        """Training images the run uses."""
        return int(self.subset.numel()) if self.subset is not None else len(self.dataset.train)

    @property
    def num_test(self) -> int:
        return int(self.test_subset.numel()) if self.test_subset is not None else len(self.dataset.test)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the view the network sees."""
        c, h, w = self.dataset.input_shape
        out_h, out_w, _ = check_view(h, w, self.spec.augment, self.spec.crop,
                                     self.spec.max_rotation or DEFAULT_MAX_ROTATION)  # the loader's one rule
        return c, out_h, out_w

    def loader(self, split: str = "train", *, device: Any = "cpu", train: bool = False,
               dtype: torch.dtype = torch.float32, channels_last: bool = False, rank: int = 0,
               world_size: int = 1, subset: Any = "run", batch_size: int | None = None) -> RandomizedLoader:
        """A loader of the run's view of ``split``.

        ``train=True`` gives the training stream (shuffled with the spec's seed, augmented as
        the spec says, the spec's batch size, this rank's shard); otherwise one evaluation
        pass in index order without augmentation (batches of ``batch_size``, default
        max(spec batch size, :data:`EVAL_BATCH`)). ``subset``: "run" (the run's own), None
        (the whole split) or int64 indices.
        """
        spec = self.spec
        if isinstance(subset, str) and subset == "run":
            subset = self.subset if split == "train" else self.test_subset
        common = dict(crop=spec.crop, normalize=spec.normalize, device=str(device), dtype=dtype,
                      channels_last=channels_last, subset=subset)
        if train:
            if split != "train":
                raise ValueError("only the training split has a training stream")
            return RandomizedLoader(self.dataset, self.corruption, "train", spec.batch_size, True, spec.seed,
                                    spec.augment, rank=rank, world_size=world_size,
                                    max_rotation=spec.max_rotation or DEFAULT_MAX_ROTATION, **common)
        eval_batch = batch_size or max(spec.batch_size, EVAL_BATCH)
        return RandomizedLoader(self.dataset, self.corruption, split, eval_batch, False, spec.seed, **common)

    def data(self, device: Any = "cpu", *, dtype: torch.dtype = torch.float32, channels_last: bool = False,
             rank: int = 0, world_size: int = 1) -> RunData:
        """The training stream and both evaluation passes on ``device`` (:class:`RunData`)."""
        kw = dict(device=device, dtype=dtype, channels_last=channels_last)
        train = self.loader("train", train=True, rank=rank, world_size=world_size, **kw)
        train_eval = self.loader("train", **kw)
        test_eval = self.loader("test", **kw) if len(self.dataset.test) > 0 else None
        return RunData(train, train_eval, test_eval)

    def training_tensors(self, device: Any = "cpu", subset: Any = "run") -> tuple[torch.Tensor, torch.Tensor]:
        """The training set as the network saw it (no augmentation): float32 x (N, C, H', W')
        and int64 (corrupted) labels y (N,), prepared on the CPU, then moved to ``device``."""
        x, y = self.loader("train", device="cpu", subset=subset).materialize()
        return x.to(device), y.long().to(device)

    def __repr__(self) -> str:
        return (f"Run({self.name!r}, dataset={self.dataset.name!r}, num_train={self.num_train}, "
                f"files={str(self.files.out_dir) if self.files else None})")


@dataclass(frozen=True)
class RunFiles:
    """The files of a run in ``out_dir``: ``<name>.json`` (the Result), ``<name>.ckpt.pt``
    (the checkpoint of an unfinished run) and ``<name>.pt`` (final and initial weights)."""

    out_dir: Path
    name: str

    @property
    def json(self) -> Path:
        return self.out_dir / f"{self.name}.json"

    @property
    def ckpt(self) -> Path:
        return self.out_dir / f"{self.name}.ckpt.pt"

    @property
    def pt(self) -> Path:
        return self.out_dir / f"{self.name}.pt"

    def result(self, spec: RunSpec, *, set_aside: bool = True) -> Result | None:
        """The Result in this run's place, or None when there is none. A damaged file is
        renamed to ``<file>.damaged`` with a warning (``set_aside``) or left for the fit to
        set aside, and None returned.

        Raises:
            NewerFormat: the file is of a newer rethink.
            OtherRun: it holds a run of other settings (the message names them).
        """
        path = self.json
        if not path.exists():
            return None
        try:
            done = Result.load(path)
        except NewerFormat:
            raise
        except ValueError as e:
            if set_aside:
                set_aside_file(path, e)
            return None
        check_same_spec(spec, done.config, path)
        return done

    def finished(self, spec: RunSpec, *, set_aside: bool = True, weights: bool = True) -> Result | None:
        """The completed Result of ``spec`` whose weights file is there (any completed Result
        of it when ``weights`` is False), else None (raises as :meth:`result` does)."""
        done = self.result(spec, set_aside=set_aside)
        if done is None or done.status != "completed" or (weights and not self.pt.exists()):
            return None
        return done


def check_same_spec(spec: RunSpec, config: dict, path: Path) -> None:
    """Raise :class:`OtherRun` unless ``config`` (a result's or checkpoint's) is ``spec``'s run."""
    try:
        theirs = RunSpec.from_config(config)
    except (ValueError, TypeError) as e:
        raise OtherRun(f"{path} is not a result of a rethink run ({e})") from None
    diff = spec.diff(theirs)
    if diff:
        what = ", ".join(f"{k} is {b!r} there but {a!r} here" for k, a, b in diff)
        raise OtherRun(f"{path} is from another run: {what}; give another run_name or out_dir")


def set_aside_file(path: Path, error: Exception) -> None:
    """Rename a damaged file to ``<name>.damaged`` (numbered if taken) and warn, naming it."""
    target = path.with_name(path.name + ".damaged")
    k = 1
    while target.exists():
        k += 1
        target = path.with_name(f"{path.name}.damaged{k}")
    shutil.move(str(path), str(target))
    warnings.warn(f"{path} is damaged ({error}); kept as {target.name} and the run starts over", stacklevel=3)
