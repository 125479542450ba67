"""RandomizedLoader and the fused op rethink::randomized_batch (CPU and, when present, CUDA)."""

import math

import pytest
import torch
from conftest import DEVICES, requires_cuda
from hypothesis import given, settings
from hypothesis import strategies as st

import rethink
from rethink import Corruption, RandomizedLoader
from rethink.augment import augment_draws, reference_batch, reference_loader_batch
from rethink.datasets import from_tensors, synthetic

PIXEL_SPECS = [
    "none",
    "random_labels",
    "labels:0.5:different",
    "shuffled_pixels",
    "shuffled_pixels:value",
    "random_pixels",
    "random_pixels:value",
    "gaussian",
]


@pytest.fixture(scope="module")
def small():
    return synthetic(70, 30, (3, 10, 9), seed=2)


@pytest.fixture(scope="module")
def digits():
    return rethink.datasets.load("digits")


def _cat(loader):
    xs, ys = zip(*loader)
    return torch.cat(xs), torch.cat(ys)


# --- reference parity ---------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("spec", PIXEL_SPECS)
@pytest.mark.parametrize("split", ["train", "test"])
def test_parity_with_reference(device, spec, split, digits):
    c = Corruption.parse(spec, seed=3)
    ref = rethink.corrupt(digits, c).split(split)
    loader = RandomizedLoader(
        digits, c, split=split, batch_size=97, shuffle=False, normalize=None, device=device
    )
    x, y = _cat(loader)
    assert x.device.type == device and x.dtype == torch.float32 and y.dtype == torch.int64
    x, y = x.cpu(), y.cpu()
    if c.kind == "gaussian":
        torch.testing.assert_close(x, ref.images, rtol=0, atol=1e-6)
    else:
        assert torch.equal(x, ref.images)
    assert torch.equal(y, ref.labels)
    assert torch.equal(loader.labels.cpu(), ref.labels)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("augment", [None, "flip", "crop_flip", "rotate", "crop+flip+rotate"])
@pytest.mark.parametrize("crop", [None, 7])
@pytest.mark.parametrize("normalize", [None, "per_image", "per_channel"])
def test_augment_and_normalize_match_reference(device, augment, crop, normalize, small):
    if augment == "crop+flip+rotate" and crop is None:
        pytest.skip("a random crop inside the image needs a window smaller than it")
    c = Corruption("random_pixels", seed=1)
    ref = rethink.corrupt(small, c).train.images
    loader = RandomizedLoader(
        small, c, batch_size=16, seed=5, augment=augment, crop=crop, normalize=normalize, device=device
    )
    loader.set_epoch(3)
    order = loader.order(3).cpu()
    x, _ = _cat(loader)
    want = reference_batch(
        ref,
        order,
        seed=5,
        epoch=3,
        augment=augment,
        crop=crop,
        normalize=normalize,
        channel_stats=small.channel_stats(),
    )
    assert x.shape == want.shape == (70, 3, crop or 10, crop or 9)
    torch.testing.assert_close(x.cpu(), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_dtype_and_layout(device, dtype, channels_last, small):
    c = Corruption("gaussian", seed=2)
    loader = RandomizedLoader(
        small, c, batch_size=32, shuffle=False, dtype=dtype, channels_last=channels_last, device=device
    )
    x, _ = next(iter(loader))
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    assert x.dtype == dtype and x.is_contiguous(memory_format=fmt)
    f32 = RandomizedLoader(small, c, batch_size=32, shuffle=False, device=device)
    x32, _ = next(iter(f32))
    assert torch.equal(x.cpu(), x32.cpu().to(dtype))  # one rounding from the float32 value


# --- semantics of the loader --------------------------------------------------------


def test_per_image_whitening_stats(small):
    loader = RandomizedLoader(small, "none", batch_size=70, normalize="per_image")
    x, _ = next(iter(loader))
    flat = x.reshape(70, -1).double()
    torch.testing.assert_close(flat.mean(1), torch.zeros(70, dtype=torch.float64), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        flat.std(1, unbiased=False), torch.ones(70, dtype=torch.float64), atol=1e-4, rtol=0
    )


def test_whitening_floor_for_constant_images():
    imgs = torch.full((4, 1, 5, 5), 77, dtype=torch.uint8)
    d = from_tensors(imgs, torch.zeros(4, dtype=torch.long), imgs, torch.zeros(4, dtype=torch.long), 1)
    x, _ = next(iter(RandomizedLoader(d, "none", batch_size=4)))
    assert torch.equal(x, torch.zeros_like(x))  # std 0 -> divided by 1/sqrt(25), mean removed


def test_epochs_new_order_and_augmentation_same_corruption(small):
    c = Corruption("random_labels", seed=9)
    loader = RandomizedLoader(small, c, batch_size=70, seed=1, augment="crop_flip", normalize=None)
    (x0, y0), (x1, y1) = next(iter(loader)), next(iter(loader))
    assert loader.epoch == 2
    assert not torch.equal(y0, y1)  # new order
    # same corruption: the label of each sample is the same in both epochs
    o0, o1 = loader.order(0), loader.order(1)
    lab = torch.empty(70, dtype=torch.long)
    lab[o0] = y0
    assert torch.equal(lab[o1], y1)
    assert torch.equal(lab, loader.labels)
    # new augmentation draws: the same image differs between epochs
    a0, a1 = x0[o0.argsort()], x1[o1.argsort()]
    assert (a0 != a1).flatten(1).any(1).float().mean() > 0.5


def test_set_epoch_resumes(small):
    a = RandomizedLoader(small, "random_pixels", batch_size=16, seed=4, augment="crop_flip")
    for _ in range(3):
        last = _cat(a)
    b = RandomizedLoader(small, "random_pixels", batch_size=16, seed=4, augment="crop_flip")
    b.set_epoch(2)
    again = _cat(b)
    assert torch.equal(last[0], again[0]) and torch.equal(last[1], again[1])


def test_determinism_and_seeds(small):
    def run(seed, cseed):
        loader = RandomizedLoader(
            small, Corruption("random_pixels", seed=cseed), batch_size=16, seed=seed, augment="crop_flip"
        )
        return _cat(loader)

    a, b = run(0, 0), run(0, 0)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], run(1, 0)[0])
    assert not torch.equal(a[0], run(0, 1)[0])


