"""The fused randomization data path: :class:`RandomizedLoader` and ``randomized_batch``.

The dataset is moved to the device once, as uint8. Each batch is ONE call of the op
``torch.ops.rethink.randomized_batch`` (one kernel launch on CUDA, one
``at::parallel_for`` on the CPU), which gathers the batch's images by index, applies the
pixel corruption (a Feistel permutation derived from (seed, image) or Philox Gaussian
noise: nothing per image is stored), the augmentation (random crop with zero padding 4
and horizontal flip, drawn per (seed, epoch, image)), the center crop, the normalization
and the conversion to the output dtype and layout, and gathers the corrupted labels.
No host synchronization happens per batch and no Python code runs per image.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import _build  # noqa: F401  (loads the extension and registers the ops)
from .corruption import (
    SPLIT_IDS,
    STREAM_AUGMENT,
    Corruption,
    corrupted_labels,
    philox4x32_10,
)
from .datasets import Dataset

__all__ = [
    "AUGMENTS",
    "NORMALIZE",
    "RandomizedLoader",
    "augment_draws",
    "randomized_batch",
    "reference_batch",
]

#: augmentations: None, "crop_flip" (random crop with zero padding 4, horizontal flip), "flip"
AUGMENTS = (None, "crop_flip", "flip")
#: normalizations: None, "per_image" (the paper's whitening), "per_channel" (dataset mean/std)
NORMALIZE = {None: 0, "none": 0, "per_image": 1, "per_channel": 2}
PAD = 4
_PIXEL_MODES = {
    ("shuffled_pixels", "pixel"): 1,
    ("shuffled_pixels", "value"): 2,
    ("random_pixels", "pixel"): 3,
    ("random_pixels", "value"): 4,
    ("gaussian", "pixel"): 5,
    ("gaussian", "value"): 5,
}
_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@torch.library.register_fake("rethink::randomized_batch")
def _randomized_batch_fake(
    images,
    labels,
    indices,
    pixel_mode,
    corruption_seed,
    split,
    gauss_mean,
    gauss_std,
    aug_seed,
    epoch,
    pad,
    flip,
    random_crop,
    out_h,
    out_w,
    normalize,
    norm_mean,
    norm_std,
    dtype,
    channels_last,
    check_indices,
):
    b, c = indices.shape[0], images.shape[1]
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.empty((b, c, out_h, out_w), dtype=dtype, device=images.device, memory_format=fmt)
    return x, labels.new_empty((b,))


@torch.library.register_fake("rethink::feistel_permutation")
def _feistel_permutation_fake(n, seed, image, split, shared):
    return torch.empty((n,), dtype=torch.int64)


def _check_seed(name: str, seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not (0 <= int(seed) < 2**63):
        raise ValueError(f"{name} must be an int in [0, 2^63), got {seed!r}")
    return int(seed)


def _device(device) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if _build.cuda_kernels_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}: expected 'cpu', 'cuda' or 'cuda:N'") from None
    if dev.type == "cpu":
        return dev
    if dev.type != "cuda":
        raise ValueError(f"unsupported device {device!r}: expected 'cpu', 'cuda' or 'cuda:N'")
    if not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but no CUDA device is visible")
    if not _build.build_info()["cuda_kernels"]:
        raise ValueError(f"device {device!r} requested but rethink._C was built without CUDA kernels")
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {device!r}: only {torch.cuda.device_count()} CUDA devices are visible")
    return dev


class _Plan:
    """The op arguments shared by every batch (corruption, augmentation, output)."""

    def __init__(
        self, input_shape, corruption, split, seed, augment, crop, normalize, dtype, channels_last, stats
    ):
        c, h, w = input_shape
        if augment not in AUGMENTS:
            raise ValueError(f"unknown augment {augment!r}: expected one of {list(AUGMENTS)}")
        if crop is not None:
            if isinstance(crop, bool) or not isinstance(crop, (int, np.integer)) or crop < 1:
                raise ValueError(f"crop must be a positive int or None, got {crop!r}")
            if crop > h or crop > w:
                raise ValueError(f"crop={crop} is larger than the image ({h} x {w})")
        if normalize not in NORMALIZE:
            raise ValueError(f"unknown normalize {normalize!r}: expected 'per_image', 'per_channel' or None")
        dtype = torch.float32 if dtype is None else dtype
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be torch.float32, torch.float16 or torch.bfloat16, got {dtype!r}")
        if split not in SPLIT_IDS:
            raise ValueError(f"unknown split {split!r}: expected 'train' or 'test'")
        self.corruption = corruption
        self.pixel_mode = _PIXEL_MODES.get((corruption.kind, corruption.unit), 0)
        self.corruption_seed = corruption.seed
        self.split_id = SPLIT_IDS[split]
        self.seed = _check_seed("seed", seed)
        self.out_h = int(crop) if crop is not None else h
        self.out_w = int(crop) if crop is not None else w
        self.pad = PAD if augment == "crop_flip" else 0
        self.random_crop = augment == "crop_flip"
        self.flip = augment in ("crop_flip", "flip")
        self.normalize = NORMALIZE[normalize]
        mean, std = stats() if (self.pixel_mode == 5 or self.normalize == 2) else ([], [])
        self.gauss_mean, self.gauss_std = (mean, std) if self.pixel_mode == 5 else ([], [])
        if self.normalize == 2:
            std = [s if s > 0 else 1.0 for s in std]
            self.norm_mean, self.norm_std = mean, std
        else:
            self.norm_mean, self.norm_std = [], []
        self.dtype = dtype
        self.channels_last = bool(channels_last)
        self.output_shape = (c, self.out_h, self.out_w)

    def run(self, images, labels, indices, epoch: int, check_indices: bool):
        return torch.ops.rethink.randomized_batch(
            images,
            labels,
            indices,
            self.pixel_mode,
            self.corruption_seed,
            self.split_id,
            self.gauss_mean,
            self.gauss_std,
            self.seed,
            int(epoch),
            self.pad,
            self.flip,
            self.random_crop,
            self.out_h,
            self.out_w,
            self.normalize,
            self.norm_mean,
            self.norm_std,
            self.dtype,
            self.channels_last,
            check_indices,
        )


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
        augment: None, "crop_flip" (random crop with zero padding 4 and horizontal flip,
            drawn per (seed, epoch, image)) or "flip".
        crop: None or the output size (the paper's center crop, e.g. 28; with
            "crop_flip" the crop window is drawn from the padded image instead).
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

    Iterating yields ``(x, y)`` on ``device``: x of shape (B, C, H', W') and ``dtype``,
    y int64 (B,). Each pass is a new epoch (new order, new augmentation draws, same
    corruption); ``set_epoch(e)`` chooses the epoch of the next pass.

    Attributes:
        labels: the corrupted labels of the split (int64, on ``device``).
        output_shape: (C, H', W').
        num_samples: samples this rank gets per epoch.
        epoch: the epoch the next pass draws.

    Raises:
        ValueError: unknown split, device, augment, normalize or dtype; batch_size < 1;
            crop larger than the image; images not uint8 or not 4-D; labels out of
            range; rank/world_size inconsistent.
    """

    def __init__(
        self,
        dataset,
        corruption: Corruption | str = "none",
        split: str = "train",
        batch_size: int = 128,
        shuffle: bool = True,
        seed: int = 0,
        augment: str | None = None,
        crop: int | None = None,
        normalize: str | None = "per_image",
        device="cpu",
        dtype: torch.dtype = torch.float32,
        channels_last: bool = False,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ):
        if isinstance(dataset, str):
            from .datasets import load

            dataset = load(dataset)
        if not isinstance(dataset, Dataset):
            raise ValueError(
                f"dataset must be a rethink.datasets.Dataset or a name, got {type(dataset).__name__}"
            )
        if split not in SPLIT_IDS:
            raise ValueError(f"unknown split {split!r}: expected 'train' or 'test'")
        part = dataset.split(split)
        if part.images.dim() != 4 or part.images.dtype != torch.uint8:
            raise ValueError(
                f"the loader needs uint8 images N x C x H x W, got {part.images.dtype} {tuple(part.images.shape)}"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if isinstance(world_size, bool) or not isinstance(world_size, (int, np.integer)) or world_size < 1:
            raise ValueError(f"world_size must be an int >= 1, got {world_size!r}")
        if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not (0 <= rank < world_size):
            raise ValueError(f"rank must be an int in [0, world_size={world_size}), got {rank!r}")
        if batch_size % world_size:
            raise ValueError(f"batch_size={batch_size} is not a multiple of world_size={world_size}")
        corruption = Corruption.parse(corruption)
        self.device = _device(device)
        self.dataset = dataset
        self.corruption = corruption
        self.split = split
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = _check_seed("seed", seed)
        self.augment = augment
        self.crop = crop
        self.normalize = normalize
        self.dtype = torch.float32 if dtype is None else dtype
        self.channels_last = bool(channels_last)
        self.drop_last = bool(drop_last)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self._plan = _Plan(
            dataset.input_shape,
            corruption,
            split,
            seed,
            augment,
            crop,
            normalize,
            dtype,
            channels_last,
            dataset.channel_stats,
        )
        self.output_shape = self._plan.output_shape
        n = len(part)
        if n == 0:
            raise ValueError(f"split {split!r} of dataset {dataset.name!r} is empty")
        self._n = n
        self._images = part.images.contiguous().to(self.device)
        self.labels = corrupted_labels(part.labels, dataset.num_classes, corruption, split).to(self.device)
        self._epoch = 0
        full, rem = divmod(n, self.batch_size)
        shard = self.batch_size // self.world_size
        self._last = 0 if self.drop_last else rem // self.world_size
        self._len = full + (1 if self._last else 0)
        self.num_samples = full * shard + self._last
        if self._len == 0:
            raise ValueError(
                f"no batch: {n} samples with batch_size={batch_size}, drop_last={drop_last}, world_size={world_size}"
            )

    # -- epochs --------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass draw epoch ``epoch`` (an int in [0, 2^32))."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or not (0 <= epoch < 2**32):
            raise ValueError(f"epoch must be an int in [0, 2^32), got {epoch!r}")
        self._epoch = int(epoch)

    def __len__(self) -> int:
        return self._len

    @property
    def num_classes(self) -> int:
        return self.dataset.num_classes

    def order(self, epoch: int) -> torch.Tensor:
        """The global sample order of ``epoch`` (int64, on the device)."""
        if not self.shuffle:
            return torch.arange(self._n, device=self.device)
        g = torch.Generator().manual_seed(_derive(self.seed, int(epoch), _STREAM_ORDER))
        return torch.randperm(self._n, generator=g).to(self.device)

    def __iter__(self):
        epoch = self._epoch
        self._epoch += 1
        order = self.order(epoch)
        bs, shard = self.batch_size, self.batch_size // self.world_size
        for k in range(self._len):
            size = shard if (k + 1) * bs <= self._n else self._last
            start = k * bs + self.rank * size
            yield self._plan.run(self._images, self.labels, order[start : start + size], epoch, False)

    def batch(self, indices, epoch: int | None = None):
        """The batch of the given sample indices (any order) in ``epoch`` (default: the
        current one), as (x, y). Raises ValueError for indices outside [0, N)."""
        idx = torch.as_tensor(indices, dtype=torch.int64).to(self.device)
        if idx.dim() != 1:
            raise ValueError(f"indices must be 1-D, got shape {tuple(idx.shape)}")
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self._n):
            bad = int(idx.min()) if int(idx.min()) < 0 else int(idx.max())
            raise ValueError(f"index {bad} out of range for a split of {self._n} samples")
        e = self._epoch if epoch is None else epoch
        return self._plan.run(self._images, self.labels, idx, e, False)

    def materialize(self, epoch: int | None = None):
        """The whole split in dataset order for ``epoch`` as one (x, y) (one kernel call)."""
        return self.batch(torch.arange(self._n), epoch)

    def __repr__(self) -> str:
        return (
            f"RandomizedLoader({self.dataset.name!r}, {str(self.corruption)!r}, split={self.split!r}, "
            f"batch_size={self.batch_size}, device={str(self.device)!r}, output_shape={self.output_shape}, "
            f"dtype={self.dtype})"
        )


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
):
    """One fused batch: the op behind :class:`RandomizedLoader`, with full validation.

    Args:
        images: uint8 N x C x H x W (the whole split, on the device of the kernel).
        labels: int64 (N,), the (already corrupted) label table, same device.
        indices: int64 (B,) sample indices in [0, N), same device.
        corruption: pixel corruption applied (label kinds are ignored here: pass the
            corrupted label table).
        channel_stats: (mean, std), C floats each, on the 0..1 scale; needed for
            "gaussian" and normalize="per_channel".
        Other arguments as in :class:`RandomizedLoader`.

    Returns:
        (x, y): x (B, C, H', W') of ``dtype`` on the device, y int64 (B,).

    Raises:
        ValueError: bad dtypes/shapes/devices, indices or labels out of range, missing
            channel_stats, and the loader's argument errors.
    """
    corruption = Corruption.parse(corruption)
    for name, t in (("images", images), ("labels", labels), ("indices", indices)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a tensor, got {type(t).__name__}")
    if images.dim() != 4 or images.dtype != torch.uint8:
        raise ValueError(f"images must be uint8 N x C x H x W, got {images.dtype} {tuple(images.shape)}")
    if labels.dim() != 1 or labels.dtype != torch.int64 or labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"labels must be int64 of shape ({images.shape[0]},), got {labels.dtype} {tuple(labels.shape)}"
        )
    if indices.dim() != 1 or indices.dtype != torch.int64:
        raise ValueError(f"indices must be a 1-D int64 tensor, got {indices.dtype} {tuple(indices.shape)}")
    if not (images.device == labels.device == indices.device):
        raise ValueError(
            f"images, labels, indices on different devices: {images.device}, {labels.device}, {indices.device}"
        )
    _device(images.device)
    n = images.shape[0]
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= n):
        bad = int(indices.min()) if int(indices.min()) < 0 else int(indices.max())
        raise ValueError(f"index {bad} out of range for {n} images")
    needs_stats = corruption.kind == "gaussian" or normalize == "per_channel"
    if needs_stats:
        if (
            channel_stats is None
            or len(channel_stats) != 2
            or any(len(s) != images.shape[1] for s in channel_stats)
        ):
            raise ValueError(
                f"channel_stats must be (mean, std) with {images.shape[1]} floats each, got {channel_stats!r}"
            )
    stats = (
        (lambda: (list(map(float, channel_stats[0])), list(map(float, channel_stats[1]))))
        if needs_stats
        else None
    )
    plan = _Plan(
        tuple(images.shape[1:]),
        corruption,
        split,
        seed,
        augment,
        crop,
        normalize,
        dtype,
        channels_last,
        stats,
    )
    if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or not (0 <= epoch < 2**32):
        raise ValueError(f"epoch must be an int in [0, 2^32), got {epoch!r}")
    return plan.run(images.contiguous(), labels.contiguous(), indices, int(epoch), True)


