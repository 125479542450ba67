"""The augmentations of the randomization test and their plain-PyTorch reference.

The semantics live here, once: the fused kernels (csrc/randomized_batch.h) are tested
against :func:`reference_batch`.

- ``"crop"``: a random ``crop`` x ``crop`` window inside the image, no padding (the paper's
  random crop; at test time the centre window).
- ``"flip"``: a horizontal flip with probability 1/2.
- ``"rotate"``: a rotation about the image centre by a whole number of degrees drawn
  uniformly from [-max_rotation, max_rotation], nearest neighbour, zero outside the image
  (the small rotations of the paper's Appendix E).
- ``"crop_flip"``: zero padding 4, a random crop and a flip (the usual CIFAR augmentation).

Tokens combine with "+" (``"crop+flip+rotate"``). Per output pixel the path is: rotation,
zero padding, crop window, flip. Every draw comes from Philox4x32-10 keyed by the loader's
seed and counted by (image, epoch, split): ``augment_draws`` gives the same draws as the kernels.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._check import check_int, check_seed
from .corruption import SPLIT_IDS, STREAM_AUGMENT, Corruption, corrupt, philox4x32_10, shuffle_view

__all__ = ["AUGMENT_TOKENS", "AUGMENTS", "DEFAULT_MAX_ROTATION", "PAD", "augment_draws", "augment_parts",
           "check_view", "parse_augment", "reference_batch", "reference_loader_batch"]

#: augmentation tokens, combined with "+": "crop" (random crop inside the image, no
#: padding: the paper's), "flip" (horizontal flip), "rotate" (a whole number of degrees in
#: [-max_rotation, max_rotation]), "crop_flip" (zero padding 4, random crop, flip).
AUGMENT_TOKENS = ("crop_flip", "crop", "flip", "rotate")
AUGMENTS = (None, "crop_flip", "crop", "flip", "rotate", "crop+flip", "crop+flip+rotate")  # examples
PAD = 4
#: default rotation range of "rotate", in degrees (Appendix E: small rotations)
DEFAULT_MAX_ROTATION = 25


def parse_augment(augment) -> str | None:
    """The canonical form of an augmentation: None, or tokens of :data:`AUGMENT_TOKENS`
    joined with "+" in that order (``"flip+crop"`` -> ``"crop+flip"``; ``"none"`` -> None).

    Raises:
        ValueError: an unknown token, a repeated one, or "crop" with "crop_flip".
    """
    if augment is None:
        return None
    if not isinstance(augment, str):
        raise ValueError(f"augment must be a string such as 'crop+flip' or None, got {augment!r}")
    text = augment.strip().lower()
    if text in ("", "none", "noaug", "false"):
        return None
    tokens = [t.strip() for t in text.split("+")]
    for t in tokens:
        if t not in AUGMENT_TOKENS:
            raise ValueError(f"unknown augment {augment!r}: combine {', '.join(AUGMENT_TOKENS)} with '+' "
                             f"(e.g. 'crop+flip'), or None")
    if len(set(tokens)) != len(tokens) or ("crop" in tokens and "crop_flip" in tokens):
        raise ValueError(f"augment {augment!r} repeats a token (crop_flip already holds crop and flip)")
    return "+".join(t for t in AUGMENT_TOKENS if t in tokens)


def augment_parts(augment: str | None) -> dict:
    """What a canonical augmentation does: pad, random_crop, flip, rotate (see :func:`parse_augment`)."""
    tokens = set(augment.split("+")) if augment else set()
    legacy = "crop_flip" in tokens
    return {"pad": PAD if legacy else 0, "random_crop": legacy or "crop" in tokens,
            "flip": legacy or "flip" in tokens, "rotate": "rotate" in tokens}


def check_view(h: int, w: int, augment: str | None, crop, max_rotation) -> tuple[int, int, int]:
    """The output size and rotation range of a view: ``(out_h, out_w, degrees)`` of the
    canonical ``augment`` with ``crop`` (None: the whole image) on ``h`` x ``w`` images;
    ``degrees`` is ``max_rotation`` with "rotate", else 0. The one check of these settings
    (the loader and :func:`reference_batch` both use it).

    Raises:
        ValueError: crop not an integer >= 1 or larger than the image; "crop" without a
            smaller crop; max_rotation with "rotate" not a whole number in [1, 45].
    """
    from . import _build

    parts = augment_parts(augment)
    if crop is not None:
        crop = check_int("crop", crop, low=1)
        if crop > h or crop > w:
            raise ValueError(f"crop={crop} is larger than the image ({h} x {w})")
    if parts["random_crop"] and not parts["pad"] and (crop is None or (crop >= h and crop >= w)):
        raise ValueError(f"augment 'crop' draws a crop window inside the {h} x {w} image: give a smaller "
                         f"crop (e.g. crop={max(1, min(h, w) * 6 // 7)}), got crop={crop!r}")
    rot = 0
    if parts["rotate"]:
        rot = check_int("max_rotation", max_rotation, low=1, high=_build._C.max_rotation)
    return (h if crop is None else crop), (w if crop is None else crop), rot


def augment_draws(seed: int, images, epoch: int, split: str, range_y: int, range_x: int, max_rotation: int = 0):
    """The augmentation draws of the kernels (numpy): (off_y, off_x, flip, degrees) arrays:
    crop offsets in [0, range] (int64), the flip bit (bool) and the rotation in whole
    degrees in [-max_rotation, max_rotation] (int64)."""
    lo, hi = seed & 0xFFFFFFFF, seed >> 32
    r0, r1, r2, r3 = philox4x32_10(
        np.asarray(images, dtype=np.uint64), epoch, STREAM_AUGMENT, SPLIT_IDS[split], lo, hi
    )
    degrees = (r3 % np.uint64(2 * max_rotation + 1)).astype(np.int64) - max_rotation
    return (
        (r0 % np.uint64(range_y + 1)).astype(np.int64),
        (r1 % np.uint64(range_x + 1)).astype(np.int64),
        (r2 & np.uint64(1)).astype(bool),
        degrees,
    )


def _rotation_sources(h: int, w: int, degrees: np.ndarray) -> torch.Tensor:
    """(B, H*W) int64: the source pixel of every pixel of the rotated images, -1 outside.
    The same float64 arithmetic as source_pixel in csrc/randomized_batch.h."""
    cy, cx = 0.5 * (h - 1), 0.5 * (w - 1)
    dy = (np.arange(h, dtype=np.float64) - cy)[None, :, None]
    dx = (np.arange(w, dtype=np.float64) - cx)[None, None, :]
    rad = degrees.astype(np.float64) * (math.pi / 180.0)
    c = np.array([math.cos(r) for r in rad])[:, None, None]
    s = np.array([math.sin(r) for r in rad])[:, None, None]
    sy = np.floor(cy + (c * dy + (-(s * dx))) + 0.5)
    sx = np.floor(cx + (s * dy + c * dx) + 0.5)
    inside = (sy >= 0) & (sy < h) & (sx >= 0) & (sx < w)
    src = np.where(inside, sy * w + sx, -1).astype(np.int64)
    ident = (degrees == 0)[:, None, None]
    base = (np.arange(h)[:, None] * w + np.arange(w)[None, :])[None]
    return torch.from_numpy(np.where(ident, base, src).reshape(len(degrees), h * w))


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
    max_rotation: int = DEFAULT_MAX_ROTATION,
    shuffle: Corruption | None = None,
) -> torch.Tensor:
    """Plain-PyTorch batched reference of the loader's image path after corruption.

    ``corrupted`` is a split from :func:`rethink.corrupt` (float32, 0..1 scale, CPU);
    rotate, pad, crop, flip, normalize and cast are separate torch ops here. ``shuffle``: a
    shuffled-pixels corruption applied to the view after the crop and flip, before the
    normalization (:func:`rethink.corruption.shuffle_view`); ``corrupted`` then holds the
    images without it (:func:`reference_loader_batch` does both). Returns B x C x OH x OW
    of ``dtype``. Bad settings raise the loader's ValueErrors (:func:`check_view`), naming
    the setting.
    """
    augment = parse_augment(augment)
    parts = augment_parts(augment)
    if not isinstance(corrupted, torch.Tensor) or corrupted.dim() != 4:
        raise ValueError(f"corrupted must be a split's images (N, C, H, W), got "
                         f"{tuple(corrupted.shape) if isinstance(corrupted, torch.Tensor) else type(corrupted).__name__}")
    oh, ow, rot = check_view(corrupted.shape[2], corrupted.shape[3], augment, crop, max_rotation)
    seed = check_seed("seed", seed)
    check_int("epoch", epoch, low=0, high=2**32 - 1)
    if split not in SPLIT_IDS:
        raise ValueError(f"unknown split {split!r}: expected 'train' or 'test'")
    idx = torch.as_tensor(indices, dtype=torch.int64)
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= len(corrupted)):
        raise ValueError(f"indices must be in [0, {len(corrupted)}), got values in [{int(idx.min())}, {int(idx.max())}]")
    x = corrupted[idx].to(torch.float32)
    b, c, h, w = x.shape
    pad = parts["pad"]
    ry, rx = h + 2 * pad - oh, w + 2 * pad - ow
    off_y, off_x, flip, degrees = augment_draws(seed, idx.numpy(), epoch, split, ry if parts["random_crop"] else 0,
                                                rx if parts["random_crop"] else 0, rot)
    if not parts["random_crop"]:
        off_y, off_x = np.full(b, ry // 2), np.full(b, rx // 2)
    if not parts["flip"]:
        flip = np.zeros(b, dtype=bool)
    if rot:
        src = _rotation_sources(h, w, degrees)  # (B, H*W)
        flat = torch.cat([x.reshape(b, c, h * w), torch.zeros(b, c, 1)], dim=2)
        gather = torch.where(src < 0, h * w, src)[:, None, :].expand(b, c, h * w)
        x = flat.gather(2, gather).reshape(b, c, h, w)
    xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    rows = torch.as_tensor(off_y)[:, None] + torch.arange(oh)[None, :]
    cols = torch.as_tensor(off_x)[:, None] + torch.arange(ow)[None, :]
    cols = torch.where(torch.as_tensor(flip)[:, None], cols.flip(1), cols)
    bi = torch.arange(b)[:, None, None, None]
    ci = torch.arange(c)[None, :, None, None]
    out = xp[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]
    if shuffle is not None:
        out = shuffle_view(out, shuffle)
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


def reference_loader_batch(dataset, corruption: Corruption | str, indices, *, split: str = "train",
                           **view) -> torch.Tensor:
    """The plain reference of one batch of ``RandomizedLoader(dataset, corruption, ...)``:
    :func:`rethink.corrupt` for the corruptions of the image, then :func:`reference_batch`
    for the view, with shuffled pixels applied to the view.

    Args:
        dataset: a :class:`rethink.datasets.Dataset` (uint8 images).
        corruption: a Corruption or its string (with its seed).
        indices: image indices of the split, in batch order.
        split: "train" or "test".
        **view: :func:`reference_batch`'s settings (seed, epoch, augment, crop, normalize,
            channel_stats, dtype, channels_last, max_rotation).

    Returns: B x C x OH x OW of ``view["dtype"]`` (float32 by default).
    """
    c = Corruption.parse(corruption)
    images = corrupt(dataset, Corruption("none") if c.on_view else c).split(split).images
    return reference_batch(images, indices, split=split, shuffle=c if c.on_view else None, **view)