def test_corruption_independent_of_loader_seed(small):
    c = Corruption("random_labels", seed=2)
    a = RandomizedLoader(small, c, seed=0)
    b = RandomizedLoader(small, c, seed=123)
    assert torch.equal(a.labels, b.labels)


@pytest.mark.parametrize(
    "n, bs, drop_last, want_len",
    [(70, 16, False, 5), (70, 16, True, 4), (64, 16, False, 4), (5, 16, False, 1)],
)
def test_len_and_sizes(n, bs, drop_last, want_len, small):
    d = synthetic(n, 3, (1, 4, 4))
    loader = RandomizedLoader(d, "none", batch_size=bs, drop_last=drop_last)
    sizes = [x.shape[0] for x, _ in loader]
    assert len(loader) == len(sizes) == want_len
    assert sum(sizes) == loader.num_samples == (n // bs * bs if drop_last else n)
    assert loader.output_shape == (1, 4, 4)


def test_shards_cover_global_batches(small):
    ws = 3
    full = RandomizedLoader(small, "random_labels", batch_size=24, seed=6, normalize=None)
    shards = [
        RandomizedLoader(small, "random_labels", batch_size=24, seed=6, normalize=None, rank=r, world_size=ws)
        for r in range(ws)
    ]
    assert len({len(s) for s in shards}) == 1
    assert all(s.num_samples == shards[0].num_samples for s in shards)
    for batches in zip(full, *shards):
        (gx, gy), parts = batches[0], batches[1:]
        k = parts[0][0].shape[0]
        assert all(p[0].shape[0] == k for p in parts)
        assert torch.equal(torch.cat([p[0] for p in parts]), gx[: ws * k])
        assert torch.equal(torch.cat([p[1] for p in parts]), gy[: ws * k])
    # 70 = 2 * 24 + 22: the last global batch is cut to 21 = 3 * 7
    assert shards[0].num_samples == 2 * 8 + 7


def test_materialize_and_batch(small):
    loader = RandomizedLoader(small, "gaussian", batch_size=8, shuffle=False, normalize=None)
    x, y = loader.materialize()
    xs, ys = _cat(loader)
    assert torch.equal(x, xs) and torch.equal(y, ys)
    bx, by = loader.batch([5, 0, 5])
    assert torch.equal(bx[0], bx[2]) and torch.equal(bx[1], x[0]) and torch.equal(by, y[[5, 0, 5]])
    with pytest.raises(ValueError, match="70"):
        loader.batch([70])


def test_load_by_name_and_digits_shape():
    loader = RandomizedLoader("digits", "random_labels", batch_size=128, crop=6)
    x, y = next(iter(loader))
    assert x.shape == (128, 1, 6, 6) and loader.output_shape == (1, 6, 6)
    assert loader.num_samples == 1437 and len(loader) == math.ceil(1437 / 128)


# --- errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(split="val"), "val"),
        (dict(batch_size=0), "0"),
        (dict(crop=11), "11"),
        (dict(augment="twirl"), "twirl"),
        (dict(augment="crop"), "crop"),  # a random crop needs a window smaller than the image
        (dict(augment="crop+crop_flip"), "crop_flip"),
        (dict(augment="rotate", max_rotation=90), "max_rotation"),
        (dict(subset=[0, 70]), "70"),
        (dict(subset=[1, 1]), "distinct"),
        (dict(normalize="zca"), "zca"),
        (dict(device="tpu"), "tpu"),
        (dict(dtype=torch.int32), "int32"),
        (dict(corruption="blur"), "blur"),
        (dict(rank=3, world_size=3), "3"),
        (dict(batch_size=10, world_size=3), "10"),
        (dict(seed=-5), "-5"),
    ],
)
def test_loader_errors_name_the_value(kwargs, match, small):
    with pytest.raises(ValueError, match=match):
        RandomizedLoader(small, **kwargs)


