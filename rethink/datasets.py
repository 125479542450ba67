"""Datasets for the randomization test: real images as uint8 tensors, no downloads.

A :class:`Dataset` holds a ``train`` and a ``test`` :class:`Split`; a split holds
``images`` (``torch.uint8``, N x C x H x W, CPU) and ``labels`` (``torch.int64``, N).

- ``load("digits")``: scikit-learn's bundled 8x8 handwritten digits (1,797 real images,
  10 classes), split 80/20 stratified with a fixed seed, pixels rescaled from 0..16 to
  0..255. Needs no files.
- ``load("cifar10", root)``: the ``cifar-10-batches-py`` folder (python pickles) or the
  ``cifar-10-batches-bin`` folder (binary records) under ``root``.
- ``load("mnist", root)`` / ``load("fashion_mnist", root)``: the four IDX files
  (gzipped or not) under ``root``.

Without ``root``, :func:`load` looks in ``$RETHINK_DATA``, then ``./data``, then the folder
where the system's package manager puts the dataset (Debian's ``dataset-fashion-mnist``:
``/usr/share/datasets/fashion-mnist``; ``make data`` installs it). Nothing is downloaded:
a missing or damaged file raises :class:`DatasetError` naming the file, the places looked
in and how to get the files.

A process keeps the decompressed bytes of the IDX files it read (keyed by the file's
resolved path, device, inode, size and modification time, so a changed file is read again;
:func:`clear_cache` forgets them): a second ``load("fashion_mnist")`` in a sweep of runs
copies them into new tensors instead of decompressing 30 MB again. Every call returns new
tensors, whatever the cache.
"""

from __future__ import annotations

import gzip
import math
import os
import pickle
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ._check import check_int

__all__ = [
    "Dataset",
    "DatasetError",
    "Split",
    "clear_cache",
    "from_tensors",
    "load",
    "names",
    "synthetic",
]


class DatasetError(FileNotFoundError):
    """A dataset file is missing or damaged (the message names the file and the layout)."""


@dataclass(eq=False)
class Split:
    """One split of a dataset.

    Attributes:
        images: N x C x H x W tensor on the CPU; ``torch.uint8`` (0..255) for loaded
            datasets, ``torch.float32`` (0..1 scale) for the output of ``rethink.corrupt``.
        labels: ``torch.int64`` tensor of N class indices in [0, num_classes).
        num_classes: number of classes.
        name: ``"train"`` or ``"test"``.
    """

    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    name: str

    def __post_init__(self):
        _check_split(self.images, self.labels, self.num_classes, self.name)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __repr__(self) -> str:
        return (
            f"Split({self.name!r}, images={tuple(self.images.shape)} {self.images.dtype}, "
            f"num_classes={self.num_classes})"
        )


