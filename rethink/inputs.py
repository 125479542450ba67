"""What every entry point accepts as a model and as a dataset, in one place.

Every command of rethink (:func:`rethink.fit_random`, :func:`rethink.sweep`,
:func:`rethink.randomization_test`, :func:`rethink.zoo`, :func:`rethink.memorization`,
:func:`rethink.rademacher`, :func:`rethink.measures.compute` and the CLI) reads its model
with :func:`as_model` and its dataset with :func:`as_dataset`:

**A model** is

- a name from :func:`rethink.models.names` (built for the data's view, initialized from the
  run's seed);
- an ``nn.Module`` class or any factory callable: called anew for every run, under
  ``torch.manual_seed(seed)``, with the keywords ``input_shape`` ((C, H, W) of the view the
  network sees) and ``num_classes`` when its signature names them (else with no arguments),
  so every run starts from a fresh initialization fixed by its seed;
- an ``nn.Module`` instance: copied for every run (the caller's module is never trained in
  place); every run starts from its weights, whatever the seed.

A user model is identified in the run's spec by ``model_fingerprint``: for an instance a hash
of its structure and weights, for a class or factory a hash of its qualified name and source
code. Two runs reuse each other's files only when the fingerprints agree.

**A dataset** is

- a name for :func:`rethink.datasets.load` (with ``root``);
- a rethink :class:`~rethink.datasets.Dataset` (e.g. from :func:`rethink.datasets.from_tensors`);
- a tuple ``(X, y)`` (no test split) or ``(X, y, X_test, y_test)`` of tensors or numpy arrays;
- a ``torch.utils.data.Dataset`` of ``(image, label)`` pairs, or a pair of them (train, test);
- a torchvision-style object with ``.data`` and ``.targets`` (e.g.
  ``torchvision.datasets.FashionMNIST``, read without its transforms), or a pair of them.

Images become uint8 (N, C, H, W) by one rule (:func:`as_uint8_images`): (N, H, W) gets one
channel; (N, H, W, C) with C in {1, 3, 4} and H, W > 4 is moved to channels first; uint8 and
integer values in [0, 255] are kept; float values in [0, 1] are multiplied by 255 and
rounded; float values in [0, 255] (with some above 1) are rounded; anything else (negative,
above 255, NaN, infinite) is refused. A user dataset is identified by ``dataset_fingerprint``
(a hash of its images and labels).
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["ModelSource", "as_model", "as_dataset", "as_uint8_images", "load_dataset_file", "import_factory",
           "module_fingerprint", "factory_fingerprint", "dataset_fingerprint"]


# ----------------------------------------------------------------------------- models


@dataclass(frozen=True)
class ModelSource:
    """Where the networks of runs come from: a rethink model name, a user factory (or
    ``nn.Module`` class), or a user module instance.

    Attributes:
        name: ``spec.model``: the rethink name, or the class / factory name.
        fingerprint: ``spec.model_fingerprint`` (None for a rethink name).
        factory: the user callable (None otherwise).
        module: the user instance, kept as a private copy taken when the source was made
            (None otherwise).
    """

    name: str
    fingerprint: str | None = None
    factory: Callable[..., nn.Module] | None = None
    module: nn.Module | None = None

    @property
    def is_user(self) -> bool:
        return self.fingerprint is not None

    def build(self, seed: int, input_shape: tuple[int, int, int], num_classes: int, dropout: float = 0.0
              ) -> nn.Module:
        """A fresh network for one run (a rethink model float32 on the CPU; a user factory's
        as it returns it; the trainer moves it to the run's device).

        Raises:
            ValueError: dropout with a user model, a factory that does not return an
                ``nn.Module`` (the message names it).
        """
        from . import models as _models

        if not self.is_user:
            return _models.create(self.name, input_shape, num_classes, seed=seed, dropout=dropout)
        if dropout:
            raise ValueError("dropout is a setting of rethink's models; add nn.Dropout to your own module instead")
        if self.module is not None:
            return copy.deepcopy(self.module)
        kwargs = _factory_kwargs(self.factory, input_shape, num_classes)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = self.factory(**kwargs)
        if not isinstance(net, nn.Module):
            raise ValueError(f"model factory {self.name!r} returned {type(net).__name__}, not an nn.Module")
        return net

    def rebuild_record(self) -> dict[str, Any]:
        """What a weights file keeps to rebuild a user network in another process:
        ``{"user_model": the factory, or the instance at its initial weights}`` when that
        pickles (a class or function importable by name), else ``{}`` (then
        :func:`rethink.load_model` says it cannot rebuild the network)."""
        import pickle

        if not self.is_user:
            return {}
        obj = self.factory if self.factory is not None else self.module
        try:
            pickle.dumps(obj)
        except Exception:  # noqa: BLE001 - a local class, a lambda, a closure
            return {}
        return {"user_model": obj}


def rebuild(record: Any, input_shape, num_classes) -> nn.Module:
    """A network of the architecture in a weights file's ``user_model`` record (its weights
    are loaded by the caller)."""
    if isinstance(record, nn.Module):
        return copy.deepcopy(record)
    return ModelSource("user", "-", factory=record).build(0, tuple(input_shape), int(num_classes))


def _factory_kwargs(factory: Callable, input_shape, num_classes) -> dict[str, Any]:
    """The keywords a factory takes among input_shape / num_classes (others must have defaults)."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin without a signature: call it bare
        return {}
    given = {"input_shape": tuple(input_shape), "num_classes": int(num_classes)}
    kwargs = {}
    for name, p in params.items():
        if name in given and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            kwargs[name] = given[name]
        elif p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        elif p.default is p.empty:
            raise ValueError(f"model factory {getattr(factory, '__qualname__', factory)!r} needs argument {name!r}; "
                             f"a factory may take only input_shape and num_classes (others need defaults)")
    return kwargs