def test_bad_dataset_inputs():
    with pytest.raises(ValueError, match="float32"):
        from_tensors(
            torch.zeros(2, 1, 3, 3),
            torch.zeros(2, dtype=torch.long),
            torch.zeros(2, 1, 3, 3),
            torch.zeros(2, dtype=torch.long),
        )
    with pytest.raises(ValueError, match="4-D"):
        from_tensors(
            torch.zeros(2, 3, 3, dtype=torch.uint8),
            torch.zeros(2, dtype=torch.long),
            torch.zeros(2, 3, 3, dtype=torch.uint8),
            torch.zeros(2, dtype=torch.long),
        )
    imgs = torch.zeros(2, 1, 3, 3, dtype=torch.uint8)
    with pytest.raises(ValueError, match="12"):
        from_tensors(imgs, torch.tensor([0, 12]), imgs, torch.tensor([0, 1]), num_classes=10)
    with pytest.raises(ValueError, match="uint8"):
        RandomizedLoader(rethink.corrupt(synthetic(4, 2, (1, 3, 3)), "none"))


@requires_cuda
def test_unknown_cuda_index():
    with pytest.raises(ValueError, match="cuda:99"):
        RandomizedLoader(synthetic(4, 2, (1, 3, 3)), device="cuda:99")


# --- the op itself --------------------------------------------------------------------


def _op_args(images, labels, indices, dtype=torch.float32, stats=None, **kw):
    """The raw op's arguments: config integers by the names the extension exports."""
    from rethink.loader import BATCH_FIELDS

    config = dict(pixel_mode=3, corruption_seed=1, split=0, aug_seed=2, epoch=0, pad=4, random_crop=1, flip=1,
                  max_rotation=0, out_h=images.shape[-2], out_w=images.shape[-1], normalize=1, channels_last=0,
                  check_indices=1)
    config.update(kw)
    assert set(config) == set(BATCH_FIELDS)
    c = images.shape[1] if images.dim() == 4 else 1
    return (images, labels, indices, [int(config[f]) for f in BATCH_FIELDS],
            list(stats) if stats is not None else [0.0] * (4 * c), dtype)


