"""Corruption semantics (the reference ``rethink.corrupt``) and the counter-based randomness."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import rethink
from rethink.corruption import (
    KINDS,
    Corruption,
    corrupted_labels,
    expected_label_change,
    feistel_permutation,
    gaussian_values,
    philox4x32_10,
)
from rethink.datasets import synthetic


@pytest.fixture(scope="module")
def digits():
    return rethink.datasets.load("digits")


# --- Corruption ------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, kind, p",
    [
        ("none", "none", 1.0),
        ("true", "none", 1.0),
        ("labels:0.4", "labels", 0.4),
        ("random_labels", "random_labels", 1.0),
        ("shuffled_pixels", "shuffled_pixels", 1.0),
        ("random_pixels", "random_pixels", 1.0),
        ("gaussian", "gaussian", 1.0),
    ],
)
def test_parse(spec, kind, p):
    c = Corruption.parse(spec)
    assert c.kind == kind and c.p == p
    assert Corruption.parse(str(c)) == c
    assert c.is_label_corruption == (kind in ("labels", "random_labels"))


@given(
    kind=st.sampled_from(KINDS),
    p=st.floats(0, 1),
    keep_true=st.booleans(),
    unit=st.sampled_from(["pixel", "value"]),
    test_labels=st.booleans(),
)
@settings(max_examples=60, deadline=None)
def test_str_parse_round_trip(kind, p, keep_true, unit, test_labels):
    c = Corruption(
        kind,
        p=p if kind == "labels" else 1.0,
        keep_true=keep_true if kind in ("labels", "random_labels") else True,
        unit=unit if kind in ("shuffled_pixels", "random_pixels") else "pixel",
        corrupt_test_labels=test_labels,
    )
    assert Corruption.parse(str(c)) == c


def test_parse_returns_corruption_as_is():
    c = Corruption("labels", p=0.3, seed=9)
    assert Corruption.parse(c) is c


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(kind="blur"), "blur"),
        (dict(kind="labels", p=1.5), "1.5"),
        (dict(kind="labels", p=-0.1), "-0.1"),
        (dict(kind="random_pixels", p=0.5), "0.5"),
        (dict(kind="labels", p=0.5, seed=-1), "-1"),
        (dict(kind="random_pixels", unit="row"), "row"),
    ],
)
def test_corruption_errors_name_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Corruption(**kwargs)


@pytest.mark.parametrize("spec", ["blur", "labels:abc", "labels", "", "gaussian:sideways"])
def test_parse_errors(spec):
    with pytest.raises(ValueError):
        Corruption.parse(spec)


# --- counter-based randomness -------------------------------------------------------


def test_philox_known_answers():
    # Random123 known-answer vectors for philox4x32_10.
    cases = [
        ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
        ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
        (
            (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
            (0xA4093822, 0x299F31D0),
            (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
        ),
    ]
    for ctr, key, want in cases:
        assert tuple(int(v) for v in philox4x32_10(*ctr, *key)) == want


@given(
    n=st.integers(1, 5000),
    seed=st.integers(0, 2**63 - 1),
    image=st.integers(0, 2**32 - 1),
    shared=st.booleans(),
)
@settings(max_examples=40, deadline=None)
def test_feistel_is_a_bijection_and_matches_the_kernel(n, seed, image, shared):
    perm = feistel_permutation(n, seed, image, "train", shared)
    assert np.array_equal(np.sort(perm), np.arange(n))
    kernel = torch.ops.rethink.feistel_permutation(n, seed, image, 0, shared).numpy()
    assert np.array_equal(perm, kernel)


def test_feistel_positions_uniform_chi_square():
    # Where does position 0 go, over many images? Uniform over n positions.
    n, images = 64, 6400
    from rethink.corruption import _feistel_per_image

    perms = _feistel_per_image(n, 3, np.arange(images), 0)
    counts = np.bincount(perms[:, 0], minlength=n)
    expected = images / n
    chi2 = ((counts - expected) ** 2 / expected).sum()
    # 63 degrees of freedom: mean 63, sd ~11.2; 120 is beyond the 99.999% quantile.
    assert chi2 < 120, chi2
    # and every image's mapping is a bijection
    assert (np.sort(perms, axis=1) == np.arange(n)).all()


def test_feistel_different_images_differ():
    a = feistel_permutation(100, 0, 0)
    b = feistel_permutation(100, 0, 1)
    c = feistel_permutation(100, 0, 0, "test")
    assert not np.array_equal(a, b) and not np.array_equal(a, c)


def test_gaussian_values_standard_normal():
    z = gaussian_values(0, np.arange(200), 500, 0).ravel()
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    # odd/even values (sine/cosine branch) are uncorrelated
    pairs = z.reshape(-1, 2)
    assert abs(np.corrcoef(pairs[:, 0], pairs[:, 1])[0, 1]) < 0.02


# --- labels -------------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.0, 0.2, 0.6, 1.0])
@pytest.mark.parametrize("keep_true", [True, False])
def test_label_change_fraction(p, keep_true):
    k, n = 10, 20000
    labels = torch.randint(0, k, (n,), generator=torch.Generator().manual_seed(1))
    c = Corruption("labels", p=p, seed=4, keep_true=keep_true)
    new = corrupted_labels(labels, k, c)
    frac = (new != labels).double().mean().item()
    want = expected_label_change(c, k)
    assert want == (p if not keep_true else p * (1 - 1 / k))
    assert abs(frac - want) < 4 * math.sqrt(max(want * (1 - want), 1e-9) / n) + 1e-12
    assert int(new.min()) >= 0 and int(new.max()) < k
    if p == 1.0:
        # new labels are uniform over classes (chi-square, 9 dof)
        counts = torch.bincount(new, minlength=k).double()
        chi2 = ((counts - n / k) ** 2 / (n / k)).sum().item()
        assert chi2 < 40


def test_random_labels_equals_labels_p1():
    labels = torch.arange(1000) % 10
    a = corrupted_labels(labels, 10, Corruption("random_labels", seed=2))
    b = corrupted_labels(labels, 10, Corruption("labels", p=1.0, seed=2))
    assert torch.equal(a, b)


def test_labels_fixed_and_seeded():
    labels = torch.arange(500) % 10
    c = Corruption("random_labels", seed=7)
    assert torch.equal(corrupted_labels(labels, 10, c), corrupted_labels(labels, 10, c))
    assert not torch.equal(
        corrupted_labels(labels, 10, c), corrupted_labels(labels, 10, Corruption("random_labels", seed=8))
    )


def test_test_labels_clean_unless_asked(digits):
    c = Corruption("random_labels", seed=1)
    out = rethink.corrupt(digits, c)
    assert torch.equal(out.test.labels, digits.test.labels)
    assert (out.train.labels != digits.train.labels).double().mean() > 0.8
    c2 = Corruption("random_labels", seed=1, corrupt_test_labels=True)
    out2 = rethink.corrupt(digits, c2)
    assert (out2.test.labels != digits.test.labels).double().mean() > 0.8
    assert torch.equal(out2.train.labels, out.train.labels)


# --- pixels -------------------------------------------------------------------------


def test_none_is_identity_on_unit_scale(digits):
    out = rethink.corrupt(digits, "none")
    assert out.train.images.dtype == torch.float32
    assert torch.equal(out.train.images, digits.train.images.float() / 255)
    assert torch.equal(out.train.labels, digits.train.labels)


def test_shuffled_pixels_one_permutation_train_and_test():
    d = synthetic(30, 20, (3, 5, 7))
    c = Corruption("shuffled_pixels", seed=11)
    out = rethink.corrupt(d, c)
    perm = torch.from_numpy(feistel_permutation(35, 11, shared=True))
    assert not torch.equal(perm, torch.arange(35))
    for name in ("train", "test"):
        src = d.split(name).images.float().div(255).reshape(-1, 3, 35)
        assert torch.equal(out.split(name).images.reshape(-1, 3, 35), src[:, :, perm])
    assert torch.equal(out.train.labels, d.train.labels)


def test_random_pixels_bijection_per_image_channels_together():
    # Images whose pixel values are their positions: the corrupted image reveals the permutation.
    h = w = 6
    pos = torch.arange(h * w, dtype=torch.uint8).reshape(1, 1, h, w)
    imgs = torch.cat([pos, pos + 100, pos + 200], dim=1).repeat(40, 1, 1, 1)
    d = rethink.datasets.from_tensors(
        imgs, torch.zeros(40, dtype=torch.long), imgs[:10], torch.zeros(10, dtype=torch.long), 2
    )
    out = rethink.corrupt(d, Corruption("random_pixels", seed=3))
    maps = []
    for name in ("train", "test"):
        x = torch.round(out.split(name).images * 255).to(torch.int64).reshape(-1, 3, h * w)
        assert torch.equal(x[:, 1] - 100, x[:, 0]) and torch.equal(
            x[:, 2] - 200, x[:, 0]
        )  # channels move together
        for row in x[:, 0]:
            assert torch.equal(row.sort().values, torch.arange(h * w))
        maps.append(x[:, 0])
    all_maps = torch.cat(maps)
    assert len({tuple(m.tolist()) for m in all_maps}) == len(all_maps)  # every image its own permutation


def test_random_values_unit_permutes_all_values():
    n, c, h, w = 10, 2, 4, 4
    vals = torch.arange(c * h * w, dtype=torch.uint8).reshape(1, c, h, w).repeat(n, 1, 1, 1)
    d = rethink.datasets.from_tensors(
        vals, torch.zeros(n, dtype=torch.long), vals, torch.zeros(n, dtype=torch.long), 1
    )
    out = rethink.corrupt(d, Corruption("random_pixels", unit="value", seed=2))
    x = torch.round(out.train.images * 255).to(torch.int64).reshape(n, -1)
    for row in x:
        assert torch.equal(row.sort().values, torch.arange(c * h * w))
    # values cross channels (impossible with unit="pixel")
    assert (x[:, : h * w] >= h * w).any()


def test_gaussian_matches_training_stats():
    d = synthetic(400, 100, (3, 8, 8), seed=1)
    # give channels different statistics
    imgs = d.train.images.clone()
    imgs[:, 0] //= 4
    d = rethink.datasets.from_tensors(imgs, d.train.labels, d.test.images, d.test.labels, 10)
    mean, std = d.channel_stats()
    out = rethink.corrupt(d, Corruption("gaussian", seed=5))
    for name in ("train", "test"):
        x = out.split(name).images.transpose(0, 1).reshape(3, -1).double()
        m = x.shape[1]
        for ch in range(3):
            # within 5 standard errors
            assert abs(x[ch].mean().item() - mean[ch]) < 5 * std[ch] / math.sqrt(m)
            assert abs(x[ch].std().item() / std[ch] - 1) < 5 * math.sqrt(0.5 / m)
    assert not torch.equal(out.train.images[:10], out.test.images[:10])
    assert torch.equal(out.train.labels, d.train.labels)


@pytest.mark.parametrize("kind", ["random_labels", "shuffled_pixels", "random_pixels", "gaussian"])
def test_corrupt_deterministic_and_seeded(kind):
    d = synthetic(50, 10, (1, 6, 6))
    a = rethink.corrupt(d, Corruption(kind, seed=1))
    b = rethink.corrupt(d, Corruption(kind, seed=1))
    c = rethink.corrupt(d, Corruption(kind, seed=2))
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.train.labels, b.train.labels)
    assert not (torch.equal(a.train.images, c.train.images) and torch.equal(a.train.labels, c.train.labels))


def test_corrupt_rejects_float_images(digits):
    out = rethink.corrupt(digits, "none")
    with pytest.raises(ValueError, match="uint8"):
        rethink.corrupt(out, "random_pixels")