# --- plain-PyTorch reference of the augmentation / normalization ---------------------


def augment_draws(seed: int, images, epoch: int, split: str, range_y: int, range_x: int):
    """The augmentation draws of the kernels (numpy): (off_y, off_x, flip) int64/bool arrays."""
    lo, hi = seed & 0xFFFFFFFF, seed >> 32
    r0, r1, r2, _ = philox4x32_10(
        np.asarray(images, dtype=np.uint64), epoch, STREAM_AUGMENT, SPLIT_IDS[split], lo, hi
    )
    return (
        (r0 % np.uint64(range_y + 1)).astype(np.int64),
        (r1 % np.uint64(range_x + 1)).astype(np.int64),
        (r2 & np.uint64(1)).astype(bool),
    )


def reference_batch(
    corrupted: torch.Tensor,
    indices,
    *,
    split: str = "train",
    seed: int = 0,
    epoch: int = 0,
    augment: str | None = None,
    crop: int | None = None,
    normalize: str | None = None,
    channel_stats=None,
    dtype: torch.dtype = torch.float32,
    channels_last: bool = False,
) -> torch.Tensor:
    """Plain-PyTorch batched reference of the loader's image path after corruption.

    ``corrupted`` is a split from :func:`rethink.corrupt` (float32, 0..1 scale, CPU);
    pad, crop, flip, normalize and cast are separate torch ops here.
    """
    idx = torch.as_tensor(indices, dtype=torch.int64)
    x = corrupted[idx].to(torch.float32)
    b, c, h, w = x.shape
    oh = ow = crop if crop is not None else None
    oh, ow = (oh or h), (ow or w)
    pad = PAD if augment == "crop_flip" else 0
    ry, rx = h + 2 * pad - oh, w + 2 * pad - ow
    off_y, off_x, flip = augment_draws(
        seed,
        idx.numpy(),
        epoch,
        split,
        ry if augment == "crop_flip" else 0,
        rx if augment == "crop_flip" else 0,
    )
    if augment != "crop_flip":
        off_y = np.full(b, ry // 2)
        off_x = np.full(b, rx // 2)
    if augment is None:
        flip = np.zeros(b, dtype=bool)
    xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    rows = torch.as_tensor(off_y)[:, None] + torch.arange(oh)[None, :]
    cols = torch.as_tensor(off_x)[:, None] + torch.arange(ow)[None, :]
    cols = torch.where(torch.as_tensor(flip)[:, None], cols.flip(1), cols)
    bi = torch.arange(b)[:, None, None, None]
    ci = torch.arange(c)[None, :, None, None]
    out = xp[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]
    if normalize == "per_image":
        flat = out.reshape(b, -1).to(torch.float64)
        mean = flat.mean(1)
        std = flat.var(1, unbiased=False).sqrt()
        adj = torch.clamp(std, min=1.0 / math.sqrt(flat.shape[1]))
        out = ((flat - mean[:, None]) / adj[:, None]).to(torch.float32).reshape(out.shape)
    elif normalize == "per_channel":
        m = torch.tensor(channel_stats[0], dtype=torch.float32)[None, :, None, None]
        s = torch.tensor(channel_stats[1], dtype=torch.float32)[None, :, None, None]
        out = (out - m) / s
    out = out.to(dtype)
    if channels_last:
        out = out.contiguous(memory_format=torch.channels_last)
    return out