@pytest.mark.parametrize("device", DEVICES)
def test_op_rejects_bad_inputs_without_crashing(device):
    imgs = torch.zeros(6, 2, 5, 5, dtype=torch.uint8, device=device)
    labs = torch.zeros(6, dtype=torch.long, device=device)
    idx = torch.tensor([0, 5], device=device)
    op = torch.ops.rethink.randomized_batch
    bad = [
        _op_args(imgs, labs, torch.tensor([0, 6], device=device)),
        _op_args(imgs, labs, torch.tensor([-1], device=device)),
        _op_args(imgs.float(), labs, idx),
        _op_args(imgs[0], labs, idx),
        _op_args(imgs, labs[:3], idx),
        _op_args(imgs, labs.int(), idx),
        _op_args(imgs, labs, idx.int()),
        _op_args(imgs, labs, idx, pixel_mode=9),
        _op_args(imgs, labs, idx, pixel_mode=5, stats=[0.5, 0.5, float("nan"), 0.1] + [0.0] * 4),  # NaN std
        _op_args(imgs, labs, idx, pixel_mode=5, stats=[0.5, 0.5, -1.0, 0.1] + [0.0] * 4),  # negative std
        _op_args(imgs, labs, idx, out_h=14),
        _op_args(imgs, labs, idx, normalize=2),  # per-channel with std 0
        _op_args(imgs, labs, idx, normalize=2, stats=[0.0] * 4 + [0.5, float("inf"), 1.0, 1.0]),
        _op_args(imgs, labs, idx, dtype=torch.float64),
        _op_args(imgs, labs, idx, epoch=-1),
        _op_args(imgs, labs, idx, max_rotation=46),
        _op_args(imgs, labs, idx, flip=2),
        _op_args(imgs, labs, idx, stats=[0.0] * 3),  # wrong length
        _op_args(imgs, labs, idx, aug_seed=-3),
        (imgs, labs, idx, [0] * 5, [0.0] * 8, torch.float32),  # config of the wrong length
    ]
    for args in bad:
        with pytest.raises(RuntimeError):
            op(*args)
    x, y = op(*_op_args(imgs, labs, idx))
    assert x.shape == (2, 2, 5, 5)


@pytest.mark.parametrize("device", DEVICES)
def test_public_randomized_batch_validates(device):
    imgs = torch.zeros(6, 2, 5, 5, dtype=torch.uint8, device=device)
    labs = torch.zeros(6, dtype=torch.long, device=device)
    with pytest.raises(ValueError, match="6"):
        rethink.randomized_batch(imgs, labs, torch.tensor([6], device=device))
    with pytest.raises(ValueError, match="channel_stats"):
        rethink.randomized_batch(imgs, labs, torch.tensor([1], device=device), "gaussian")
    x, y = rethink.randomized_batch(
        imgs, labs, torch.tensor([1, 2], device=device), "gaussian", channel_stats=([0.5, 0.5], [0.1, 0.2])
    )
    assert x.shape == (2, 2, 5, 5)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("channels_last", [False, True])
def test_opcheck(device, channels_last):
    imgs = torch.randint(0, 256, (8, 3, 6, 6), dtype=torch.uint8, device=device)
    labs = torch.arange(8, device=device)
    idx = torch.tensor([3, 1, 7], device=device)
    torch.library.opcheck(
        torch.ops.rethink.randomized_batch,
        _op_args(imgs, labs, idx, channels_last=int(channels_last), pixel_mode=5,
                 stats=[0.1, 0.2, 0.3, 1.0, 0.5, 0.2] + [0.0] * 6),
    )
    torch.library.opcheck(torch.ops.rethink.randomized_batch,
                          _op_args(imgs, labs, idx, max_rotation=30, normalize=2, pad=0, out_h=4, out_w=4,
                                   stats=[0.0] * 6 + [0.4, 0.5, 0.6, 0.2, 0.3, 0.4]))
    torch.library.opcheck(
        torch.ops.rethink.randomized_batch, _op_args(imgs, labs, idx, dtype=torch.bfloat16, out_h=4, out_w=5)
    )


def test_opcheck_feistel():
    torch.library.opcheck(torch.ops.rethink.feistel_permutation, (100, 3, 2, 0, False))


def test_compiles_under_torch_compile(small):
    imgs, labs = small.train.images, small.train.labels

    @torch.compile(backend="eager", fullgraph=True)
    def f(i):
        return torch.ops.rethink.randomized_batch(*_op_args(imgs, labs, i))

    idx = torch.arange(5)
    x, y = f(idx)
    x2, y2 = torch.ops.rethink.randomized_batch(*_op_args(imgs, labs, idx))
    assert torch.equal(x, x2) and torch.equal(y, y2)


# --- CPU / CUDA parity --------------------------------------------------------------


@requires_cuda
@pytest.mark.parametrize("spec", PIXEL_SPECS)
@pytest.mark.parametrize("augment", [None, "crop_flip"])
@pytest.mark.parametrize("normalize", [None, "per_image", "per_channel"])
def test_cpu_cuda_parity(spec, augment, normalize, small):
    kw = dict(batch_size=16, seed=3, augment=augment, crop=8, normalize=normalize)
    a = _cat(RandomizedLoader(small, Corruption.parse(spec, seed=1), device="cpu", **kw))
    b = _cat(RandomizedLoader(small, Corruption.parse(spec, seed=1), device="cuda", **kw))
    assert torch.equal(a[1], b[1].cpu())
    if normalize is None and spec != "gaussian":
        assert torch.equal(a[0], b[0].cpu())
    else:
        torch.testing.assert_close(a[0], b[0].cpu(), rtol=1e-5, atol=1e-5)