def _digest(parts: list[bytes]) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.hexdigest()[:12]


def module_fingerprint(module: nn.Module) -> str:
    """Identity of a user module: a hash of its structure and its current weights."""
    parts = [repr(module).encode()]
    for k, v in module.state_dict().items():
        parts += [k.encode(), v.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()]
    return _digest(parts)


def dataset_fingerprint(ds) -> str:
    """Identity of a user Dataset: a hash of its images, labels and class count."""
    parts = [str(ds.num_classes).encode()]
    for s in (ds.train, ds.test):
        parts += [str(tuple(s.images.shape)).encode(), s.images.contiguous().numpy().tobytes(),
                  s.labels.contiguous().numpy().tobytes()]
    return _digest(parts)


def factory_fingerprint(factory: Callable) -> str:
    """Identity of a user class or factory: a hash of its qualified name and its source code
    (its name alone when the source cannot be read, e.g. typed at a prompt)."""
    qual = f"{getattr(factory, '__module__', '')}.{getattr(factory, '__qualname__', type(factory).__name__)}"
    try:
        src = inspect.getsource(factory)
    except (OSError, TypeError):
        src = ""
    return _digest([b"factory:", qual.encode(), src.encode()])


def _safe_name(name: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]", "-", name).strip("-.") or "model"
    return name[:40]


def as_model(model: Any) -> ModelSource:
    """The :class:`ModelSource` of anything an entry point takes as its model (see the
    module's docstring). Raises ValueError for anything else, naming its type."""
    from . import models as _models

    if isinstance(model, ModelSource):
        return model
    if isinstance(model, str):
        if model not in _models.names():
            raise ValueError(f"unknown model {model!r}; choose one of: {', '.join(_models.names())}, or pass an "
                             f"nn.Module class, factory or instance")
        return ModelSource(model)
    if isinstance(model, nn.Module):
        if next(model.parameters(), None) is None:
            raise ValueError(f"model {type(model).__name__} has no parameters: it cannot fit anything")
        private = copy.deepcopy(model).cpu()
        return ModelSource(_safe_name(type(model).__name__), module_fingerprint(private), module=private)
    if callable(model):
        name = getattr(model, "__name__", None) or type(model).__name__
        if name == "<lambda>":
            name = "lambda"
        if inspect.isclass(model) and not issubclass(model, nn.Module):
            raise ValueError(f"model class {model.__name__} is not an nn.Module")
        return ModelSource(_safe_name(name), factory_fingerprint(model), factory=model)
    raise ValueError(f"model must be a rethink model name, an nn.Module class or factory, or an nn.Module "
                     f"instance, got {type(model).__name__}")


