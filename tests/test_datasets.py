"""Dataset loaders: digits (bundled), CIFAR-10 (pickle and binary) and IDX files written by
the tests themselves in the real formats."""

import gzip
import os
import pickle
import struct
import time

import numpy as np
import pytest
import torch

import rethink
from rethink import datasets
from rethink.datasets import DatasetError, from_tensors, load, synthetic


def test_digits():
    d = load("digits")
    assert d.name == "digits" and d.num_classes == 10 and d.input_shape == (1, 8, 8)
    assert len(d.train) + len(d.test) == 1797 and len(d.test) == 360
    for s in (d.train, d.test):
        assert s.images.dtype == torch.uint8 and s.labels.dtype == torch.int64
        assert s.images.shape[1:] == (1, 8, 8) and s.num_classes == 10
        assert int(s.images.max()) == 255 and int(s.images.min()) == 0
    # stratified: every class in both splits with about 20% in the test split
    tr = torch.bincount(d.train.labels, minlength=10)
    te = torch.bincount(d.test.labels, minlength=10)
    frac = te.double() / (tr + te).double()
    assert (frac > 0.17).all() and (frac < 0.23).all()
    # fixed split: loading again gives the same tensors
    d2 = load("digits")
    assert torch.equal(d.train.images, d2.train.images) and torch.equal(d.test.labels, d2.test.labels)
    assert d.train.name == "train" and d.test.name == "test"


def test_unknown_name():
    with pytest.raises(ValueError, match="imagenet"):
        load("imagenet")


def test_channel_stats():
    imgs = torch.stack([torch.zeros(2, 2, 2), torch.full((2, 2, 2), 255.0)]).to(torch.uint8)
    imgs[:, 1] = 51
    d = from_tensors(imgs, torch.tensor([0, 1]), imgs, torch.tensor([0, 1]))
    mean, std = d.channel_stats()
    assert mean == pytest.approx([0.5, 0.2]) and std == pytest.approx([0.5, 0.0])


def test_synthetic():
    d = synthetic(20, 5, (3, 4, 4), num_classes=7, seed=1)
    assert d.input_shape == (3, 4, 4) and d.num_classes == 7 and len(d.train) == 20 and len(d.test) == 5
    assert torch.equal(d.train.images, synthetic(20, 5, (3, 4, 4), num_classes=7, seed=1).train.images)
    with pytest.raises(ValueError, match="-1"):
        synthetic(-1, 5)


def test_from_tensors_infers_classes():
    imgs = torch.zeros(3, 1, 2, 2, dtype=torch.uint8)
    d = from_tensors(imgs, torch.tensor([0, 4, 1]), imgs, torch.tensor([2, 2, 2], dtype=torch.int32))
    assert d.num_classes == 5 and d.test.labels.dtype == torch.int64


def test_from_tensors_shape_mismatch():
    a = torch.zeros(3, 1, 2, 2, dtype=torch.uint8)
    b = torch.zeros(3, 1, 3, 3, dtype=torch.uint8)
    with pytest.raises(ValueError, match="differ"):
        from_tensors(a, torch.zeros(3, dtype=torch.long), b, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="2 labels"):
        from_tensors(a, torch.zeros(2, dtype=torch.long), a, torch.zeros(3, dtype=torch.long))


# --- CIFAR-10 -----------------------------------------------------------------------


def _cifar_arrays(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3072), dtype=np.uint8), rng.integers(0, 10, n).tolist()


def _write_cifar_py(folder, n=4):
    folder.mkdir(parents=True)
    want = []
    for k, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        data, labels = _cifar_arrays(n, k)
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": labels, b"batch_label": name.encode()}, f)
        want.append((data, labels))
    return want


def test_cifar10_pickle(tmp_path):
    want = _write_cifar_py(tmp_path / "cifar-10-batches-py")
    d = load("cifar10", tmp_path)
    assert d.input_shape == (3, 32, 32) and len(d.train) == 20 and len(d.test) == 4
    assert torch.equal(d.train.images[4].reshape(-1), torch.from_numpy(want[1][0][0]))
    assert d.train.labels.tolist() == sum((w[1] for w in want[:5]), [])
    assert d.test.labels.tolist() == want[5][1]
    # the red plane comes first (CIFAR stores R, G, B planes of 1024 bytes)
    assert torch.equal(d.test.images[0, 1].reshape(-1), torch.from_numpy(want[5][0][0, 1024:2048]))