@dataclass(eq=False)
class Dataset:
    """A named dataset with a train and a test split of the same image shape.

    Attributes:
        train, test: the two :class:`Split` s.
        name: the dataset's name (``"digits"``, ``"cifar10"``, ...).
        num_classes: number of classes (same for both splits).
        input_shape: ``(C, H, W)`` of one image (property).
    """

    train: Split
    test: Split
    name: str
    num_classes: int
    _stats: tuple | None = field(default=None, repr=False)

    def __post_init__(self):
        if tuple(self.train.images.shape[1:]) != tuple(self.test.images.shape[1:]):
            raise ValueError(
                f"train and test images differ in shape: {tuple(self.train.images.shape[1:])} "
                f"vs {tuple(self.test.images.shape[1:])}"
            )

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.train.images.shape[1:])

    def split(self, name: str) -> Split:
        """The split called ``name`` ("train" or "test"); ValueError otherwise."""
        if name == "train":
            return self.train
        if name == "test":
            return self.test
        raise ValueError(f"unknown split {name!r}: expected 'train' or 'test'")

    def channel_stats(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and (population) std of the training images on the 0..1 scale.

        Returns two lists of C floats, computed in float64 (cached).
        """
        if self._stats is None:
            x = self.train.images
            x = x.to(torch.float64) / 255.0 if x.dtype == torch.uint8 else x.to(torch.float64)
            x = x.transpose(0, 1).reshape(x.shape[1], -1)
            mean = x.mean(dim=1)
            std = ((x - mean[:, None]) ** 2).mean(dim=1).sqrt()
            self._stats = (mean.tolist(), std.tolist())
        return list(self._stats[0]), list(self._stats[1])

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, train={len(self.train)}, test={len(self.test)}, "
            f"input_shape={self.input_shape}, num_classes={self.num_classes})"
        )


def _check_split(images, labels, num_classes, name) -> None:
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"{name} images must be a 4-D tensor (N, C, H, W), got {shape}")
    if images.dtype not in (torch.uint8, torch.float32):
        raise ValueError(f"{name} images must be uint8 (or float32 from rethink.corrupt), got {images.dtype}")
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.dtype != torch.int64:
        desc = (
            f"{labels.dtype} {tuple(labels.shape)}"
            if isinstance(labels, torch.Tensor)
            else type(labels).__name__
        )
        raise ValueError(f"{name} labels must be a 1-D int64 tensor, got {desc}")
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"{name}: {images.shape[0]} images but {labels.shape[0]} labels")
    check_int("num_classes", num_classes, low=1, high=MAX_CLASSES)
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        bad = int(labels.min()) if int(labels.min()) < 0 else int(labels.max())
        raise ValueError(f"{name} labels out of range: label {bad} not in [0, {num_classes})")


def names() -> list[str]:
    """The dataset names :func:`load` knows."""
    return ["digits", "cifar10", "mnist", "fashion_mnist"]


#: Folders where a system package installs a dataset (searched after $RETHINK_DATA and ./data).
SYSTEM_DIRS = {"fashion_mnist": [Path("/usr/share/datasets/fashion-mnist")]}
#: How to get each dataset's files when they are missing.
GET_FILES = {
    "fashion_mnist": "on Debian/Ubuntu: sudo apt-get install dataset-fashion-mnist (or `make data` in the rethink "
                     "checkout), or put the four IDX files from https://github.com/zalandoresearch/fashion-mnist "
                     "under root",
    "mnist": "put the four IDX files of MNIST under root",
    "cifar10": "extract https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz under root",
}
#: Image shape (C, H, W) and class count of every named dataset (checked when loaded).
SHAPES = {"digits": ((1, 8, 8), 10), "cifar10": ((3, 32, 32), 10), "mnist": ((1, 28, 28), 10),
          "fashion_mnist": ((1, 28, 28), 10)}
#: The most classes a dataset may have (a larger count is a mistake, not a dataset).
MAX_CLASSES = 2**20


def default_root() -> Path:
    """``$RETHINK_DATA`` if set, else ``./data``."""
    return Path(os.environ.get("RETHINK_DATA", "data"))


def search_roots(name: str, root: str | os.PathLike | None = None) -> list[Path]:
    """The folders :func:`load` looks in for dataset ``name``, in order: ``root`` alone when
    given; otherwise ``$RETHINK_DATA`` (if set), ``./data`` and the system folders of
    :data:`SYSTEM_DIRS`."""
    if root is not None:
        from ._check import check_path

        return [check_path("root", root)]
    roots = [Path(os.environ["RETHINK_DATA"])] if os.environ.get("RETHINK_DATA") else []
    return roots + [Path("data")] + SYSTEM_DIRS.get(name, [])


def load(name: str, root: str | os.PathLike | None = None) -> Dataset:
    """Load a dataset by name.

    Args:
        name: ``"digits"``, ``"cifar10"``, ``"mnist"`` or ``"fashion_mnist"``.
        root: folder holding the dataset files (ignored for digits); default: the first of
            :func:`search_roots` that holds them.

    Returns:
        a :class:`Dataset` with uint8 images on the CPU.

    Raises:
        ValueError: unknown name.
        DatasetError: a missing or damaged file (the message names it and the layout).
    """
    if not isinstance(name, str) or name.lower() not in names():
        raise ValueError(f"unknown dataset {name!r}: expected one of {names()}")
    name = name.lower()
    if name == "digits":
        return _load_digits()
    roots = search_roots(name, root)
    loader = _load_cifar10 if name == "cifar10" else (lambda r: _load_idx_dataset(name, r))
    first_error = None
    for r in roots:
        try:
            return loader(r)
        except DatasetError as e:
            if "damaged" in str(e) or "not uint8" in str(e):
                raise  # the files are there but broken: say so, do not look elsewhere
            first_error = first_error or e
    looked = ", ".join(str(r) for r in roots)
    raise DatasetError(f"{first_error} (looked in: {looked}); to get the files: {GET_FILES[name]}")


def from_tensors(
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    num_classes: int | None = None,
    name: str = "tensors",
) -> Dataset:
    """A Dataset from user tensors.

    Args:
        train_images, test_images: uint8 tensors N x C x H x W (same C, H, W).
        train_labels, test_labels: int64 (or any integer) tensors of N labels.
        num_classes: default ``max(label) + 1``.

    Raises:
        ValueError: images not uint8 or not 4-D, labels not 1-D, counts differing, labels
            outside [0, num_classes).
    """
    for split, imgs in (("train", train_images), ("test", test_images)):
        if not isinstance(imgs, torch.Tensor) or imgs.dim() != 4:
            shape = tuple(imgs.shape) if isinstance(imgs, torch.Tensor) else type(imgs).__name__
            raise ValueError(f"{split} images must be a 4-D tensor (N, C, H, W), got {shape}")
        if imgs.dtype != torch.uint8:
            raise ValueError(f"{split} images must be uint8 (0..255), got {imgs.dtype}")
    labs = []
    for split, lab in (("train", train_labels), ("test", test_labels)):
        lab = torch.as_tensor(lab)
        if lab.dtype.is_floating_point or lab.dtype == torch.bool or lab.dim() != 1:
            raise ValueError(
                f"{split} labels must be a 1-D integer tensor, got {lab.dtype} {tuple(lab.shape)}"
            )
        labs.append(lab.to(torch.int64).cpu())
    if num_classes is None:
        num_classes = int(max(int(lab.max()) if lab.numel() else 0 for lab in labs)) + 1
    num_classes = check_int("num_classes", num_classes, low=1, high=MAX_CLASSES)
    return Dataset(
        train=Split(train_images.detach().cpu().contiguous(), labs[0], num_classes, "train"),
        test=Split(test_images.detach().cpu().contiguous(), labs[1], num_classes, "test"),
        name=name,
        num_classes=num_classes,
    )


def synthetic(
    n_train: int, n_test: int, shape: tuple[int, int, int] = (3, 32, 32), num_classes: int = 10, seed: int = 0
) -> Dataset:
    """Random uint8 images and uniform labels (for benchmarks at CIFAR scale).

    Raises:
        ValueError: negative counts, a shape that is not 3 positive ints, num_classes < 1.
    """
    from ._check import check_int, check_seed, check_shape

    n_train, n_test = check_int("n_train", n_train, low=1), check_int("n_test", n_test, low=0)
    shape = check_shape("shape (C, H, W)", shape, length=3)
    num_classes = check_int("num_classes", num_classes, low=1, high=MAX_CLASSES)
    seed = check_seed("seed", seed)
    g = torch.Generator().manual_seed(int(seed))
    n = n_train + n_test
    images = torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, num_classes, (n,), generator=g, dtype=torch.int64)
    return from_tensors(
        images[:n_train], labels[:n_train], images[n_train:], labels[n_train:], num_classes, "synthetic"
    )


# --- digits ------------------------------------------------------------------------

DIGITS_SPLIT_SEED = 0


def _load_digits() -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = np.rint(d.images.astype(np.float64) * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)[:, None]
    y = d.target.astype(np.int64)
    idx_train, idx_test = train_test_split(
        np.arange(len(y)), test_size=0.2, stratify=y, random_state=DIGITS_SPLIT_SEED
    )
    idx_train.sort()
    idx_test.sort()
    return from_tensors(
        torch.from_numpy(x[idx_train].copy()),
        torch.from_numpy(y[idx_train].copy()),
        torch.from_numpy(x[idx_test].copy()),
        torch.from_numpy(y[idx_test].copy()),
        10,
        "digits",
    )


# --- CIFAR-10 ----------------------------------------------------------------------

_CIFAR_LAYOUT = (
    "expected layout: <root>/cifar-10-batches-py/{data_batch_1..data_batch_5,test_batch} "
    "(python pickles from https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz) or "
    "<root>/cifar-10-batches-bin/{data_batch_1..5.bin,test_batch.bin} (binary version); "
    "nothing is downloaded: extract the archive under root (root defaults to $RETHINK_DATA or ./data)"
)


def _cifar_dirs(root: Path) -> tuple[Path | None, Path | None]:
    py = bin_ = None
    for cand in (root / "cifar-10-batches-py", root):
        if (cand / "test_batch").is_file() or (cand / "data_batch_1").is_file():
            py = cand
            break
    for cand in (root / "cifar-10-batches-bin", root):
        if (cand / "test_batch.bin").is_file() or (cand / "data_batch_1.bin").is_file():
            bin_ = cand
            break
    return py, bin_


def _whole_numbers(values, low: int, high: int, what: str) -> np.ndarray:
    """``values`` as an array of whole numbers in [low, high] (uint8 for pixels, int64 for
    labels), else ValueError naming the first bad value: a cast would wrap or truncate it."""
    arr = np.asarray(values)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
                                   or arr.dtype == bool):
        raise ValueError(f"{what} values of type {arr.dtype}")
    if arr.dtype != np.uint8 and arr.size:
        bad = ~np.isfinite(arr) | (arr < low) | (arr > high) | (arr != np.round(arr)) if arr.dtype.kind == "f" \
            else (arr < low) | (arr > high)
        if bad.any():
            raise ValueError(f"{what} value {arr[bad].flat[0].item()!r} outside the whole numbers {low}..{high}")
    return arr.astype(np.uint8 if what == "pixel" else np.int64)


def _read_cifar_pickle(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DatasetError(f"missing CIFAR-10 file {path}; {_CIFAR_LAYOUT}")
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="bytes")
        data = d.get(b"data", d.get("data")) if isinstance(d, dict) else None
        labels = d.get(b"labels", d.get("labels")) if isinstance(d, dict) else None
        data, labels = _whole_numbers(data, 0, 255, "pixel"), _whole_numbers(labels, 0, 9, "label")
        if data.ndim != 2 or data.shape[1] != 3072 or labels.shape != (data.shape[0],):
            raise ValueError(f"data {data.shape}, labels {labels.shape}")
    except Exception as e:  # noqa: BLE001 - any failure means a damaged file
        raise DatasetError(
            f"damaged CIFAR-10 file {path} ({type(e).__name__}: {e}): expected a pickled dict with "
            f"b'data' (N x 3072 uint8) and b'labels' (N ints); {_CIFAR_LAYOUT}"
        ) from e
    return data.reshape(-1, 3, 32, 32), labels


def _read_cifar_bin(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DatasetError(f"missing CIFAR-10 file {path}; {_CIFAR_LAYOUT}")
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % 3073 != 0:
        raise DatasetError(
            f"damaged CIFAR-10 file {path}: {raw.size} bytes is not a multiple of 3073 "
            f"(1 label byte + 3072 pixel bytes per record); {_CIFAR_LAYOUT}"
        )
    rec = raw.reshape(-1, 3073)
    labels = rec[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise DatasetError(
            f"damaged CIFAR-10 file {path}: label byte {int(labels.max())} > 9; {_CIFAR_LAYOUT}"
        )
    return rec[:, 1:].reshape(-1, 3, 32, 32), labels


def _load_cifar10(root: Path) -> Dataset:
    py, bin_ = _cifar_dirs(root)
    if py is not None:
        parts = [_read_cifar_pickle(py / f"data_batch_{k}") for k in range(1, 6)]
        test = _read_cifar_pickle(py / "test_batch")
    elif bin_ is not None:
        parts = [_read_cifar_bin(bin_ / f"data_batch_{k}.bin") for k in range(1, 6)]
        test = _read_cifar_bin(bin_ / "test_batch.bin")
    else:
        raise DatasetError(
            f"CIFAR-10 not found under {root} (no {root / 'cifar-10-batches-py'}); {_CIFAR_LAYOUT}"
        )
    xtr = np.concatenate([p[0] for p in parts])
    ytr = np.concatenate([p[1] for p in parts])
    for lab, path in ((ytr, "training batches"), (test[1], "test_batch")):
        if lab.size and (lab.min() < 0 or lab.max() > 9):
            raise DatasetError(f"damaged CIFAR-10 {path} under {root}: labels outside 0..9; {_CIFAR_LAYOUT}")
    return from_tensors(
        torch.from_numpy(np.ascontiguousarray(xtr)),
        torch.from_numpy(ytr),
        torch.from_numpy(np.ascontiguousarray(test[0])),
        torch.from_numpy(test[1]),
        10,
        "cifar10",
    )


# --- MNIST / Fashion-MNIST (IDX) ---------------------------------------------------

_IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_IDX_SUBDIRS = {
    "mnist": ["", "mnist", "MNIST/raw"],
    "fashion_mnist": ["", "fashion_mnist", "fashion-mnist", "FashionMNIST/raw"],
}


def _idx_layout(name: str) -> str:
    files = ", ".join(_IDX_FILES.values())
    dirs = " or ".join(f"<root>/{d}" if d else "<root>" for d in _IDX_SUBDIRS[name])
    return (
        f"expected layout: {dirs} holding {files} (each optionally gzipped, with .gz); "
        "nothing is downloaded (root defaults to $RETHINK_DATA or ./data)"
    )


def _find_idx(name: str, root: Path, key: str) -> Path:
    base = _IDX_FILES[key]
    for sub in _IDX_SUBDIRS[name]:
        d = root / sub if sub else root
        for fname in (base, base + ".gz"):
            if (d / fname).is_file():
                return d / fname
    raise DatasetError(f"missing {name} file {root / base}[.gz]; {_idx_layout(name)}")


#: The decompressed bytes of the IDX files read in this process: {resolved path: (stamp,
#: bytes)}, the most recently read last. A file's stamp is its device, inode, size and
#: modification time (ns); a file whose stamp changed is read again. Only files unmodified for
#: :data:`_SETTLED_SECONDS` when read are kept: a later rewrite then gets a later modification
#: time even on a filesystem with coarse timestamps (git's "racy" entries, the same way). The
#: bytes are immutable and :func:`load` copies them into new tensors on every call, so the
#: cache changes no result, only the time of a second load (Fashion-MNIST, the four files:
#: ~270 ms of gzip -> ~15 ms of copying). At most :data:`IDX_CACHE_BYTES` are kept (the least
#: recently read files go first); :func:`clear_cache` empties it.
_IDX_CACHE: dict[str, tuple[tuple[int, int, int, int], bytes]] = {}
#: Bytes of decompressed IDX files kept between loads (all four Fashion-MNIST files: 55 MB).
IDX_CACHE_BYTES = 256 * 2**20
_SETTLED_SECONDS = 2.0


def clear_cache() -> None:
    """Forget the dataset files read so far (the next :func:`load` reads them from disk)."""
    _IDX_CACHE.clear()


def _file_stamp(path: Path) -> tuple[str, tuple[int, int, int, int]]:
    st = path.stat()
    return str(path.resolve()), (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _remember_idx(key: str, stamp: tuple[int, int, int, int], raw: bytes) -> None:
    _IDX_CACHE.pop(key, None)
    if len(raw) > IDX_CACHE_BYTES or time.time_ns() - stamp[3] < _SETTLED_SECONDS * 1e9:
        return
    _IDX_CACHE[key] = (stamp, raw)
    while sum(len(v[1]) for v in _IDX_CACHE.values()) > IDX_CACHE_BYTES:
        del _IDX_CACHE[next(iter(_IDX_CACHE))]


def read_idx(path: str | os.PathLike, layout: str = "") -> np.ndarray:
    """Read an IDX file (uint8 data, gzipped or not) into a numpy array (read-only: a view of
    the file's bytes, which this process keeps for the next read while the file is unchanged;
    see :data:`IDX_CACHE_BYTES`).

    Raises:
        DatasetError: missing file, bad magic number, unsupported type, truncated data.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"missing IDX file {path}; {layout}")
    key, stamp = _file_stamp(path)
    hit = _IDX_CACHE.get(key)
    if hit is not None and hit[0] == stamp:
        raw = hit[1]
        _IDX_CACHE[key] = _IDX_CACHE.pop(key)  # the most recently read last
    else:
        try:
            with open(path, "rb") as f:
                raw = f.read()
            if raw[:2] == b"\x1f\x8b":
                raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DatasetError(f"damaged IDX file {path} (its gzip stream: {type(e).__name__}: {e}); {layout}") from e
        _remember_idx(key, stamp, raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DatasetError(f"damaged IDX file {path}: bad magic number {raw[:4].hex()}; {layout}")
    if raw[2] != 0x08:
        raise DatasetError(f"IDX file {path}: element type 0x{raw[2]:02x} is not uint8 (0x08); {layout}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim < 1 or len(raw) < header:
        raise DatasetError(f"damaged IDX file {path}: truncated header; {layout}")
    dims = [int.from_bytes(raw[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim)]
    count = math.prod(dims)  # a Python int: no overflow for a damaged header
    if len(raw) - header != count:
        raise DatasetError(
            f"damaged IDX file {path}: header says {dims} ({count} bytes) but {len(raw) - header} data bytes follow; "
            f"{layout}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _load_idx_dataset(name: str, root: Path) -> Dataset:
    layout = _idx_layout(name)
    arrays = {key: read_idx(_find_idx(name, root, key), layout) for key in _IDX_FILES}
    for split in ("train", "test"):
        imgs, labs = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        path = _find_idx(name, root, f"{split}_images")
        _, h, w = SHAPES[name][0]
        if imgs.ndim != 3 or imgs.shape[1:] != (h, w):
            raise DatasetError(
                f"damaged {name} file {path}: images must be (N, {h}, {w}), got {imgs.shape}; {layout}"
            )
        if labs.ndim != 1 or labs.shape[0] != imgs.shape[0]:
            raise DatasetError(
                f"damaged {name} file {_find_idx(name, root, f'{split}_labels')}: {labs.shape} labels for "
                f"{imgs.shape[0]} images; {layout}"
            )
        if labs.size and labs.max() > 9:
            raise DatasetError(
                f"damaged {name} file {_find_idx(name, root, f'{split}_labels')}: label {int(labs.max())} > 9; {layout}"
            )
    return from_tensors(
        torch.from_numpy(arrays["train_images"][:, None].copy()),
        torch.from_numpy(arrays["train_labels"].astype(np.int64)),
        torch.from_numpy(arrays["test_images"][:, None].copy()),
        torch.from_numpy(arrays["test_labels"].astype(np.int64)),
        10,
        name,
    )
