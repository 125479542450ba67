"""Benchmark of the fused randomization data path (rethink.RandomizedLoader).

Workload: synthetic CIFAR-shaped uint8 images (3 x 32 x 32), random pixels (one
permutation per image), random crop with zero padding 4 and horizontal flip, per-image
whitening, float32 output, batches of 256.

Compared, in one run on one device:
- torch DataLoader over a map-style dataset applying the same transforms per sample
  (stored per-image permutation, pad, crop, flip, whitening), num_workers 0 and 2;
- the same pipeline as batched plain-torch ops on the device (index, gather, permutation
  gather, pad, crop, flip, normalize as separate ops);
- rethink.RandomizedLoader (one fused kernel per batch).
On CUDA also: bytes moved per second (uint8 read + float32 written) as a fraction of the
measured device-to-device copy bandwidth, at batch 1024 and for a whole-epoch
materialization.

    python benchmarks/bench_loader.py [--device cpu|cuda] [--quick]
"""

from __future__ import annotations

import math
import os
import sys
import time

import torch

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)
sys.path.insert(1, os.path.dirname(_HERE))  # the checkout, when rethink is built in place
from _common import machine, parser, sync, timeit  # noqa: E402

import rethink  # noqa: E402

PAD = 4


# --- baseline 1: per-sample transforms in a torch DataLoader ------------------------


class PerSampleDataset(torch.utils.data.Dataset):
    """Map-style dataset: each __getitem__ permutes, pads, crops, flips and whitens one image."""

    def __init__(self, images, labels, perms, seed=0):
        self.images, self.labels, self.perms = images, labels, perms
        self.seed = seed

    def __len__(self):
        return self.images.shape[0]

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        img = self.images[i].float().div_(255)
        c, h, w = img.shape
        img = img.reshape(c, h * w)[:, self.perms[i].long()].reshape(c, h, w)
        img = torch.nn.functional.pad(img, (PAD, PAD, PAD, PAD))
        dy, dx = torch.randint(0, 2 * PAD + 1, (2,), generator=g).tolist()
        img = img[:, dy : dy + h, dx : dx + w]
        if torch.rand((), generator=g) < 0.5:
            img = img.flip(2)
        mean, std = img.mean(), img.std(unbiased=False)
        img = (img - mean) / torch.clamp(std, min=1 / math.sqrt(img.numel()))
        return img, self.labels[i]


def time_dataloader(images, labels, perms, batch, workers, n_batches):
    """Images/s of a DataLoader with per-sample transforms. With num_workers=0 the main
    process runs them with one torch thread (as DataLoader workers do): intra-op threads
    only slow down per-sample ops on 3 KB tensors."""
    ds = PerSampleDataset(images, labels, perms)
    dl = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True)
    threads = torch.get_num_threads()
    if workers == 0:
        torch.set_num_threads(1)
    try:
        it = iter(dl)
        next(it)  # worker start-up excluded
        t0 = time.perf_counter()
        for _ in range(n_batches):
            next(it)
        dt = time.perf_counter() - t0
        del it
    finally:
        torch.set_num_threads(threads)
    return n_batches * batch / dt


# --- baseline 2: batched plain-torch ops on the device ------------------------------


def torch_batch(images, labels, perms, idx, gen, device):
    """Index, gather, permute, pad, crop, flip and whiten a batch with separate torch ops."""
    b = idx.shape[0]
    x = images[idx].float().div_(255)  # B x C x H x W
    _, c, h, w = x.shape
    p = perms[idx].long()  # B x HW
    x = torch.gather(x.reshape(b, c, h * w), 2, p[:, None, :].expand(b, c, h * w)).reshape(b, c, h, w)
    x = torch.nn.functional.pad(x, (PAD, PAD, PAD, PAD))
    off = torch.randint(0, 2 * PAD + 1, (2, b), device=device, generator=gen)
    rows = off[0][:, None] + torch.arange(h, device=device)
    cols = off[1][:, None] + torch.arange(w, device=device)
    flip = torch.rand(b, device=device, generator=gen) < 0.5
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    bi = torch.arange(b, device=device)[:, None, None, None]
    ci = torch.arange(c, device=device)[None, :, None, None]
    x = x[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]
    flat = x.reshape(b, -1)
    mean = flat.mean(1, keepdim=True)
    std = flat.std(1, unbiased=False, keepdim=True).clamp_min(1 / math.sqrt(flat.shape[1]))
    return ((flat - mean) / std).reshape(b, c, h, w), labels[idx]


