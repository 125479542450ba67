"""The corruptions of the randomization test and their plain reference implementation.

The semantics (``../PAPER.md``, "The randomization test") live here, once:

- ``none``: the data as it is.
- ``labels`` (probability ``p``): independently with probability p, each training label
  is replaced by a uniform random class (it may equal the old one, so about
  ``p * (1 - 1/K)`` end up wrong); with ``keep_true=False`` the new class is drawn
  uniformly among the K - 1 *other* classes (about ``p`` end up wrong).
- ``random_labels``: ``labels`` with p = 1.
- ``shuffled_pixels``: ONE random permutation of the pixel positions of the network's
  input view, applied to every image of the training AND the test set. The view is the
  image after rotation, padding, crop and flip: with a 24x24 centre crop of a 28x28 image
  the network sees all 576 pixels of the crop, permuted (:func:`shuffle_view`).
- ``random_pixels``: a different random permutation of the whole image for every image,
  train and test (then cropped: a crop of a random permutation is a random draw of the
  image's pixels, so nothing is lost by permuting first).
- ``gaussian``: every image (train and test) replaced by Gaussian noise whose per-channel
  mean and std match the training set's (on the 0..1 scale; values are not clipped).

Every corruption is drawn once from ``seed`` and stays fixed across epochs. Test labels
stay clean unless ``corrupt_test_labels=True``. A pixel permutation moves whole pixels
(all channels together) with ``unit="pixel"``; ``unit="value"`` permutes all values (of
the view, C*OH*OW, for shuffled pixels; of the image, C*H*W, for random pixels). Gaussian
noise replaces the whole image, then the view is taken.

Per-image permutations and noise are never stored: they are pure functions of (seed,
split, image index, position), computed with a keyed Feistel network (cycle-walking)
and Philox4x32-10 (csrc/randomize.h). This module implements the same functions with
numpy, so :func:`corrupt` (the reference) and the fused loader kernel agree bit for bit
(Gaussian values within 1e-6).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["KINDS", "Corruption", "corrupt", "corrupted_labels", "feistel_permutation", "gaussian_values",
           "shuffle_view"]

KINDS = ("none", "labels", "random_labels", "shuffled_pixels", "random_pixels", "gaussian")
_PIXEL_KINDS = ("shuffled_pixels", "random_pixels", "gaussian")
_UNITS = ("pixel", "value")
#: split ids used in the counters of the random streams
SPLIT_IDS = {"train": 0, "test": 1}


@dataclass(frozen=True)
class Corruption:
    """One randomization of the randomization test.

    Args:
        kind: one of ``KINDS``: "none", "labels", "random_labels", "shuffled_pixels",
            "random_pixels", "gaussian".
        p: probability of replacing each label (kind "labels"); must be 1.0 for the
            other kinds.
        seed: seed of the draw (an int in [0, 2^63)); the draw is fixed across epochs.
        keep_true: for label kinds, whether the random class may equal the true one
            (True: the paper's uniform draw; False: always a different class).
        unit: "pixel" (permute positions, channels move together) or "value" (permute
            all C*H*W values); pixel permutation kinds only.
        corrupt_test_labels: also corrupt the test labels (with an independent draw).

    Raises:
        ValueError: unknown kind or unit, p outside [0, 1] (or != 1 for kinds other
            than "labels"), a seed that is not an int in [0, 2^63).
    """

    kind: str = "none"
    p: float = 1.0
    seed: int = 0
    keep_true: bool = True
    unit: str = "pixel"
    corrupt_test_labels: bool = False

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown corruption kind {self.kind!r}: expected one of {list(KINDS)}")
        try:
            p = float(self.p)
        except (TypeError, ValueError):
            raise ValueError(f"corruption probability p must be a number in [0, 1], got {self.p!r}") from None
        if not (0.0 <= p <= 1.0):
            raise ValueError(f"corruption probability p must be in [0, 1], got {self.p!r}")
        if self.kind != "labels" and p != 1.0:
            raise ValueError(f"p={self.p!r} only applies to kind 'labels' (kind {self.kind!r} needs p=1.0)")
        object.__setattr__(self, "p", p)
        if (
            isinstance(self.seed, bool)
            or not isinstance(self.seed, (int, np.integer))
            or not (0 <= self.seed < 2**63)
        ):
            raise ValueError(f"corruption seed must be an int in [0, 2^63), got {self.seed!r}")
        object.__setattr__(self, "seed", int(self.seed))
        if self.unit not in _UNITS:
            raise ValueError(f"unknown permutation unit {self.unit!r}: expected 'pixel' or 'value'")
        object.__setattr__(self, "keep_true", bool(self.keep_true))
        object.__setattr__(self, "corrupt_test_labels", bool(self.corrupt_test_labels))

    @property
    def is_label_corruption(self) -> bool:
        """True for "labels" and "random_labels"."""
        return self.kind in ("labels", "random_labels")

    @property
    def is_pixel_corruption(self) -> bool:
        """True for "shuffled_pixels", "random_pixels" and "gaussian"."""
        return self.kind in _PIXEL_KINDS

    @property
    def on_view(self) -> bool:
        """True for "shuffled_pixels": its one permutation acts on the network's input view
        (after rotation, crop and flip), not on the stored image (see :func:`shuffle_view`)."""
        return self.kind == "shuffled_pixels"

    @property
    def variant(self) -> str:
        """The variant of the randomization test this corruption belongs to: "true" (none,
        or labels with p = 0), "random_labels" (p = 1), "labels" (0 < p < 1),
        "shuffled_pixels", "random_pixels" or "gaussian"."""
        if self.kind == "none" or (self.kind == "labels" and self.p == 0.0):
            return "true"
        if self.kind == "random_labels" or (self.kind == "labels" and self.p == 1.0):
            return "random_labels"
        return self.kind

    @property
    def label_probability(self) -> float:
        """The probability with which a label is redrawn (0 for non-label kinds)."""
        return {"labels": self.p, "random_labels": 1.0}.get(self.kind, 0.0)

    def __str__(self) -> str:
        parts = [self.kind]
        if self.kind == "labels":
            parts.append(repr(self.p))
        if self.is_label_corruption and not self.keep_true:
            parts.append("different")
        if self.kind in ("shuffled_pixels", "random_pixels") and self.unit != "pixel":
            parts.append(self.unit)
        if self.corrupt_test_labels:
            parts.append("test")
        return ":".join(parts)

    @classmethod
    def parse(cls, spec: str | Corruption, seed: int = 0) -> Corruption:
        """A Corruption from a command-line string (a Corruption is returned as is).

        Grammar: ``kind[:option]...`` with kind in ``KINDS`` or "true" (= "none");
        options: a number (p, for "labels"), "different" (keep_true=False), "value" or
        "pixel" (unit), "test" (corrupt_test_labels). Examples: "none", "labels:0.4",
        "labels:0.4:different", "random_labels", "random_pixels:value", "gaussian".
        ``parse(str(c))`` equals ``c`` up to the seed.

        Raises:
            ValueError: unknown kind or option, a malformed p.
        """
        if isinstance(spec, Corruption):
            return spec
        if not isinstance(spec, str) or not spec.strip():
            raise ValueError(f"cannot parse corruption {spec!r}: expected a string such as 'labels:0.4'")
        fields = [f.strip() for f in spec.strip().split(":")]
        kind = fields[0].lower().replace("-", "_")
        if kind == "true":
            kind = "none"
        if kind not in KINDS:
            raise ValueError(
                f"unknown corruption kind {fields[0]!r} in {spec!r}: expected one of {['true', *KINDS]}"
            )
        kw: dict = {}
        for opt in fields[1:]:
            low = opt.lower()
            if low == "different":
                key, value = "keep_true", False
            elif low in _UNITS:
                key, value = "unit", low
            elif low == "test":
                key, value = "corrupt_test_labels", True
            else:
                try:
                    key, value = "p", float(opt)
                except ValueError:
                    raise ValueError(f"unknown corruption option {opt!r} in {spec!r}") from None
            if key in kw:
                raise ValueError(f"corruption {spec!r} gives {'a probability' if key == 'p' else repr(opt)} twice: "
                                 f"one value per option, e.g. 'labels:0.4:different'")
            kw[key] = value
        if kind == "labels" and "p" not in kw:
            raise ValueError(f"corruption {spec!r} needs a probability, e.g. 'labels:0.4'")
        return cls(kind, seed=seed, **kw)


# --- counter-based randomness: the numpy twin of csrc/randomize.h ------------------

_M32 = np.uint64(0xFFFFFFFF)
STREAM_PERM, STREAM_SHUFFLE, STREAM_GAUSS, STREAM_AUGMENT = 1, 2, 3, 4


def _u64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.uint64) & _M32


def philox4x32_10(c0, c1, c2, c3, k0, k1) -> tuple[np.ndarray, ...]:
    """Philox4x32-10 (Random123) on broadcast numpy arrays of 32-bit words.

    Returns four uint64 arrays holding 32-bit outputs.
    """
    c0, c1, c2, c3, k0, k1 = (_u64(v) for v in (c0, c1, c2, c3, k0, k1))
    c0, c1, c2, c3 = np.broadcast_arrays(c0, c1, c2, c3)
    m0, m1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
    w0, w1 = np.uint64(0x9E3779B9), np.uint64(0xBB67AE85)
    s32 = np.uint64(32)
    for r in range(10):
        if r > 0:
            k0 = (k0 + w0) & _M32
            k1 = (k1 + w1) & _M32
        p0 = m0 * c0
        p1 = m1 * c2
        c0, c1, c2, c3 = (p1 >> s32) ^ c1 ^ k0, p1 & _M32, (p0 >> s32) ^ c3 ^ k1, p0 & _M32
    return c0, c1, c2, c3


def _hash32(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint64(16))
    x = (x * np.uint64(0x7FEB352D)) & _M32
    x = x ^ (x >> np.uint64(15))
    x = (x * np.uint64(0x846CA68B)) & _M32
    return x ^ (x >> np.uint64(16))


def _half_bits(n: int) -> int:
    bits = 2
    while (1 << bits) < n:
        bits += 2
    return bits // 2


def _seed_words(seed: int) -> tuple[int, int]:
    return seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF


def _feistel_keys(seed: int, images, split: int, shared: bool) -> tuple[np.ndarray, ...]:
    lo, hi = _seed_words(seed)
    if shared:
        return philox4x32_10(0, 0, STREAM_SHUFFLE, 0, lo, hi)
    return philox4x32_10(np.asarray(images, dtype=np.uint64), 0, STREAM_PERM, split, lo, hi)


def _feistel_apply(x: np.ndarray, n: int, keys: tuple[np.ndarray, ...]) -> np.ndarray:
    """Feistel with cycle-walking on uint64 arrays; keys broadcast against x."""
    half = np.uint64(_half_bits(n))
    mask = np.uint64((1 << int(half)) - 1)

    def trip(v, ks):
        left, right = v >> half, v & mask
        for k in ks:
            left, right = right, left ^ (_hash32(right ^ k) & mask)
        return (left << half) | right

    keys = tuple(np.broadcast_to(k, x.shape) for k in keys)
    y = trip(x, keys)
    walk = np.nonzero(y >= np.uint64(n))
    while walk[0].size:
        y[walk] = trip(y[walk], tuple(k[walk] for k in keys))
        walk = tuple(w[y[walk] >= np.uint64(n)] for w in walk)
    return y


def feistel_permutation(n: int, seed: int, image: int = 0, split: str | int = "train", shared: bool = False):
    """The permutation of [0, n) that the kernels use (numpy int64 array of length n).

    ``perm[k]`` is the source position of output position k: a corrupted image is
    ``corrupted[k] = original[perm[k]]``. ``shared=True`` gives the one permutation of
    shuffled pixels (image and split ignored); otherwise the permutation of image
    ``image`` of ``split`` (random pixels).
    """
    split_id = SPLIT_IDS[split] if isinstance(split, str) else int(split)
    keys = _feistel_keys(seed, np.uint64(image), split_id, shared)
    return _feistel_apply(np.arange(n, dtype=np.uint64), n, keys).astype(np.int64)


def _feistel_per_image(n: int, seed: int, images: np.ndarray, split_id: int) -> np.ndarray:
    """Permutations of many images at once: (len(images), n) int64."""
    keys = _feistel_keys(seed, images.astype(np.uint64)[:, None], split_id, False)
    x = np.broadcast_to(np.arange(n, dtype=np.uint64)[None, :], (len(images), n)).copy()
    return _feistel_apply(x, n, keys).astype(np.int64)


def gaussian_values(seed: int, images: np.ndarray, num_values: int, split_id: int) -> np.ndarray:
    """Standard normal draws (float64, len(images) x num_values) that the kernels use."""
    lo, hi = _seed_words(seed)
    idx = np.arange(num_values, dtype=np.uint64)
    r0, r1, _, _ = philox4x32_10(
        images.astype(np.uint64)[:, None], idx[None, :] >> np.uint64(1), STREAM_GAUSS, split_id, lo, hi
    )
    scale = 2.3283064365386963e-10
    u1 = (r0.astype(np.float64) + 0.5) * scale
    u2 = (r1.astype(np.float64) + 0.5) * scale
    radius = np.sqrt(-2.0 * np.log(u1))
    theta = 6.283185307179586 * u2
    odd = (idx & np.uint64(1)).astype(bool)[None, :]
    return np.where(odd, radius * np.sin(theta), radius * np.cos(theta))


def _to_unit(images_u8: np.ndarray) -> np.ndarray:
    lut = np.arange(256, dtype=np.float32) / np.float32(255.0)
    return lut[images_u8]


# --- labels ------------------------------------------------------------------------


def _label_seed(seed: int, split: str) -> int:
    if split == "train":
        return seed
    # an independent stream for the test labels
    lo, hi = _seed_words(seed)
    r = philox4x32_10(0, 0, 0x7E57, 0, lo, hi)
    return (int(r[0]) | (int(r[1]) << 32)) & (2**63 - 1)


def corrupted_labels(
    labels: torch.Tensor, num_classes: int, corruption: Corruption, split: str = "train"
) -> torch.Tensor:
    """The labels of a split after ``corruption`` (int64, same device as ``labels``).

    The draw uses a CPU ``torch.Generator`` seeded from ``corruption.seed`` (and the split),
    so it is the same on every device and in every epoch. Non-label corruptions, and the
    test split without ``corrupt_test_labels``, return the labels unchanged (a copy).
    """
    labels = torch.as_tensor(labels)
    if split not in SPLIT_IDS:
        raise ValueError(f"unknown split {split!r}: expected 'train' or 'test'")
    out = labels.detach().to("cpu", torch.int64).clone()
    if not corruption.is_label_corruption or (split == "test" and not corruption.corrupt_test_labels):
        return out.to(labels.device)
    if corruption.keep_true is False and num_classes < 2:
        raise ValueError(f"keep_true=False needs at least 2 classes, got num_classes={num_classes}")
    n = out.shape[0]
    g = torch.Generator().manual_seed(_label_seed(corruption.seed, split))
    redraw = torch.rand(n, generator=g, dtype=torch.float64) < corruption.label_probability
    if corruption.keep_true:
        new = torch.randint(0, num_classes, (n,), generator=g, dtype=torch.int64)
    else:
        new = (out + torch.randint(1, num_classes, (n,), generator=g, dtype=torch.int64)) % num_classes
    out = torch.where(redraw, new, out)
    return out.to(labels.device)


# --- the reference -----------------------------------------------------------------


def corrupted_images(
    images_u8: torch.Tensor, corruption: Corruption, split: str, stats=None, chunk: int = 4096
):
    """The corrupted images of one split, float32 on the 0..1 scale (CPU reference).

    Args:
        images_u8: uint8 N x C x H x W.
        corruption: the Corruption.
        split: "train" or "test" (selects the per-image random streams).
        stats: (mean, std) lists of C floats for "gaussian" (the training set's).
    """
    if images_u8.dtype != torch.uint8 or images_u8.dim() != 4:
        raise ValueError(
            f"images must be uint8 N x C x H x W, got {images_u8.dtype} {tuple(images_u8.shape)}"
        )
    x = images_u8.detach().cpu().numpy()
    n, c, h, w = x.shape
    split_id = SPLIT_IDS[split]
    kind = corruption.kind
    by_value = corruption.unit == "value"
    out = np.empty((n, c, h, w), dtype=np.float32)
    if kind in ("none", "labels", "random_labels"):
        return torch.from_numpy(_to_unit(x))
    if kind == "shuffled_pixels":  # the view is the whole image here
        return shuffle_view(torch.from_numpy(_to_unit(x)), corruption)
    for start in range(0, n, chunk):
        ids = np.arange(start, min(n, start + chunk))
        xs = x[ids]
        if kind == "random_pixels":
            if by_value:
                perm = _feistel_per_image(c * h * w, corruption.seed, ids, split_id)
                ys = np.take_along_axis(xs.reshape(len(ids), -1), perm, axis=1)
            else:
                perm = _feistel_per_image(h * w, corruption.seed, ids, split_id)
                ys = np.take_along_axis(xs.reshape(len(ids), c, -1), perm[:, None, :].repeat(c, 1), axis=2)
            out[ids] = _to_unit(ys.reshape(len(ids), c, h, w))
        else:  # gaussian
            mean, std = stats
            z = gaussian_values(corruption.seed, ids, c * h * w, split_id).reshape(len(ids), c, h * w)
            m = np.asarray(mean, dtype=np.float64)[None, :, None]
            s = np.asarray(std, dtype=np.float64)[None, :, None]
            out[ids] = (m + s * z).astype(np.float32).reshape(len(ids), c, h, w)
    return torch.from_numpy(out)


def shuffle_view(view: torch.Tensor, corruption: Corruption) -> torch.Tensor:
    """Shuffled pixels on a batch of views: the one semantics of the kind.

    ``view`` is B x C x OH x OW (any dtype): what the network is shown, after rotation,
    padding, crop and flip. With ``unit="pixel"`` output position q of the OH*OW positions
    takes the view's position ``perm[q]`` (channels move together); with ``unit="value"``
    output value k of the C*OH*OW values takes value ``perm[k]``. ``perm`` is the one
    permutation of that size from the corruption's seed, the same for every image, train
    and test. Every other kind is returned unchanged.
    """
    if not corruption.on_view:
        return view
    b, c, oh, ow = view.shape
    if corruption.unit == "value":
        perm = torch.from_numpy(feistel_permutation(c * oh * ow, corruption.seed, shared=True))
        return view.reshape(b, -1)[:, perm].reshape(b, c, oh, ow)
    perm = torch.from_numpy(feistel_permutation(oh * ow, corruption.seed, shared=True))
    return view.reshape(b, c, -1)[:, :, perm].reshape(b, c, oh, ow)


def corrupt(dataset, corruption: Corruption | str):
    """The reference implementation: a new Dataset with corrupted images and labels.

    Args:
        dataset: a :class:`rethink.datasets.Dataset` with uint8 images.
        corruption: a :class:`Corruption` or a string for :meth:`Corruption.parse`.

    Shuffled pixels act on the network's view (:func:`shuffle_view`); here the view is the
    whole image. With a crop or an augmentation the loader permutes the cropped view, as
    :func:`rethink.augment.reference_loader_batch` does.

    Returns:
        a Dataset whose splits hold float32 images on the 0..1 scale (CPU; Gaussian
        values as drawn, not clipped) and the corrupted labels (int64). Test labels are
        corrupted only with ``corrupt_test_labels=True``.

    Raises:
        ValueError: images not uint8, an unparsable corruption.
    """
    from .datasets import Dataset, Split

    corruption = Corruption.parse(corruption)
    stats = dataset.channel_stats() if corruption.kind == "gaussian" else None
    splits = {}
    for name in ("train", "test"):
        s = dataset.split(name)
        if s.images.dtype != torch.uint8:
            raise ValueError(f"corrupt needs uint8 images, got {s.images.dtype} in split {name!r}")
        splits[name] = Split(
            corrupted_images(s.images, corruption, name, stats),
            corrupted_labels(s.labels, dataset.num_classes, corruption, name),
            dataset.num_classes,
            name,
        )
    return Dataset(splits["train"], splits["test"], dataset.name, dataset.num_classes)


def expected_label_change(corruption: Corruption, num_classes: int) -> float:
    """Expected fraction of training labels that change: p*(1-1/K), or p with keep_true=False."""
    p = corruption.label_probability
    return p if not corruption.keep_true else p * (1.0 - 1.0 / num_classes)
