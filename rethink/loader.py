"""The fused randomization data path: :class:`RandomizedLoader` and ``randomized_batch``.

The dataset is moved to the device once, as uint8. Each batch is ONE call of the op
``torch.ops.rethink.randomized_batch`` (one kernel launch on CUDA, one
``at::parallel_for`` on the CPU), which gathers the batch's images by index, applies the
pixel corruption (a Feistel permutation derived from (seed, image) or Philox Gaussian
noise: nothing per image is stored), the augmentation (rotation, random crop with or
without zero padding, horizontal flip, drawn per (seed, epoch, image)), the centre crop,
the normalization and the conversion to the output dtype and layout, and gathers the
corrupted labels. No host synchronization happens per batch and no Python code runs per
image. Without augmentation a loader's prepared images (its split, or only its subset)
are the same in every epoch, so they are made once (one kernel call) and each batch is an
index gather from them; loaders of the same samples and view can share them.

The op's arguments are described once, in csrc/randomized_batch.h; :class:`_Plan` fills
its ``config`` integers by the names the extension exports.
"""

from __future__ import annotations

import math

import torch

from . import _build  # noqa: F401  (loads the extension and registers the ops)
from ._check import check_int
from .augment import (
    AUGMENT_TOKENS,
    AUGMENTS,
    DEFAULT_MAX_ROTATION,
    PAD,
    augment_parts,
    check_view,
    parse_augment,
)
from .corruption import SPLIT_IDS, Corruption, corrupted_labels, philox4x32_10
from .datasets import Dataset
from .ops import BATCH_FIELDS  # noqa: F401  (registers the ops' fake kernels; re-exported)

__all__ = [
    "AUGMENTS",
    "AUGMENT_TOKENS",
    "DEFAULT_MAX_ROTATION",
    "NORMALIZE",
    "PAD",
    "RandomizedLoader",
    "augment_parts",
    "parse_augment",
    "randomized_batch",
]

#: the kernels' enums by name (csrc/randomize.h PixelMode, csrc/randomized_batch.h Normalize)
PIXEL_MODES: dict[str, int] = dict(_build._C.pixel_modes)
NORMALIZE_MODES: dict[str, int] = dict(_build._C.normalize_modes)
#: normalizations: None, "per_image" (the paper's whitening), "per_channel" (dataset mean/std)
NORMALIZE = {None: NORMALIZE_MODES["none"], "none": NORMALIZE_MODES["none"], "per_image": NORMALIZE_MODES["per_image"],
             "per_channel": NORMALIZE_MODES["per_channel"]}
#: (corruption kind, unit) -> the kernel's pixel mode
_PIXEL_MODES = {
    ("shuffled_pixels", "pixel"): PIXEL_MODES["shuffled_pixels"],
    ("shuffled_pixels", "value"): PIXEL_MODES["shuffled_values"],
    ("random_pixels", "pixel"): PIXEL_MODES["random_pixels"],
    ("random_pixels", "value"): PIXEL_MODES["random_values"],
    ("gaussian", "pixel"): PIXEL_MODES["gaussian"],
    ("gaussian", "value"): PIXEL_MODES["gaussian"],
}
_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
#: splits whose prepared images take at most this many bytes are prepared once and cached
CACHE_BYTES = 2 * 2**30


def batch_config(fields: dict) -> list[int]:
    """The ``int[] config`` of ``torch.ops.rethink.randomized_batch`` from its fields by name
    (:data:`BATCH_FIELDS`), each checked to be an integer in [-2^63, 2^63) (what the op's
    int64 list takes; the op checks each field's own range). Raises ValueError naming a
    missing, unknown or bad field, before the op is called (torch's own message names none)."""
    from ._check import check_int

    if not isinstance(fields, dict) or set(fields) != set(BATCH_FIELDS):
        have = set(fields) if isinstance(fields, dict) else set()
        raise ValueError(f"randomized_batch config needs exactly the fields {', '.join(BATCH_FIELDS)}; missing "
                         f"{sorted(set(BATCH_FIELDS) - have)}, unknown {sorted(have - set(BATCH_FIELDS))}")
    return [check_int(f"randomized_batch config field {f!r}", fields[f], low=-2**63, high=2**63 - 1)
            for f in BATCH_FIELDS]


