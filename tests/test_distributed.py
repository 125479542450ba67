"""DistributedDataParallel path of fit_random: 2 CPU processes, gloo backend, torchrun-style
environment (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT)."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import rethink
from rethink.results import Result

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="torch.distributed with gloo is not available")

KW = dict(model="mlp1x512", corruption="random_labels", batch_size=128, max_epochs=3, device="cpu", progress=False,
          run_name="ddp")


def _digits_subset():
    # 1,280 training images: every global batch of 128 splits into two equal shards of 64
    ds = rethink.datasets.load("digits")
    return rethink.datasets.from_tensors(ds.train.images[:1280], ds.train.labels[:1280], ds.test.images,
                                         ds.test.labels, num_classes=10)


def _worker(rank, world, port, out):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    r = rethink.fit_random(dataset=_digits_subset(), out_dir=os.path.join(out, "runs"), **KW)
    torch.save({"state": r.model.state_dict(), "history": r.history}, os.path.join(out, f"rank{rank}.pt"))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ddp_two_processes_matches_single_process(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=False)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=False)
    # DDP keeps the replicas identical
    for k in r0["state"]:
        assert torch.equal(r0["state"][k], r1["state"][k]), k
    # one result, written by rank 0, with the world size recorded
    files = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert files == ["ddp.json", "ddp.pt"]
    saved = Result.load(tmp_path / "runs" / "ddp.json")
    assert saved.status == "completed" and saved.config["world_size"] == 2 and len(saved.history) == 3

    # the same run in one process: equal shards of a global batch average to the same gradient
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = rethink.fit_random(dataset=_digits_subset(), **KW)
    finally:
        torch.set_num_threads(n)
    for k, v in single.model.state_dict().items():
        torch.testing.assert_close(r0["state"][k], v, rtol=1e-4, atol=1e-5)
    for a, b in zip(saved.history, single.history):
        assert a["step"] == b["step"] and a["lr"] == b["lr"]
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
        assert a["train_acc"] == pytest.approx(b["train_acc"], abs=2 / 1280)