def test_cifar10_binary(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    want = []
    for k, name in enumerate([f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]):
        data, labels = _cifar_arrays(3, k)
        rec = np.concatenate([np.asarray(labels, dtype=np.uint8)[:, None], data], axis=1)
        rec.tofile(folder / name)
        want.append((data, labels))
    d = load("cifar10", tmp_path)
    assert len(d.train) == 15 and len(d.test) == 3
    assert torch.equal(d.test.images.reshape(3, -1), torch.from_numpy(want[5][0]))
    assert d.test.labels.tolist() == want[5][1]


def test_cifar10_missing_names_file_and_layout(tmp_path):
    with pytest.raises(DatasetError, match="cifar-10-batches-py") as e:
        load("cifar10", tmp_path)
    assert str(tmp_path) in str(e.value)
    _write_cifar_py(tmp_path / "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DatasetError, match="data_batch_3"):
        load("cifar10", tmp_path)


def test_cifar10_damaged(tmp_path):
    _write_cifar_py(tmp_path / "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DatasetError, match="test_batch.*damaged|damaged.*test_batch"):
        load("cifar10", tmp_path)
    folder = tmp_path / "b" / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        (folder / name).write_bytes(bytes(3073 * 2 + 5))
    with pytest.raises(DatasetError, match="3073"):
        load("cifar10", tmp_path / "b")


# --- MNIST / Fashion-MNIST (IDX) ----------------------------------------------------


def _idx_bytes(arr: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + b"".join(struct.pack(">I", s) for s in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def _write_idx(folder, gz, n_train=6, n_test=4):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test),
    }
    for name, arr in arrays.items():
        data = _idx_bytes(arr)
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(
    "name, sub", [("mnist", ""), ("mnist", "MNIST/raw"), ("fashion_mnist", "FashionMNIST/raw")]
)
def test_idx_datasets(tmp_path, gz, name, sub):
    arrays = _write_idx(tmp_path / sub if sub else tmp_path, gz)
    d = load(name, tmp_path)
    assert d.name == name and d.input_shape == (1, 28, 28) and d.num_classes == 10
    assert torch.equal(
        d.train.images[:, 0], torch.from_numpy(arrays["train-images-idx3-ubyte"].astype(np.uint8))
    )
    assert d.test.labels.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()


def test_idx_files_are_read_once_while_unchanged_and_every_load_gets_new_tensors(tmp_path, monkeypatch):
    arrays = _write_idx(tmp_path, gz=True)
    settled = time.time() - 60
    for f in tmp_path.iterdir():
        os.utime(f, (settled, settled))
    datasets.clear_cache()
    calls = []
    real = gzip.decompress
    monkeypatch.setattr(gzip, "decompress", lambda data: calls.append(len(data)) or real(data))
    a = load("mnist", tmp_path)
    b = load("mnist", tmp_path)
    assert len(calls) == 4  # the second load decompresses nothing
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.test.labels, b.test.labels)
    a.train.images.zero_()
    a.test.labels.zero_()
    expected = torch.from_numpy(arrays["train-images-idx3-ubyte"].astype(np.uint8))
    assert torch.equal(b.train.images[:, 0], expected)
    assert torch.equal(load("mnist", tmp_path).train.images[:, 0], expected)
    assert load("mnist", tmp_path).test.labels.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    assert len(calls) == 4
    # a rewritten file is read again; just written, it is not kept (a rewrite within the same
    # timestamp tick could go unnoticed)
    labels = (arrays["t10k-labels-idx1-ubyte"] + 1) % 10
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(labels)))
    assert load("mnist", tmp_path).test.labels.tolist() == labels.tolist() and len(calls) == 5
    load("mnist", tmp_path)
    assert len(calls) == 6
    datasets.clear_cache()
    load("mnist", tmp_path)
    assert len(calls) == 10


def test_idx_missing_names_file(tmp_path):
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte"):
        load("mnist", tmp_path)


def test_idx_damaged(tmp_path):
    _write_idx(tmp_path, gz=False)
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:-1])  # truncated
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte"):
        load("mnist", tmp_path)
    path.write_bytes(b"\x12\x34\x08\x01" + bytes(8))  # bad magic
    with pytest.raises(DatasetError, match="magic"):
        load("mnist", tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"\x1f\x8b garbage")  # broken gzip
    with pytest.raises(DatasetError, match="t10k-images-idx3-ubyte"):
        load("mnist", tmp_path)


def test_idx_damaged_streams_headers_and_shapes_are_named(tmp_path):
    _write_idx(tmp_path, gz=True)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    good = path.read_bytes()
    path.write_bytes(good[:12] + bytes(b ^ 0x5A for b in good[12:40]) + good[40:])  # corrupt deflate data
    with pytest.raises(DatasetError, match="damaged IDX file .*t10k-images-idx3-ubyte.gz.*gzip"):
        load("mnist", tmp_path)
    path.write_bytes(gzip.compress(struct.pack(">BBBB", 0, 0, 8, 3) + struct.pack(">III", 2**32 - 1, 2**32 - 1,
                                                                                   2**32 - 1)))
    with pytest.raises(DatasetError, match="t10k-images-idx3-ubyte.gz: header says"):
        load("mnist", tmp_path)
    path.write_bytes(gzip.compress(_idx_bytes(np.zeros((4, 27, 28)))))  # the wrong image size
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte.gz: images must be \(N, 28, 28\), got \(4, 27, 28\)"):
        load("mnist", tmp_path)