def test_auto_device_and_default_dtype(small):
    loader = RandomizedLoader(small, "none", device="auto", dtype=None, batch_size=8)
    want = "cuda" if rethink.cuda_kernels_available() else "cpu"
    x, y = next(iter(loader))
    assert x.device.type == want and x.dtype == torch.float32 and loader.labels.device.type == want


@given(
    c=st.integers(1, 4),
    h=st.integers(1, 11),
    w=st.integers(1, 11),
    spec=st.sampled_from(PIXEL_SPECS),
    augment=st.sampled_from([None, "flip", "crop_flip", "rotate", "crop", "crop+flip", "flip+rotate",
                             "crop_flip+rotate"]),
    crop_frac=st.floats(0.1, 1.0),
    normalize=st.sampled_from([None, "per_image", "per_channel"]),
    channels_last=st.booleans(),
    seed=st.integers(0, 2**63 - 1),
    epoch=st.integers(0, 2**32 - 1),
)
@settings(max_examples=40, deadline=None)
def test_random_configurations_match_reference(
    c, h, w, spec, augment, crop_frac, normalize, channels_last, seed, epoch
):
    d = synthetic(12, 5, (c, h, w), seed=seed % 1000)
    crop = max(1, int(min(h, w) * crop_frac))
    if augment in ("crop", "crop+flip") and crop >= min(h, w):
        crop = min(h, w) - 1
        if crop < 1:
            return  # a 1-pixel-wide image has no smaller crop window
    corr = Corruption.parse(spec, seed=seed)
    ref = rethink.corrupt(d, corr).test
    loader = RandomizedLoader(
        d,
        corr,
        split="test",
        batch_size=4,
        seed=seed,
        augment=augment,
        crop=crop,
        normalize=normalize,
        channels_last=channels_last,
    )
    loader.set_epoch(epoch)
    order = loader.order(epoch)
    x, y = _cat(loader)
    want = reference_loader_batch(
        d,
        corr,
        order,
        split="test",
        seed=seed,
        epoch=epoch,
        augment=augment,
        crop=crop,
        normalize=normalize,
        channel_stats=d.channel_stats(),
        channels_last=channels_last,
    )
    torch.testing.assert_close(x, want, rtol=1e-5, atol=2e-5)
    assert torch.equal(y, ref.labels[order])


# --- shuffled pixels act on the network's view ---------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("unit", ["pixel", "value"])
@pytest.mark.parametrize("augment", [None, "crop", "crop+flip+rotate", "crop_flip"])
def test_shuffled_pixels_permute_the_cropped_view(device, unit, augment):
    d = synthetic(30, 10, (2, 12, 11), seed=4)
    c = Corruption("shuffled_pixels", seed=7, unit=unit)
    crop = 8
    for split in ("train", "test"):
        loader = RandomizedLoader(d, c, split=split, batch_size=7, seed=3, augment=augment if split == "train" else None,
                                  crop=crop, normalize=None, device=device)
        loader.set_epoch(1)
        order = loader.order(1).cpu()
        x, _ = _cat(loader)
        x = x.cpu()
        want = reference_loader_batch(d, c, order, split=split, seed=3, epoch=1,
                                      augment=augment if split == "train" else None, crop=crop)
        assert torch.equal(x, want)
        # the same view without the corruption holds exactly these values, permuted by one
        # permutation of the view's positions (or values), the same for every image
        plain = reference_batch(rethink.corrupt(d, "none").split(split).images, order, split=split, seed=3,
                                epoch=1, augment=augment if split == "train" else None, crop=crop)
        assert torch.equal(x.flatten(1).sort(1).values, plain.flatten(1).sort(1).values)
        n = crop * crop * (2 if unit == "value" else 1)
        perm = torch.from_numpy(rethink.corruption.feistel_permutation(n, 7, shared=True))
        if unit == "value":
            assert torch.equal(x.flatten(1), plain.flatten(1)[:, perm])
        else:
            assert torch.equal(x.flatten(2), plain.flatten(2)[:, :, perm])


def test_shuffled_pixels_without_a_crop_are_the_reference_of_corrupt():
    d = synthetic(10, 4, (1, 6, 6), seed=1)
    c = Corruption("shuffled_pixels", seed=2)
    x, _ = _cat(RandomizedLoader(d, c, batch_size=5, shuffle=False, normalize=None))
    assert torch.equal(x, rethink.corrupt(d, c).train.images)