def _check_seed(name: str, seed) -> int:
    from ._check import check_seed

    return check_seed(name, seed)


def _check_stats(stats, channels: int, what: str, positive: bool) -> tuple[list[float], list[float]]:
    """(mean, std) as two lists of ``channels`` finite floats, std > 0 (or >= 0)."""
    if stats is None or len(stats) != 2 or any(len(s) != channels for s in stats):
        raise ValueError(f"channel_stats must be (mean, std) with {channels} floats each for {what}, got {stats!r}")
    mean, std = [float(v) for v in stats[0]], [float(v) for v in stats[1]]
    for c, (m, s) in enumerate(zip(mean, std)):
        if not (math.isfinite(m) and math.isfinite(s)) or s < 0 or (positive and s == 0):
            need = "> 0" if positive else ">= 0"
            raise ValueError(f"{what} needs a finite mean and a finite std {need} per channel, got mean {m!r} "
                             f"and std {s!r} for channel {c}"
                             + (" (a constant channel: use normalize='per_image' or None)" if s == 0 else ""))
    return mean, std


class _Plan:
    """The op arguments shared by every batch (corruption, augmentation, output)."""

    def __init__(self, input_shape, corruption, split, seed, augment, crop, normalize, dtype, channels_last,
                 stats, max_rotation=DEFAULT_MAX_ROTATION):
        c, h, w = input_shape
        augment = parse_augment(augment)
        parts = augment_parts(augment)
        out_h, out_w, rot = check_view(h, w, augment, crop, max_rotation)
        if normalize not in NORMALIZE:
            raise ValueError(f"unknown normalize {normalize!r}: expected 'per_image', 'per_channel' or None")
        dtype = torch.float32 if dtype is None else dtype
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be torch.float32, torch.float16 or torch.bfloat16, got {dtype!r}")
        if split not in SPLIT_IDS:
            raise ValueError(f"unknown split {split!r}: expected 'train' or 'test'")
        pixel_mode = _PIXEL_MODES.get((corruption.kind, corruption.unit), PIXEL_MODES["none"])
        norm = NORMALIZE[normalize]
        values = [0.0] * (4 * c)
        gaussian, per_channel = pixel_mode == PIXEL_MODES["gaussian"], norm == NORMALIZE_MODES["per_channel"]
        if gaussian or per_channel:
            if c > _build._C.max_stat_channels:
                raise ValueError(f"per-channel statistics support at most {_build._C.max_stat_channels} "
                                 f"channels, got {c}")
            raw = stats()
            if gaussian:
                values[:c], values[c:2 * c] = _check_stats(raw, c, "corruption 'gaussian'", positive=False)
            if per_channel:
                values[2 * c:3 * c], values[3 * c:] = _check_stats(raw, c, "normalize='per_channel'", positive=True)
        self.config = {
            "pixel_mode": pixel_mode, "corruption_seed": corruption.seed, "split": SPLIT_IDS[split],
            "aug_seed": _check_seed("seed", seed), "epoch": 0, "pad": parts["pad"],
            "random_crop": int(parts["random_crop"]), "flip": int(parts["flip"]), "max_rotation": rot,
            "out_h": out_h, "out_w": out_w, "normalize": norm, "channels_last": int(bool(channels_last)),
            "check_indices": 0,
        }
        missing = set(BATCH_FIELDS) ^ set(self.config)
        if missing:  # the extension and this wrapper disagree: a stale build
            raise RuntimeError(f"rethink._C's randomized_batch fields differ from the Python wrapper's: {missing}; "
                               f"rebuild rethink")
        self.stats = values
        self.dtype = dtype
        self.augment = augment
        self.output_shape = (c, out_h, out_w)

    def run(self, images, labels, indices, epoch: int, check_indices: bool):
        cfg = dict(self.config, epoch=int(epoch), check_indices=int(check_indices))
        return torch.ops.rethink.randomized_batch(images, labels, indices, batch_config(cfg),
                                                  self.stats, self.dtype)