def time_torch_batched(images, labels, perms, batch, device, n_batches, repeat):
    n = images.shape[0]
    gen = torch.Generator(device=device).manual_seed(0)
    order = torch.randperm(n, device=device, generator=gen)

    def run():
        for k in range(n_batches):
            idx = order[(k * batch) % (n - batch) :][:batch]
            torch_batch(images, labels, perms, idx, gen, device)

    dt = timeit(run, device, repeat=repeat)
    return n_batches * batch / dt


def time_rethink(loader, n_batches, repeat, device):
    def run():
        it = iter(loader)
        for _ in range(n_batches):
            next(it)

    dt = timeit(run, device, repeat=repeat)
    return n_batches * loader.batch_size / dt


def copy_bandwidth(device, nbytes=1 << 30):
    a = torch.empty(nbytes, dtype=torch.uint8, device=device)
    b = torch.empty_like(a)
    dt = timeit(lambda: b.copy_(a), device, repeat=10, warmup=2)
    return 2 * nbytes / dt  # read + write


def main(argv=None):
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    quick = args.quick
    n_train = 10_000 if quick else 50_000
    batch = 256
    d = rethink.datasets.synthetic(n_train, 16, (3, 32, 32), seed=0)
    corruption = rethink.Corruption("random_pixels", seed=0)
    hw = 32 * 32
    # stored per-image permutations for the baselines (what a plain implementation keeps)
    perms = torch.stack(
        [torch.randperm(hw, generator=torch.Generator().manual_seed(i)) for i in range(n_train)]
    ).to(torch.int16)

    print(f"# bench_loader: {machine(device)}")
    print(
        f"workload: {n_train} synthetic 3x32x32 images, random pixels, crop_flip (pad 4), per-image "
        f"whitening, float32, batch {batch}, device {device}"
    )
    rows = []
    if device == "cpu":
        nb_dl = 4 if quick else 12
        for workers in (0, 2):
            ips = time_dataloader(d.train.images, d.train.labels, perms, batch, workers, nb_dl)
            rows.append((f"torch DataLoader, per-sample transforms, num_workers={workers}", ips))
    nb = 10 if quick else 40
    imgs_dev, labs_dev, perms_dev = d.train.images.to(device), d.train.labels.to(device), perms.to(device)
    ips_torch = time_torch_batched(imgs_dev, labs_dev, perms_dev, batch, device, nb, 3 if quick else 5)
    rows.append(("batched plain-torch ops (same device)", ips_torch))
    loader = rethink.RandomizedLoader(
        d, corruption, batch_size=batch, augment="crop_flip", normalize="per_image", device=device, seed=0
    )
    ips_fused = time_rethink(loader, min(nb, len(loader)), 3 if quick else 5, device)
    rows.append(("rethink.RandomizedLoader (fused kernel)", ips_fused))

    print()
    print("| pipeline | images/s | rethink speed-up |")
    print("|---|---:|---:|")
    for name, ips in rows:
        print(f"| {name} | {ips:,.0f} | {ips_fused / ips:.1f}x |")

    if device == "cuda":
        bw = copy_bandwidth(device)
        print()
        print(f"device-to-device copy bandwidth (read + write): {bw / 1e9:.0f} GB/s")
        print()
        print("| case | time | GB/s moved | fraction of copy bandwidth | vs batched torch |")
        print("|---|---:|---:|---:|---:|")
        for case, bsz in (("batch 1024", 1024), ("whole epoch (materialize)", n_train)):
            big = rethink.RandomizedLoader(
                d,
                corruption,
                batch_size=bsz,
                augment="crop_flip",
                normalize="per_image",
                device=device,
                seed=0,
            )
            idx = torch.arange(bsz, device=device)
            dt = timeit(
                lambda big=big, idx=idx: big._plan.run(big._images, big.labels, idx, 0, False),
                device,
                repeat=20,
                warmup=3,
            )
            moved = bsz * 3 * hw * (1 + 4) + bsz * 16
            gen = torch.Generator(device=device).manual_seed(0)
            dt_t = timeit(
                lambda idx=idx, gen=gen: torch_batch(imgs_dev, labs_dev, perms_dev, idx, gen, device),
                device,
                repeat=10,
                warmup=2,
            )
            print(
                f"| {case} | {dt * 1e3:.3f} ms | {moved / dt / 1e9:.0f} | {moved / dt / bw:.0%} | {dt_t / dt:.1f}x |"
            )
    sync(device)
    print()
    print(
        "Timings exclude dataset creation, the one-time move to the device, and DataLoader worker start-up."
    )


if __name__ == "__main__":
    main()