def import_factory(path: str) -> Callable[..., nn.Module]:
    """The callable named ``"package.module:attribute"`` (the CLI's ``--model`` for a user
    model), importable from ``sys.path`` or the current folder. Raises ValueError naming what
    cannot be imported."""
    import importlib

    mod_name, sep, attr = path.partition(":")
    if not sep or not mod_name or not attr:
        raise ValueError(f"a user model is given as package.module:factory, got {path!r}")
    import sys

    if "" not in sys.path and os.getcwd() not in sys.path:  # as `python -m` does: the current folder's modules
        sys.path.append(os.getcwd())
    try:
        obj: Any = importlib.import_module(mod_name)
    except ImportError as e:
        raise ValueError(f"cannot import module {mod_name!r} of model {path!r}: {e}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"module {mod_name!r} has no attribute {attr!r} (model {path!r})")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"model {path!r} is a {type(obj).__name__}, not a class or factory")
    return obj


# ----------------------------------------------------------------------------- data


def as_uint8_images(images: Any, what: str = "images") -> torch.Tensor:
    """``images`` as a contiguous uint8 CPU tensor (N, C, H, W), by the rule of the module's
    docstring. Raises ValueError naming ``what`` for a shape or value range it does not take."""
    if isinstance(images, np.ndarray):
        if images.dtype == object:
            raise ValueError(f"{what} must be a numeric array, got dtype object")
        images = torch.from_numpy(np.ascontiguousarray(images))
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"{what} must be a tensor or numpy array, got {type(images).__name__}")
    x = images.detach().cpu()
    if x.dtype == torch.bool or x.is_complex():
        raise ValueError(f"{what} must be real numbers, got {x.dtype}")
    if x.dim() == 3:
        x = x.unsqueeze(1)
    elif x.dim() == 4:
        if x.shape[1] not in (1, 3, 4) and x.shape[3] in (1, 3, 4) and min(x.shape[1], x.shape[2]) > 4:
            x = x.permute(0, 3, 1, 2)
    else:
        raise ValueError(f"{what} must be (N, H, W), (N, C, H, W) or (N, H, W, C), got shape {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        return x.contiguous()
    if x.numel() == 0:
        return x.to(torch.uint8).contiguous()
    if x.is_floating_point():
        xd = x.double()
        if not torch.isfinite(xd).all():
            raise ValueError(f"{what} hold NaN or infinite values")
        lo, hi = float(xd.min()), float(xd.max())
        if lo < 0 or hi > 255:
            raise ValueError(f"float {what} must lie in [0, 1] or [0, 255], got values in [{lo:g}, {hi:g}]; "
                             f"undo any normalization first (rethink normalizes each image itself)")
        scaled = xd * 255.0 if hi <= 1.0 else xd
        return scaled.round().to(torch.uint8).contiguous()
    lo, hi = int(x.min()), int(x.max())
    if lo < 0 or hi > 255:
        raise ValueError(f"integer {what} must lie in [0, 255], got values in [{lo}, {hi}]")
    return x.to(torch.uint8).contiguous()


def _as_labels(labels: Any, what: str) -> torch.Tensor:
    if isinstance(labels, np.ndarray):
        labels = torch.from_numpy(np.ascontiguousarray(labels))
    elif isinstance(labels, (list, tuple)):
        labels = torch.as_tensor(labels)
    if not isinstance(labels, torch.Tensor):
        raise ValueError(f"{what} must be a tensor, numpy array or list of class indices, got {type(labels).__name__}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool or labels.dim() != 1:
        raise ValueError(f"{what} must be a 1-D integer tensor of class indices, got {labels.dtype} of shape "
                         f"{tuple(labels.shape)}")
    return labels.detach().cpu().to(torch.int64)


def _is_tensor_like(v: Any) -> bool:
    return isinstance(v, (torch.Tensor, np.ndarray))


def _from_pairs(obj: Any, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels of a torchvision-style object (.data, .targets) or of a map-style
    dataset of (image, label) pairs."""
    if hasattr(obj, "data") and hasattr(obj, "targets"):
        data, targets = obj.data, obj.targets
        return as_uint8_images(data if _is_tensor_like(data) else np.asarray(data), f"{what}.data"), \
            _as_labels(targets if _is_tensor_like(targets) else list(targets), f"{what}.targets")
    if not (hasattr(obj, "__getitem__") and hasattr(obj, "__len__")):
        raise ValueError(f"{what} is a {type(obj).__name__}: not a dataset of (image, label) pairs")
    n = len(obj)
    if n == 0:
        raise ValueError(f"{what} is empty")
    images, labels = [], []
    for i in range(n):
        item = obj[i]
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise ValueError(f"{what}[{i}] must be an (image, label) pair, got {type(item).__name__}")
        img, lab = item
        img = img if _is_tensor_like(img) else np.asarray(img)  # e.g. a PIL image
        images.append(torch.as_tensor(img))
        labels.append(int(lab.item() if hasattr(lab, "item") else lab))
    shapes = {tuple(t.shape) for t in images}
    if len(shapes) != 1:
        raise ValueError(f"the images of {what} differ in shape: {sorted(shapes)[:3]}")
    return as_uint8_images(torch.stack(images), f"the images of {what}"), torch.tensor(labels, dtype=torch.int64)


def _dataset_name(obj: Any, default: str) -> str:
    name = type(obj).__name__ if not isinstance(obj, (tuple, list)) else default
    name = re.sub(r"[^A-Za-z0-9._-]", "-", name).lower()
    return name if name not in ("dataset", "tensordataset", "subset") else default


def as_dataset(dataset: Any, root: str | os.PathLike | None = None, *, name: str | None = None):
    """``(Dataset, fingerprint)`` of anything an entry point takes as its dataset (see the
    module's docstring); the fingerprint is None for a name rethink loads itself.

    Raises:
        ValueError: a type it does not take (named), images or labels it cannot convert, train
            and test images of different shapes, labels out of range.
        rethink.datasets.DatasetError: a named dataset whose files are missing.
    """
    from . import datasets as _datasets

    if isinstance(dataset, str):
        return _datasets.load(dataset, root=root), None
    if isinstance(dataset, os.PathLike):
        return as_dataset(load_dataset_file(dataset), name=name or Path(dataset).stem)
    if isinstance(dataset, _datasets.Dataset):
        return dataset, dataset_fingerprint(dataset)
    if isinstance(dataset, (tuple, list)):
        if len(dataset) in (2, 4) and all(_is_tensor_like(v) for v in dataset):
            x, y = as_uint8_images(dataset[0], "training images"), _as_labels(dataset[1], "training labels")
            if len(dataset) == 4:
                xt, yt = as_uint8_images(dataset[2], "test images"), _as_labels(dataset[3], "test labels")
            else:
                xt, yt = x[:0], y[:0]
            ds = _tensor_dataset(x, y, xt, yt, name or "tensors")
            return ds, dataset_fingerprint(ds)
        if len(dataset) == 2 and not any(_is_tensor_like(v) for v in dataset):
            (x, y), (xt, yt) = _from_pairs(dataset[0], "the training set"), _from_pairs(dataset[1], "the test set")
            ds = _tensor_dataset(x, y, xt, yt, name or _dataset_name(dataset[0], "pairs"))
            return ds, dataset_fingerprint(ds)
        first = dataset[0] if len(dataset) else None
        if not (isinstance(first, (tuple, list)) and len(first) == 2):  # else: a list of (image, label) pairs
            kinds = ", ".join(type(v).__name__ for v in dataset[:5]) + (", ..." if len(dataset) > 5 else "")
            raise ValueError(f"a dataset given as a tuple is (X, y), (X, y, X_test, y_test) of tensors or arrays, "
                             f"or (train set, test set); got a {type(dataset).__name__} of {len(dataset)}: {kinds}")
    if hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__") or hasattr(dataset, "targets"):
        x, y = _from_pairs(dataset, "the dataset")
        ds = _tensor_dataset(x, y, x[:0], y[:0], name or _dataset_name(dataset, "pairs"))
        return ds, dataset_fingerprint(ds)
    raise ValueError(f"dataset must be a dataset name, a rethink Dataset, (X, y) or (X, y, X_test, y_test) tensors, "
                     f"a torch Dataset of (image, label) pairs or a torchvision-style object (.data, .targets); got "
                     f"{type(dataset).__name__} {dataset!r:.60}")


def _tensor_dataset(x, y, xt, yt, name: str):
    from . import datasets as _datasets

    if len(x) != len(y) or len(xt) != len(yt):
        raise ValueError(f"images and labels differ in number: {len(x)} training images, {len(y)} labels; "
                         f"{len(xt)} test images, {len(yt)} labels")
    if len(x) == 0:
        raise ValueError("the training set is empty")
    if len(xt) and tuple(xt.shape[1:]) != tuple(x.shape[1:]):
        raise ValueError(f"training images are {tuple(x.shape[1:])} (C, H, W) but test images "
                         f"{tuple(xt.shape[1:])}")
    if len(xt) == 0:
        xt = x[:0]
    for what, lab in (("training", y), ("test", yt)):
        if lab.numel() and int(lab.min()) < 0:
            raise ValueError(f"{what} labels must be class indices >= 0, got {int(lab.min())}")
    return _datasets.from_tensors(x, y, xt, yt, name=name)


_FILE_KEYS = ("train_images", "train_labels", "test_images", "test_labels")


def load_dataset_file(path: str | os.PathLike) -> tuple:
    """The tensors of a dataset file (the CLI's ``--dataset FILE``): a ``.npz`` or ``.pt``
    holding ``train_images``, ``train_labels`` and optionally ``test_images``,
    ``test_labels`` (a ``.pt`` may hold an ``(X, y[, X_test, y_test])`` tuple instead).
    Returns a tuple for :func:`as_dataset`. Raises ValueError naming the file and what it lacks."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"dataset file {str(p)!r} does not exist")
    if p.suffix == ".npz":
        try:
            with np.load(p, allow_pickle=False) as z:
                d = {k: z[k] for k in z.files}
        except Exception as e:  # noqa: BLE001 - a damaged or foreign file
            raise ValueError(f"cannot read dataset file {str(p)!r}: {type(e).__name__}: {e}") from None
    elif p.suffix == ".pt":
        try:
            d = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001
            raise ValueError(f"cannot read dataset file {str(p)!r}: {type(e).__name__}: {e}") from None
        if isinstance(d, (tuple, list)):
            return tuple(d)
    else:
        raise ValueError(f"dataset file {str(p)!r} must be a .npz or .pt file")
    if not isinstance(d, dict) or "train_images" not in d or "train_labels" not in d:
        raise ValueError(f"dataset file {str(p)!r} must hold {', '.join(_FILE_KEYS)} (the test split optional); "
                         f"it holds {sorted(d) if isinstance(d, dict) else type(d).__name__}")
    if ("test_images" in d) != ("test_labels" in d):
        raise ValueError(f"dataset file {str(p)!r} holds only one of test_images and test_labels")
    return tuple(d[k] for k in _FILE_KEYS if k in d)