def test_centre_crop_of_a_28x28_image_shows_every_cropped_pixel_permuted():
    # the paper's MLP on Fashion-MNIST: a 24x24 centre crop of 28x28 -> all 576 pixels of the crop
    d = synthetic(4, 2, (1, 28, 28), seed=3)
    c = Corruption("shuffled_pixels", seed=0)
    x, _ = _cat(RandomizedLoader(d, c, batch_size=4, shuffle=False, crop=24, normalize=None))
    centre = rethink.corrupt(d, "none").train.images[:, :, 2:26, 2:26]
    assert x.shape == (4, 1, 24, 24)
    assert torch.equal(x.flatten(1).sort(1).values, centre.flatten(1).sort(1).values)
    assert not torch.equal(x, centre)


# --- the paper's augmentation, checked by hand ------------------------------------------


def _ramp(h=6, w=7):
    """One image whose pixel values say where they come from: value = 10 * y + x (+1)."""
    img = (torch.arange(h * w, dtype=torch.int64).reshape(1, 1, h, w) // w * 10
           + torch.arange(h * w).reshape(1, 1, h, w) % w + 1).to(torch.uint8)
    return from_tensors(img.repeat(64, 1, 1, 1), torch.zeros(64, dtype=torch.long),
                        img[:1].clone(), torch.zeros(1, dtype=torch.long), num_classes=1)


def test_random_crop_windows_lie_inside_the_image_and_test_time_is_the_centre():
    d = _ramp()
    src = d.train.images[0, 0].float() / 255
    loader = RandomizedLoader(d, batch_size=64, shuffle=False, augment="crop", crop=4, normalize=None, seed=3)
    x, _ = next(iter(loader))
    windows = set()
    for img in x[:, 0]:
        # every crop equals a 4x4 window of the source image, without padding
        found = [(oy, ox) for oy in range(3) for ox in range(4) if torch.equal(img, src[oy:oy + 4, ox:ox + 4])]
        assert len(found) == 1
        windows.add(found[0])
    assert len(windows) > 6  # the windows are drawn (64 draws over 12 windows)
    test = RandomizedLoader(d, split="test", batch_size=1, augment=None, crop=4, normalize=None)
    x, _ = next(iter(test))
    assert torch.equal(x[0, 0], src[1:5, 1:5])  # the centre crop: offsets (6-4)//2, (7-4)//2


def test_flip_mirrors_columns_and_rotation_keeps_the_centre():
    d = _ramp(5, 5)
    src = d.train.images[0, 0].float() / 255
    flips = RandomizedLoader(d, batch_size=64, shuffle=False, augment="flip", normalize=None, seed=1)
    x, _ = next(iter(flips))
    flipped = [bool(torch.equal(img, src.flip(1))) for img in x[:, 0]]
    kept = [bool(torch.equal(img, src)) for img in x[:, 0]]
    assert all(a or b for a, b in zip(flipped, kept)) and 16 < sum(flipped) < 48
    rot = RandomizedLoader(d, batch_size=64, shuffle=False, augment="rotate", max_rotation=45, normalize=None, seed=2)
    x, _ = next(iter(rot))
    assert torch.all(x[:, 0, 2, 2] == src[2, 2])  # the centre pixel does not move
    _, _, _, degrees = augment_draws(2, range(64), 0, "train", 0, 0, 45)
    assert set(degrees.tolist()) <= set(range(-45, 46)) and len(set(degrees.tolist())) > 20
    moved = (x[:, 0] != src).flatten(1).any(1)
    assert not moved[torch.from_numpy(degrees) == 0].any()  # 0 degrees: the image itself
    assert moved[torch.from_numpy(abs(degrees)) >= 20].all()  # a visible turn moves the corners
    # 45 degrees by hand: the corner (0, 0) reads the source at the rotated position, or 0 outside
    one = torch.tensor([int(torch.from_numpy(degrees == 45).nonzero()[0])]) if (degrees == 45).any() else None
    if one is not None:
        c, s_ = math.cos(math.radians(45)), math.sin(math.radians(45))
        sy, sx = 2 + c * (0 - 2) - s_ * (0 - 2), 2 + s_ * (0 - 2) + c * (0 - 2)
        want = src[math.floor(sy + 0.5), math.floor(sx + 0.5)] if 0 <= sy + 0.5 < 5 and 0 <= sx + 0.5 < 5 else 0.0
        assert x[one, 0, 0, 0] == want