@pytest.mark.parametrize("data, labels, match", [
    (np.full((4, 3072), 300, dtype=np.int64), [0, 1, 2, 3], "pixel value 300 outside the whole numbers 0..255"),
    (np.full((4, 3072), -1, dtype=np.int64), [0, 1, 2, 3], "pixel value -1"),
    (np.full((4, 3072), 0.5), [0, 1, 2, 3], "pixel value 0.5"),
    (np.zeros((4, 3072), dtype=np.uint8), [0, 1, 2.5, 3], "label value 2.5"),
])
def test_cifar10_pickle_values_that_a_cast_would_wrap_are_named(tmp_path, data, labels, match):
    _write_cifar_py(tmp_path / "cifar-10-batches-py")
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_2", "wb") as f:
        pickle.dump({b"data": data, b"labels": labels}, f)
    with pytest.raises(DatasetError, match=f"data_batch_2.*{match}"):
        load("cifar10", tmp_path)


def test_default_root_env(tmp_path, monkeypatch):
    monkeypatch.setenv("RETHINK_DATA", str(tmp_path))
    assert datasets.default_root() == tmp_path
    _write_idx(tmp_path, gz=True)
    assert len(load("mnist").train) == 6


# --- Fashion-MNIST from the system's package manager --------------------------------------

_FASHION = rethink.datasets.SYSTEM_DIRS["fashion_mnist"][0]
requires_fashion = pytest.mark.skipif(
    not (_FASHION / "train-images-idx3-ubyte.gz").exists(),
    reason=f"Fashion-MNIST is not installed at {_FASHION} (make data, or apt-get install dataset-fashion-mnist)")


@requires_fashion
def test_fashion_mnist_found_in_the_system_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("RETHINK_DATA", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./data here
    d = rethink.datasets.load("fashion_mnist")
    assert d.input_shape == (1, 28, 28) and len(d.train) == 60_000 and len(d.test) == 10_000
    assert torch.bincount(d.train.labels, minlength=10).tolist() == [6000] * 10
    assert torch.bincount(d.test.labels, minlength=10).tolist() == [1000] * 10
    assert d.train.images.dtype == torch.uint8 and int(d.train.images.max()) == 255


def test_missing_dataset_says_where_it_looked_and_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.delenv("RETHINK_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(rethink.datasets.SYSTEM_DIRS, "fashion_mnist", [tmp_path / "system"])
    with pytest.raises(rethink.datasets.DatasetError, match=r"looked in: data, .*system.*apt-get install "
                                                           r"dataset-fashion-mnist"):
        rethink.datasets.load("fashion_mnist")
    monkeypatch.setenv("RETHINK_DATA", str(tmp_path / "env"))
    with pytest.raises(rethink.datasets.DatasetError, match=r"looked in: .*env, data, "):
        rethink.datasets.load("fashion_mnist")
    with pytest.raises(rethink.datasets.DatasetError, match=r"looked in: .*given$|looked in: [^,]*given\)"):
        rethink.datasets.load("fashion_mnist", root=tmp_path / "given")


def test_huge_class_counts_and_seeds_are_named():
    imgs = torch.zeros(2, 1, 3, 3, dtype=torch.uint8)
    with pytest.raises(ValueError, match="num_classes must be an integer >= 1 and <= "):
        rethink.datasets.from_tensors(imgs, torch.tensor([0, 1]), imgs, torch.tensor([0, 1]), num_classes=10**12)
    with pytest.raises(ValueError, match="num_classes"):
        rethink.datasets.synthetic(4, 2, num_classes=2**40)
    with pytest.raises(ValueError, match="seed must be an integer in"):
        rethink.datasets.synthetic(4, 2, seed=2**64)
    with pytest.raises(ValueError, match="num_classes must be an integer >= 1 and <= 1048576"):
        rethink.models.create("mlp1x512", (1, 8, 8), 2**40)


@pytest.mark.parametrize("args, kwargs, match", [
    (("4", 2), {}, "n_train must be an integer >= 1, got '4'"),
    ((4, -1), {}, "n_test must be an integer >= 0, got -1"),
    ((4, 2), dict(shape=("1", "8", "8")), r"shape \(C, H, W\) must be 3 positive integers, got \('1', '8', '8'\)"),
    ((4, 2), dict(shape=(1, 8)), "must be 3 positive integers"),
    ((4, 2), dict(num_classes=2.0), "num_classes must be an integer"),
])
def test_synthetic_names_values_of_the_wrong_type(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        rethink.datasets.synthetic(*args, **kwargs)
