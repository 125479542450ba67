"""The model of one training run: :class:`RunSpec`, its name and identity, and the reader
of a folder of results.

A :class:`RunSpec` holds every setting of a fit (model, dataset, the corruption with its
seed, optimizer, schedule, stopping rule, augmentation, crop, normalization, dropout,
training subset, dtype, seed). Everything else derives from it: the file name of the
run (:meth:`RunSpec.run_name`, readable settings plus a short hash of all of them), the
``config`` dict stored in its result, and the identity of a finished run: a result on
disk is reused only when its spec equals the one asked for (:meth:`RunSpec.diff` names
the settings that differ otherwise). Settings that do not change what is computed
(device, progress bars, output folder, ``torch.compile``) are not part of a spec.

:func:`load_runs` is the one reader of a results folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from dataclasses import dataclass, fields
from typing import Any

from . import _build, paper
from ._check import check_int, check_number, check_seed
from .corruption import Corruption
from .inputs import ModelSource, as_dataset, as_model, dataset_fingerprint, module_fingerprint
from .loader import DEFAULT_MAX_ROTATION, NORMALIZE, augment_parts, parse_augment

__all__ = ["RunSpec", "Subject", "DEFAULT_MAX_EPOCHS", "subset_indices", "check_number", "check_seed",
           "module_fingerprint", "dataset_fingerprint"]

#: Default ``max_epochs`` per dataset name; other datasets: 1000 under 10,000 training
#: images, else 200. Digits with random labels needs about 600 epochs with MLP 1x512 under
#: the default schedule; CIFAR-10 and MNIST fit in far fewer.
DEFAULT_MAX_EPOCHS = {"digits": 1000, "cifar10": 200, "mnist": 200, "fashion_mnist": 200}

_DTYPES = {"float32": "float32", "fp32": "float32", "torch.float32": "float32",
           "bfloat16": "bfloat16", "bf16": "bfloat16", "torch.bfloat16": "bfloat16"}
_NAME_OK = re.compile(r"[A-Za-z0-9._-]+")
_INT64 = 2**63 - 1  # the largest count a tensor index holds


@dataclass(frozen=True)
class RunSpec:
    """Every setting of one fit. Construct with keywords; unknown names raise TypeError and
    bad values raise ValueError naming the setting, before anything is loaded or written.

    Attributes:
        model: a name from :func:`rethink.models.names`, or the class name of a user
            ``nn.Module`` (then ``model_fingerprint`` identifies it).
        dataset: a name for :func:`rethink.datasets.load`, or the name of a user Dataset
            (then ``dataset_fingerprint`` identifies it).
        corruption: the corruption's string form (``"labels:0.4"``; see
            :meth:`rethink.Corruption.parse`), stored canonically.
        seed: model initialization, batch order, augmentation draws, training subset and,
            unless ``corruption_seed`` is given, the corruption's draw.
        corruption_seed: seed of the corruption's draw (default: ``seed``).
        lr: initial learning rate (default: the paper's, 0.1 for the Inception models, else 0.01).
        momentum, weight_decay: SGD (paper: 0.9, 0).
        lr_decay, lr_decay_examples: the learning rate is multiplied by ``lr_decay`` per
            ``lr_decay_examples`` training examples seen, applied at epoch boundaries (the
            paper's 0.95 per CIFAR-10 epoch of 50,000).
        batch_size: global batch size.
        max_epochs: epoch budget (default :data:`DEFAULT_MAX_EPOCHS`).
        stop_at_train_acc: stop once the accuracy on the whole corrupted training set (eval
            mode, no augmentation) reaches this value; None trains the whole budget.
        stop_at_train_loss: stop once the cross-entropy on it is at most this (None: unused).
            With both set, the run stops when either target is reached.
        epochs_after_fit: keep training this many epochs after the stopping target is first
            reached (test accuracy over the whole schedule is recorded).
        augment: None or tokens joined with "+": "crop", "flip", "rotate", "crop_flip"
            (:func:`rethink.loader.parse_augment`).
        crop: output size (the centre crop; with "crop" the random window's size).
        max_rotation: degrees of "rotate" (default 25; only with "rotate").
        normalize: "per_image" (the paper's), "per_channel" or None.
        dropout: dropout probability in the model (0: none, the paper's setting).
        train_size: train on a random subset of this many training images (None: all).
        train_pool: draw that subset from the first ``train_pool`` training images only
            (None: from all of them); without ``train_size``, train on exactly those.
        subset_seed: seed of the subset (default: ``seed``).
        test_size: measure test accuracy on the first ``test_size`` test images only (None: all).
        dtype: "float32" or "bfloat16" (bf16 autocast).
        loss_window: the training loss is logged as the mean minibatch loss over windows
            of this many SGD steps (Figure 1a's x-axis).
        model_fingerprint, dataset_fingerprint: identity of a user module / Dataset (a
            hash of its structure and initial weights / of its data), None for names.
        threads: torch's CPU threads during the run (on a CPU the thread count changes the
            floating-point sums, so the numbers). None: the process's setting when the run
            starts, which the result file records (``config["versions"]["torch_threads"]``);
            a finished run is then reused whatever thread count made it. Given, it is set for the run, is part of the run's name,
            and a run of another thread count is another run.
    """

    model: str = "mlp1x512"
    dataset: str = "digits"
    corruption: str = "random_labels"
    seed: int = 0
    corruption_seed: int | None = None
    lr: float | None = None
    momentum: float = paper.MOMENTUM
    weight_decay: float = 0.0
    lr_decay: float = paper.LR_DECAY_PER_EPOCH
    lr_decay_examples: int = paper.CIFAR10_TRAIN_IMAGES
    batch_size: int = paper.BATCH_SIZE
    max_epochs: int | None = None
    stop_at_train_acc: float | None = 1.0
    stop_at_train_loss: float | None = None
    epochs_after_fit: int = 0
    augment: str | None = None
    crop: int | None = None
    max_rotation: int | None = None
    normalize: str | None = "per_image"
    dropout: float = 0.0
    train_size: int | None = None
    train_pool: int | None = None
    subset_seed: int | None = None
    test_size: int | None = None
    dtype: str = "float32"
    loss_window: int = 50
    model_fingerprint: str | None = None
    dataset_fingerprint: str | None = None
    threads: int | None = None

    def __post_init__(self):
        from .datasets import names as dataset_names
        from .models import names as model_names

        set_ = object.__setattr__
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"model must be a model name, got {self.model!r}")
        if self.model_fingerprint is None and self.model not in model_names():
            raise ValueError(f"unknown model {self.model!r}; choose one of: {', '.join(model_names())}")
        if not isinstance(self.dataset, str) or not self.dataset:
            raise ValueError(f"dataset must be a dataset name, got {self.dataset!r}")
        if self.dataset_fingerprint is None and self.dataset.lower() not in dataset_names():
            raise ValueError(f"unknown dataset {self.dataset!r}: expected one of {dataset_names()}")
        if self.dataset_fingerprint is None:
            set_(self, "dataset", self.dataset.lower())
        set_(self, "corruption", str(Corruption.parse(self.corruption)))
        set_(self, "seed", check_seed("seed", self.seed))
        for name in ("corruption_seed", "subset_seed"):
            if getattr(self, name) is not None:
                set_(self, name, check_seed(name, getattr(self, name)))
        self._check_numbers()
        set_(self, "augment", parse_augment(self.augment))
        if self.crop is not None:
            check_number("crop", self.crop, low=1, integer=True)
            set_(self, "crop", int(self.crop))
        self._check_crop()
        rotate = augment_parts(self.augment)["rotate"]
        if self.max_rotation is not None and not rotate:
            raise ValueError(f"max_rotation={self.max_rotation!r} needs augment with 'rotate', got "
                             f"augment={self.augment!r}")
        if rotate:
            rot = DEFAULT_MAX_ROTATION if self.max_rotation is None else self.max_rotation
            check_number("max_rotation", rot, low=1, high=_build._C.max_rotation, integer=True)  # the kernels' limit
            set_(self, "max_rotation", int(rot))
        norm = None if self.normalize in ("none", "None") else self.normalize
        if not (norm is None or isinstance(norm, str)) or norm not in NORMALIZE:
            raise ValueError(f"unknown normalize {self.normalize!r}: expected 'per_image', 'per_channel' or None")
        set_(self, "normalize", norm)
        dtype = _DTYPES.get(str(self.dtype) if self.dtype is not None else "float32")
        if dtype is None:
            raise ValueError(f"unsupported dtype {self.dtype!r}: use 'float32' or 'bfloat16' (bf16 autocast)")
        set_(self, "dtype", dtype)
        for name in ("model_fingerprint", "dataset_fingerprint"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, str) and _NAME_OK.fullmatch(v)):
                raise ValueError(f"{name} must be a short string of A-Z a-z 0-9 . _ -, got {v!r}")

    def _check_crop(self) -> None:
        """crop against the image size of a named dataset, by the loader's one check of a view
        (:func:`rethink.augment.check_view`); user datasets are checked when loaded."""
        from .augment import check_view
        from .datasets import SHAPES

        if self.dataset_fingerprint is not None or self.dataset not in SHAPES:
            return
        _, h, w = SHAPES[self.dataset][0]
        try:
            check_view(h, w, self.augment, self.crop, DEFAULT_MAX_ROTATION)
        except ValueError as e:
            raise ValueError(f"{e} (dataset {self.dataset!r})") from None

    def _check_numbers(self) -> None:
        set_ = object.__setattr__
        if self.lr is not None:
            check_number("lr", self.lr, low=0, low_open=True)
        check_number("momentum", self.momentum, low=0)
        check_number("weight_decay", self.weight_decay, low=0)
        check_number("lr_decay", self.lr_decay, low=0, high=1, low_open=True)
        check_number("lr_decay_examples", self.lr_decay_examples, low=1, high=_INT64, integer=True)
        check_number("batch_size", self.batch_size, low=1, high=2**31 - 1, integer=True)
        if self.max_epochs is not None:
            check_number("max_epochs", self.max_epochs, low=1, high=2**32 - 1, integer=True)
        if self.stop_at_train_acc is not None:
            check_number("stop_at_train_acc", self.stop_at_train_acc, low=0, high=1, low_open=True)
        if self.stop_at_train_loss is not None:
            check_number("stop_at_train_loss", self.stop_at_train_loss, low=0, low_open=True)
        check_number("epochs_after_fit", self.epochs_after_fit, low=0, high=2**32 - 1, integer=True)
        check_number("dropout", self.dropout, low=0, high=1, high_open=True)
        check_number("loss_window", self.loss_window, low=1, high=_INT64, integer=True)
        for name in ("train_size", "train_pool", "test_size"):
            if getattr(self, name) is not None:
                check_number(name, getattr(self, name), low=1, high=_INT64, integer=True)
        if self.train_size is not None and self.train_pool is not None and self.train_size > self.train_pool:
            raise ValueError(f"train_size={self.train_size} exceeds train_pool={self.train_pool}")
        if self.threads is not None:
            check_number("threads", self.threads, low=1, high=4096, integer=True)
        for name in ("lr_decay_examples", "batch_size", "max_epochs", "epochs_after_fit", "loss_window",
                     "train_size", "train_pool", "test_size", "threads"):
            if getattr(self, name) is not None:
                set_(self, name, int(getattr(self, name)))
        for name in ("momentum", "weight_decay", "lr_decay", "dropout", "lr", "stop_at_train_acc",
                     "stop_at_train_loss"):
            if getattr(self, name) is not None:
                set_(self, name, float(getattr(self, name)))

    # -- derived facts -------------------------------------------------------------
    def replace(self, **changes: Any) -> RunSpec:
        """A copy with ``changes`` applied (validated like a new spec)."""
        return dataclasses.replace(self, **changes)

    def resolved(self, num_train: int | None = None) -> RunSpec:
        """The spec with every default filled in (lr, max_epochs, corruption_seed,
        subset_seed). ``num_train`` (the training-set size) is needed only for the default
        ``max_epochs`` of a dataset without an entry in :data:`DEFAULT_MAX_EPOCHS`."""
        from .models import DEFAULT_LR

        lr = self.lr if self.lr is not None else DEFAULT_LR.get(self.model, 0.01)
        max_epochs = self.max_epochs
        if max_epochs is None:
            max_epochs = DEFAULT_MAX_EPOCHS.get(self.dataset)
            if max_epochs is None:
                if num_train is None:
                    raise ValueError(f"the default max_epochs of dataset {self.dataset!r} depends on its size: "
                                     f"give max_epochs or resolve the spec with num_train")
                max_epochs = 1000 if num_train < 10_000 else 200
        return self.replace(lr=float(lr), max_epochs=int(max_epochs),
                            corruption_seed=self.seed if self.corruption_seed is None else self.corruption_seed,
                            subset_seed=self.seed if self.subset_seed is None else self.subset_seed)

    @property
    def is_resolved(self) -> bool:
        return None not in (self.lr, self.max_epochs, self.corruption_seed, self.subset_seed)

    def corruption_object(self) -> Corruption:
        """The :class:`rethink.Corruption` of the run, with its seed."""
        seed = self.seed if self.corruption_seed is None else self.corruption_seed
        return dataclasses.replace(Corruption.parse(self.corruption), seed=seed)

    def to_dict(self) -> dict[str, Any]:
        """Every setting as a JSON-ready dict (the spec part of a result's ``config``)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def key(self) -> str:
        """A short hash (8 hex digits) of every setting of the resolved spec: the identity.

        Settings at their field default are left out of the hash, so a setting added to
        RunSpec later (with a default that keeps the old behaviour) does not rename runs."""
        spec = self if self.is_resolved else self.resolved()
        defaults = {f.name: f.default for f in fields(self)}
        kept = {k: v for k, v in spec.to_dict().items() if v != defaults[k]}
        if Corruption.parse(spec.corruption).on_view and (spec.crop is not None or spec.augment is not None):
            # shuffled pixels permute the cropped view since rethink 0.3 (before: the whole
            # image, then the crop): such runs of earlier versions answer another question
            kept["shuffle_on_view"] = 1
        text = json.dumps(kept, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    def run_name(self) -> str:
        """``{model}_{dataset}_{corruption}_wd{weight_decay}_{augment}_s{seed}-{key}``, every
        character outside ``[A-Za-z0-9._-]`` replaced by ``-``. Two specs share a name only
        when all their settings agree."""
        aug = self.augment.replace("+", "-") if self.augment else "noaug"
        name = f"{self.model}_{self.dataset}_{self.corruption}_wd{self.weight_decay:g}_{aug}_s{self.seed}"
        return re.sub(r"[^A-Za-z0-9._-]", "-", name) + f"-{self.key()}"

    def diff(self, other: RunSpec) -> list[tuple[str, Any, Any]]:
        """``[(setting, value here, value there)]`` for every setting that differs (``threads``
        only when both specs give it)."""
        a = self if self.is_resolved else self.resolved()
        b = other if other.is_resolved else other.resolved()
        return [(f.name, getattr(a, f.name), getattr(b, f.name)) for f in fields(self)
                if getattr(a, f.name) != getattr(b, f.name)
                and not (f.name == "threads" and None in (a.threads, b.threads))]

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> RunSpec:
        """The spec of a result's ``config`` (results of rethink 0.1 too: settings it did not
        have take the values 0.1 used). Raises ValueError for a config that is not a run's."""
        if not isinstance(config, dict):
            raise ValueError(f"not a run's config (a dict of settings): got {type(config).__name__}")
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in config.items() if k in known}
        if "model" not in kw or "dataset" not in kw:
            raise ValueError(f"not a run's config (no model or dataset): {sorted(config)[:8]}")
        from .datasets import names as dataset_names
        from .models import names as model_names

        if kw["model"] not in model_names() and kw.get("model_fingerprint") is None:
            kw["model_fingerprint"] = "unknown"
        if str(kw["dataset"]).lower() not in dataset_names() and kw.get("dataset_fingerprint") is None:
            kw["dataset_fingerprint"] = "unknown"
        if "subset_seed" not in config:  # rethink 0.1 trained on the whole training set
            kw["subset_seed"] = kw.get("seed", 0)
        return cls(**kw)


def subset_indices(num_train: int, train_size: int | None, seed: int, train_pool: int | None = None):
    """The training subset of a run: int64 sorted indices of ``train_size`` images drawn with
    ``seed`` from the first ``train_pool`` (default: all ``num_train``) training images; the
    whole pool without ``train_size``; None (every image) without either.

    Raises ValueError when ``train_size`` or ``train_pool`` exceeds ``num_train``."""
    import torch

    num_train = check_int("num_train", num_train, low=0)
    seed = check_seed("seed", seed)
    for name, v in (("train_pool", train_pool), ("train_size", train_size)):
        if v is not None:
            check_int(name, v, low=1)
    if train_size is None and train_pool is None:
        return None
    pool = num_train if train_pool is None else train_pool
    for name, v in (("train_pool", train_pool), ("train_size", train_size)):
        if v is not None and v > num_train:
            raise ValueError(f"{name}={v} exceeds the {num_train} training images of the dataset")
    if train_size is None:
        return torch.arange(pool)
    g = torch.Generator().manual_seed(int(seed) ^ 0x5B5E7)
    return torch.randperm(pool, generator=g)[:train_size].sort().values


# ----------------------------------------------------------------------------- the subject of runs


@dataclass(frozen=True)
class Subject:
    """The model and the data that a command's runs share, read once: every spec it makes
    names them (with their fingerprints) and every job it makes carries the user objects.

    Attributes:
        model: the :class:`ModelSource`.
        dataset: ``spec.dataset``: the name rethink loads, or the user dataset's name.
        data: the user Dataset (None for a name, loaded by each run itself).
        dataset_fingerprint: ``spec.dataset_fingerprint`` (None for a name).
    """

    model: ModelSource
    dataset: str
    data: Any = None
    dataset_fingerprint: str | None = None

    @classmethod
    def of(cls, model: Any, dataset: Any, root: str | os.PathLike | None = None) -> Subject:
        """The subject of ``model`` and ``dataset`` (anything :func:`rethink.inputs.as_model`
        and :func:`rethink.inputs.as_dataset` take). A dataset name is not loaded here."""
        source = as_model(model)
        if isinstance(dataset, str):
            return cls(source, dataset)
        data, fp = as_dataset(dataset, root=root)
        return cls(source, str(data.name), data, fp)

    def identity(self) -> dict[str, Any]:
        """The RunSpec fields that name this subject."""
        return {"model": self.model.name, "model_fingerprint": self.model.fingerprint, "dataset": self.dataset,
                "dataset_fingerprint": self.dataset_fingerprint}

    def spec(self, **settings: Any) -> RunSpec:
        """The :class:`RunSpec` of this subject with ``settings``."""
        for k in ("model", "dataset", "model_fingerprint", "dataset_fingerprint"):
            if k in settings:
                raise ValueError(f"{k} is the subject's; give the model and dataset to the command itself")
        return RunSpec(**self.identity(), **settings)

    def load(self, root: str | os.PathLike | None = None):
        """The Dataset (the user's, or the named one loaded from ``root``)."""
        from . import datasets as _datasets

        return self.data if self.data is not None else _datasets.load(self.dataset, root=root)