def test_labels_outside_the_classes_are_rejected():
    d = synthetic(8, 4, (1, 3, 3))
    d.train.labels[2] = 10  # after construction: the split's own check has passed
    with pytest.raises(ValueError, match="label 10 is outside"):
        RandomizedLoader(d)
    imgs, labs = torch.zeros(3, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 4, 1])
    with pytest.raises(ValueError, match="label 4 is outside"):
        rethink.randomized_batch(imgs, labs, torch.tensor([0]), num_classes=3)
    with pytest.raises(ValueError, match="negative"):
        rethink.randomized_batch(imgs, torch.tensor([0, -1, 1]), torch.tensor([0]))


def test_bad_channel_statistics_are_named():
    imgs, labs = torch.zeros(3, 2, 2, 2, dtype=torch.uint8), torch.tensor([0, 1, 1])
    for stats, match in [(([0.5, float("nan")], [0.1, 0.1]), "channel 1"), (([0.5, 0.5], [0.1, -1.0]), "channel 1"),
                         (([0.5, 0.5], [0.1, float("inf")]), "channel 1")]:
        with pytest.raises(ValueError, match=match):
            rethink.randomized_batch(imgs, labs, torch.tensor([0]), "gaussian", channel_stats=stats)
    with pytest.raises(ValueError, match="std 0.0 for channel 0.*constant channel"):
        rethink.randomized_batch(imgs, labs, torch.tensor([0]), normalize="per_channel",
                                 channel_stats=([0.5, 0.5], [0.0, 0.1]))
    # a dataset with a constant channel cannot be normalized per channel: said before any batch
    const = from_tensors(torch.zeros(4, 1, 3, 3, dtype=torch.uint8), torch.zeros(4, dtype=torch.long),
                         torch.zeros(2, 1, 3, 3, dtype=torch.uint8), torch.zeros(2, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="per_channel.*channel 0"):
        RandomizedLoader(const, normalize="per_channel")
    x, _ = next(iter(RandomizedLoader(const, "gaussian")))  # Gaussian with std 0: constant images, no NaN
    assert torch.isfinite(x).all()


def test_subset_draws_only_its_samples_keyed_by_their_index(small):
    subset = torch.tensor([3, 10, 11, 40, 69])
    c = Corruption("random_pixels", seed=4)
    part = RandomizedLoader(small, c, batch_size=2, subset=subset, normalize=None, seed=1)
    whole = RandomizedLoader(small, c, batch_size=70, normalize=None, shuffle=False)
    xs, ys = _cat(part)
    assert len(part) == 3 and part.num_samples == 5
    order = part.order(0)
    assert sorted(order.tolist()) == subset.tolist()
    full_x, full_y = next(iter(whole))
    assert torch.equal(xs, full_x[order]) and torch.equal(ys, full_y[order])
    assert torch.equal(part.materialize()[0], full_x[subset])


def test_cached_split_equals_the_kernel(small, monkeypatch):
    c = Corruption("gaussian", seed=4)
    cached = _cat(RandomizedLoader(small, c, batch_size=16, seed=2))
    monkeypatch.setattr(rethink.loader, "CACHE_BYTES", 0)
    streamed = _cat(RandomizedLoader(small, c, batch_size=16, seed=2))
    assert torch.equal(cached[0], streamed[0]) and torch.equal(cached[1], streamed[1])


@pytest.mark.parametrize("shuffle", [True, False])
def test_prepared_subset_equals_the_kernel_and_holds_only_the_subset(small, shuffle):
    subset = torch.tensor([40, 3, 11, 69, 10, 25, 7])
    c = Corruption("random_pixels", seed=4)
    cached = RandomizedLoader(small, c, batch_size=3, shuffle=shuffle, subset=subset, seed=1)
    streamed = RandomizedLoader(small, c, batch_size=3, shuffle=shuffle, subset=subset, seed=1, cache=False)
    for _ in range(2):  # two epochs: two orders when shuffled
        a, b = _cat(cached), _cat(streamed)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert cached._prepared().shape[0] == subset.numel()


def test_share_prepared_only_between_loaders_of_the_same_samples_and_view(small):
    subset = torch.tensor([20, 3, 11, 29, 10, 25, 7])
    c = Corruption("gaussian", seed=4)

    def evaluation(**kw):
        return RandomizedLoader(small, c, batch_size=16, shuffle=False, subset=subset, seed=1, **kw)

    training = RandomizedLoader(small, c, batch_size=4, subset=subset, seed=1)
    alone, shared = evaluation(), evaluation()
    assert shared.share_prepared(training) and shared._prepared() is training._prepared()
    a, b = _cat(alone), _cat(shared)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    others = [
        RandomizedLoader(small, c, subset=subset[:-1]),  # other samples
        RandomizedLoader(small, c, subset=subset.flip(0)),  # the same samples in another order
        RandomizedLoader(small, Corruption("gaussian", seed=5), subset=subset),  # other pixels
        RandomizedLoader(small, c, subset=subset, normalize=None),
        RandomizedLoader(small, c, subset=subset, crop=8),
        RandomizedLoader(small, c, subset=subset, dtype=torch.bfloat16),
        RandomizedLoader(small, c, subset=subset, augment="flip"),  # nothing prepared
        RandomizedLoader(small, c, subset=subset, cache=False),
        RandomizedLoader(small, c, "test", subset=subset),  # the other split
        RandomizedLoader(synthetic(70, 30, (3, 10, 9), seed=2), c, subset=subset),  # other image tensors
    ]
    for other in others:
        fresh = evaluation()
        assert not fresh.share_prepared(other) and fresh._cache is None
    assert not alone.share_prepared(alone)


def test_raw_op_refuses_tensors_on_different_devices_meta_included():
    imgs, labs, idx = torch.zeros(6, 2, 5, 5, dtype=torch.uint8), torch.zeros(6, dtype=torch.long), torch.tensor([0, 1])
    op = torch.ops.rethink.randomized_batch
    for args in [(imgs, labs.to("meta"), idx), (imgs.to("meta"), labs, idx), (imgs, labs, idx.to("meta"))]:
        with pytest.raises(RuntimeError, match="must be on one device"):
            op(*_op_args(*args))
    x, y = op(*_op_args(imgs.to("meta"), labs.to("meta"), idx.to("meta"), out_h=3, out_w=4, pad=0))
    assert x.device.type == "meta" and x.shape == (2, 2, 3, 4) and y.shape == (2,)


@pytest.mark.parametrize("kwargs, match", [
    (dict(crop=0), "crop must be an integer >= 1, got 0"),  # used to return the whole images
    (dict(crop=11), r"crop=11 is larger than the image \(10 x 9\)"),  # used to raise IndexError
    (dict(crop=2.0), "crop must be an integer"),
    (dict(augment="rotate", max_rotation=-3), "max_rotation must be an integer >= 1 and <= 45, got -3"),
    (dict(augment="rotate", max_rotation=46), "max_rotation must be"),
    (dict(augment="crop"), "augment 'crop' draws a crop window"),
    (dict(seed=-1), r"seed must be an integer in \[0, 2\^63\)"),
    (dict(epoch=2**32), "epoch must be"),
    (dict(split="val"), "unknown split 'val'"),
])
def test_reference_batch_refuses_what_the_loader_refuses(small, kwargs, match):
    ref = rethink.corrupt(small, Corruption("none")).train.images.float() / 255
    with pytest.raises(ValueError, match=match):
        reference_batch(ref, torch.arange(4), **kwargs)
    loader_kw = {k: v for k, v in kwargs.items() if k in ("crop", "augment", "max_rotation", "seed", "split")}
    with pytest.raises(ValueError, match=match):
        if "epoch" in kwargs:
            RandomizedLoader(small).set_epoch(kwargs["epoch"])
        RandomizedLoader(small, **loader_kw)
    with pytest.raises(ValueError, match=r"indices must be in \[0, 70\)"):
        reference_batch(ref, torch.tensor([0, 70]))


def test_batch_config_names_the_bad_field():
    from rethink.loader import BATCH_FIELDS, batch_config

    good = {f: 0 for f in BATCH_FIELDS}
    assert batch_config(good) == [0] * len(BATCH_FIELDS)
    with pytest.raises(ValueError, match="field 'out_h' must be an integer.*got 2.5"):
        batch_config({**good, "out_h": 2.5})
    with pytest.raises(ValueError, match="field 'aug_seed' must be an integer.*got 18446744073709551616"):
        batch_config({**good, "aug_seed": 2**64})
    with pytest.raises(ValueError, match=r"missing \['flip'\]"):
        batch_config({k: v for k, v in good.items() if k != "flip"})