def _derive(seed: int, epoch: int, stream: int) -> int:
    r = philox4x32_10(epoch & 0xFFFFFFFF, epoch >> 32, stream, 0, seed & 0xFFFFFFFF, seed >> 32)
    return (int(r[0]) | (int(r[1]) << 32)) & (2**63 - 1)


_STREAM_ORDER = 0x0DE7


class RandomizedLoader:
    """Batches of a corrupted dataset, one fused kernel call per batch.

    Args:
        dataset: a :class:`rethink.datasets.Dataset` (uint8 images) or a name for
            :func:`rethink.datasets.load`.
        corruption: a :class:`rethink.Corruption` or a string for ``Corruption.parse``.
            Drawn once from ``corruption.seed``, whatever the loader's ``seed``.
        split: "train" or "test".
        batch_size: global batch size (>= 1, a multiple of ``world_size``).
        shuffle: a new order each epoch (from ``seed`` and the epoch) or the dataset order.
        seed: int in [0, 2^63); drives the order and the augmentation draws only.
        augment: None or tokens joined with "+" (:func:`parse_augment`): "crop" (a random
            ``crop`` x ``crop`` window inside the image, no padding: the paper's random crop),
            "flip" (horizontal flip), "rotate" (a whole number of degrees in
            [-max_rotation, max_rotation], nearest neighbour, zero outside), "crop_flip"
            (zero padding 4, random crop, flip); drawn per (seed, epoch, image).
        crop: None or the output size; without a random crop the window is centred (the
            paper's centre crop, e.g. 28, and the test-time view of "crop").
        normalize: "per_image" (x - mean) / max(std, 1/sqrt(num_values)), "per_channel"
            (training-set mean/std) or None (values on the 0..1 scale).
        device: "cpu", "cuda", "cuda:N" or "auto" (CUDA when its kernels and a device
            are available); the split is moved there once as uint8.
        dtype: torch.float32 (also for None), torch.float16 or torch.bfloat16.
        channels_last: output in channels-last memory format.
        drop_last: drop the last incomplete batch.
        rank, world_size: every global batch is cut into ``world_size`` equal shards and
            this rank gets shard ``rank`` (same global order on every rank). With
            world_size > 1 an incomplete last batch is cut to a multiple of world_size.
        max_rotation: degrees for "rotate" (1..45, default 25).
        subset: None (the whole split) or int64 indices of the samples to use, into the
            whole split: corruption and per-image randomness stay keyed by the index in the
            whole split, so a subset sees exactly the corrupted samples of the full run.
        cache: without augmentation, prepare the loader's samples (the split, or the subset)
            once and gather batches from them (True), never (False), or when they take at most
            :data:`CACHE_BYTES` ("auto"). Loaders of the same samples and view can share them
            (:meth:`share_prepared`).

    Iterating yields ``(x, y)`` on ``device``: x of shape (B, C, H', W') and ``dtype``,
    y int64 (B,). Each pass is a new epoch (new order, new augmentation draws, same
    corruption); ``set_epoch(e)`` chooses the epoch of the next pass.

    Attributes:
        labels: the corrupted labels of the whole split (int64, on ``device``).
        output_shape: (C, H', W').
        num_samples: samples this rank gets per epoch.
        epoch: the epoch the next pass draws.

    Raises:
        ValueError: unknown split, device, augment, normalize or dtype; batch_size < 1;
            crop larger than the image; images not uint8 or not 4-D; labels outside
            [0, num_classes); rank/world_size inconsistent; subset indices out of range.
    """

    def __init__(self, dataset, corruption: Corruption | str = "none", split: str = "train",
                 batch_size: int = 128, shuffle: bool = True, seed: int = 0, augment: str | None = None,
                 crop: int | None = None, normalize: str | None = "per_image", device="cpu",
                 dtype: torch.dtype = torch.float32, channels_last: bool = False, drop_last: bool = False,
                 rank: int = 0, world_size: int = 1, *, max_rotation: int = DEFAULT_MAX_ROTATION,
                 subset=None, cache="auto"):
        if isinstance(dataset, str):
            from .datasets import load

            dataset = load(dataset)
        if not isinstance(dataset, Dataset):
            raise ValueError(f"dataset must be a rethink.datasets.Dataset or a name, got {type(dataset).__name__}")
        if split not in SPLIT_IDS:
            raise ValueError(f"unknown split {split!r}: expected 'train' or 'test'")
        part = dataset.split(split)
        if part.images.dim() != 4 or part.images.dtype != torch.uint8:
            raise ValueError(
                f"the loader needs uint8 images N x C x H x W, got {part.images.dtype} {tuple(part.images.shape)}")
        _check_labels(part.labels, dataset.num_classes, f"split {split!r} of dataset {dataset.name!r}")
        batch_size, world_size = check_int("batch_size", batch_size, low=1), check_int("world_size", world_size, low=1)
        rank = check_int(f"rank (world_size={world_size})", rank, low=0, high=world_size - 1)
        if batch_size % world_size:
            raise ValueError(f"batch_size={batch_size} is not a multiple of world_size={world_size}")
        if cache not in (True, False, "auto"):
            raise ValueError(f"cache must be True, False or 'auto', got {cache!r}")
        corruption = Corruption.parse(corruption)
        self.device = _build.resolve_device(device)
        self.dataset, self.corruption, self.split = dataset, corruption, split
        self.batch_size, self.shuffle = int(batch_size), bool(shuffle)
        self.seed = _check_seed("seed", seed)
        self.crop, self.normalize = crop, normalize
        self.dtype = torch.float32 if dtype is None else dtype
        self.channels_last, self.drop_last = bool(channels_last), bool(drop_last)
        self.rank, self.world_size = int(rank), int(world_size)
        self._plan = _Plan(dataset.input_shape, corruption, split, seed, augment, crop, normalize, dtype,
                           channels_last, dataset.channel_stats, max_rotation)
        self.augment = self._plan.augment
        self.output_shape = self._plan.output_shape
        total = len(part)
        self._index = None if subset is None else _check_subset(subset, total)
        n = total if self._index is None else int(self._index.numel())
        if n == 0:
            raise ValueError(f"split {split!r} of dataset {dataset.name!r} is empty"
                             + (" (an empty subset)" if subset is not None else ""))
        self._n, self._total = n, total
        self._source = part.images  # what the loader was made from (share_prepared compares it)
        self._images = part.images.contiguous().to(self.device)
        self.labels = corrupted_labels(part.labels, dataset.num_classes, corruption, split).to(self.device)
        if self._index is not None:
            self._index = self._index.to(self.device)
        self._epoch = 0
        full, rem = divmod(n, self.batch_size)
        shard = self.batch_size // self.world_size
        self._last = 0 if self.drop_last else rem // self.world_size
        self._len = full + (1 if self._last else 0)
        self.num_samples = full * shard + self._last
        if self._len == 0:
            raise ValueError(
                f"no batch: {n} samples with batch_size={batch_size}, drop_last={drop_last}, world_size={world_size}")
        itemsize = torch.empty((), dtype=self.dtype).element_size()
        small = n * math.prod(self.output_shape) * itemsize <= CACHE_BYTES
        self._use_cache = self.augment is None and (cache is True or (cache == "auto" and small))
        self._cache = None

    # -- epochs --------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass draw epoch ``epoch`` (an int in [0, 2^32))."""
        self._epoch = check_int("epoch", epoch, low=0, high=2**32 - 1)

    def __len__(self) -> int:
        return self._len

    @property
    def num_classes(self) -> int:
        return self.dataset.num_classes

    @property
    def indices(self) -> torch.Tensor:
        """The samples this loader draws from, as int64 indices into the whole split (on the device)."""
        return self._index if self._index is not None else torch.arange(self._total, device=self.device)

    def order(self, epoch: int) -> torch.Tensor:
        """The global sample order of ``epoch`` (int64 indices into the whole split, on the device)."""
        pos = self._positions(epoch)
        if pos is None:
            return self.indices
        return pos if self._index is None else self._index[pos]

    def _positions(self, epoch: int) -> torch.Tensor | None:
        """The order of ``epoch`` as positions in [0, num samples) among the loader's samples
        (the subset's own order), or None for the unshuffled order."""
        if not self.shuffle:
            return None
        g = torch.Generator().manual_seed(_derive(self.seed, int(epoch), _STREAM_ORDER))
        return torch.randperm(self._n, generator=g).to(self.device)

    def __iter__(self):
        epoch = self._epoch
        self._epoch += 1
        pos = self._positions(epoch)
        order = self.indices if pos is None else (pos if self._index is None else self._index[pos])
        bs, shard = self.batch_size, self.batch_size // self.world_size
        cached = self._prepared() if self._use_cache else None
        if cached is not None:
            positions = pos if pos is not None else torch.arange(self._n, device=self.device)
        for k in range(self._len):
            size = shard if (k + 1) * bs <= self._n else self._last
            start = k * bs + self.rank * size
            idx = order[start : start + size]
            if cached is None:
                yield self._plan.run(self._images, self.labels, idx, epoch, False)
            else:
                # the prepared rows are the loader's samples in their own order: gather by position
                xb = cached.index_select(0, positions[start : start + size])
                if self.channels_last and xb.dim() == 4:
                    xb = xb.contiguous(memory_format=torch.channels_last)
                yield xb, self.labels.index_select(0, idx)

    def _prepared(self) -> torch.Tensor:
        """The loader's samples (the whole split, or the subset in its order) prepared once:
        without augmentation they are the same in every epoch. One kernel call; each image is
        made from its index in the whole split alone, so a row equals the streamed batch's."""
        if self._cache is None:
            x, _ = self._plan.run(self._images, self.labels, self.indices, 0, False)
            self._cache = x
        return self._cache

    def share_prepared(self, other: RandomizedLoader) -> bool:
        """Take ``other``'s prepared samples instead of preparing the same ones again, when
        both prepare their samples (no augmentation) and those are the same: the same image
        tensor of the same split, the same corruption, view, normalization, dtype and layout
        (the op's arguments but the epoch) and the same samples in the same order. Batch
        size, shuffling and rank may differ. Prepares ``other``'s samples now when it has not
        yet. Returns whether they are shared (else nothing changes)."""
        if not isinstance(other, RandomizedLoader) or other is self:
            return False
        if not (self._use_cache and other._use_cache) or self._source is not other._source:
            return False
        if self.split != other.split or self.device != other.device:
            return False
        mine, theirs = (dict(p.config, epoch=0, check_indices=0) for p in (self._plan, other._plan))
        if mine != theirs or self._plan.stats != other._plan.stats or self._plan.dtype != other._plan.dtype:
            return False
        if (self._index is None) != (other._index is None) or (
                self._index is not None and not torch.equal(self._index, other._index)):
            return False
        self._cache = other._prepared()
        return True

    def batch(self, indices, epoch: int | None = None):
        """The batch of the given sample indices (into the whole split, any order) in ``epoch``
        (default: the current one), as (x, y). Raises ValueError for indices outside [0, N)."""
        idx = torch.as_tensor(indices, dtype=torch.int64).to(self.device)
        if idx.dim() != 1:
            raise ValueError(f"indices must be 1-D, got shape {tuple(idx.shape)}")
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self._total):
            bad = int(idx.min()) if int(idx.min()) < 0 else int(idx.max())
            raise ValueError(f"index {bad} out of range for a split of {self._total} samples")
        e = self._epoch if epoch is None else epoch
        return self._plan.run(self._images, self.labels, idx, e, False)

    def materialize(self, epoch: int | None = None):
        """The loader's samples (the whole split, or the subset) in index order for ``epoch``
        as one (x, y) (one kernel call)."""
        return self.batch(self.indices, epoch)

    def __repr__(self) -> str:
        return (
            f"RandomizedLoader({self.dataset.name!r}, {str(self.corruption)!r}, split={self.split!r}, "
            f"batch_size={self.batch_size}, device={str(self.device)!r}, output_shape={self.output_shape}, "
            f"dtype={self.dtype})"
        )


def _check_labels(labels: torch.Tensor, num_classes: int, where: str) -> None:
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        bad = int(labels.min()) if int(labels.min()) < 0 else int(labels.max())
        raise ValueError(f"{where}: label {bad} is outside [0, num_classes={num_classes})")


def _check_subset(subset, total: int) -> torch.Tensor:
    idx = torch.as_tensor(subset)
    if idx.dim() != 1 or idx.dtype.is_floating_point or idx.dtype == torch.bool:
        raise ValueError(f"subset must be a 1-D tensor of integer indices, got {idx.dtype} {tuple(idx.shape)}")
    idx = idx.to(torch.int64).cpu()
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= total):
        bad = int(idx.min()) if int(idx.min()) < 0 else int(idx.max())
        raise ValueError(f"subset index {bad} out of range for a split of {total} samples")
    if idx.unique().numel() != idx.numel():
        raise ValueError("subset indices must be distinct")
    return idx


def randomized_batch(
    images: torch.Tensor,
    labels: torch.Tensor,
    indices: torch.Tensor,
    corruption: Corruption | str = "none",
    *,
    split: str = "train",
    channel_stats=None,
    seed: int = 0,
    epoch: int = 0,
    augment: str | None = None,
    crop: int | None = None,
    normalize: str | None = None,
    dtype: torch.dtype = torch.float32,
    channels_last: bool = False,
    max_rotation: int = DEFAULT_MAX_ROTATION,
    num_classes: int | None = None,
):
    """One fused batch: the op behind :class:`RandomizedLoader`, with full validation.

    Args:
        images: uint8 N x C x H x W (the whole split, on the device of the kernel).
        labels: int64 (N,), the (already corrupted) label table, same device.
        indices: int64 (B,) sample indices in [0, N), same device.
        corruption: pixel corruption applied (label kinds are ignored here: pass the
            corrupted label table).
        channel_stats: (mean, std), C floats each, on the 0..1 scale; needed for
            "gaussian" (std >= 0) and normalize="per_channel" (std > 0).
        num_classes: when given, every label must lie in [0, num_classes); labels must be
            >= 0 in any case.
        Other arguments as in :class:`RandomizedLoader`.

    Returns:
        (x, y): x (B, C, H', W') of ``dtype`` on the device, y int64 (B,).

    Raises:
        ValueError: bad dtypes/shapes/devices, indices or labels out of range, missing or
            non-finite channel_stats, and the loader's argument errors.
    """
    corruption = Corruption.parse(corruption)
    for name, t in (("images", images), ("labels", labels), ("indices", indices)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a tensor, got {type(t).__name__}")
    if images.dim() != 4 or images.dtype != torch.uint8:
        raise ValueError(f"images must be uint8 N x C x H x W, got {images.dtype} {tuple(images.shape)}")
    if labels.dim() != 1 or labels.dtype != torch.int64 or labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"labels must be int64 of shape ({images.shape[0]},), got {labels.dtype} {tuple(labels.shape)}")
    if indices.dim() != 1 or indices.dtype != torch.int64:
        raise ValueError(f"indices must be a 1-D int64 tensor, got {indices.dtype} {tuple(indices.shape)}")
    if not (images.device == labels.device == indices.device):
        raise ValueError(
            f"images, labels, indices on different devices: {images.device}, {labels.device}, {indices.device}")
    _build.resolve_device(images.device)
    if num_classes is not None:
        _check_labels(labels, check_int("num_classes", num_classes, low=1), "labels")
    elif labels.numel() and int(labels.min()) < 0:
        raise ValueError(f"labels: label {int(labels.min())} is negative")
    n = images.shape[0]
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= n):
        bad = int(indices.min()) if int(indices.min()) < 0 else int(indices.max())
        raise ValueError(f"index {bad} out of range for {n} images")
    plan = _Plan(tuple(images.shape[1:]), corruption, split, seed, augment, crop, normalize, dtype, channels_last,
                 lambda: channel_stats, max_rotation)
    epoch = check_int("epoch", epoch, low=0, high=2**32 - 1)
    return plan.run(images.contiguous(), labels.contiguous(), indices, epoch, True)
