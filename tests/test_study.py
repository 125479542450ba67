import math

import numpy as np
import pytest
import torch
from torch import nn

from rethink import Result
from rethink import measures as M
from rethink import study as S

# ---------------------------------------------------------------------------- study


def test_kendall_tau_by_hand_and_against_scipy():
    assert S.kendall_tau([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert S.kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # pairs (1,2):+ (1,3):+ (2,3):- -> (2 - 1) / 3
    assert S.kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)
    assert math.isnan(S.kendall_tau([1, 1, 1], [1, 2, 3]))
    assert S.kendall_tau([1, float("nan"), 2, 3], [1, 5, 2, 3]) == pytest.approx(1.0)
    stats = pytest.importorskip("scipy.stats")
    g = np.random.default_rng(0)
    a, b = g.integers(0, 4, 30).astype(float), g.normal(size=30)
    assert S.kendall_tau(a, b) == pytest.approx(stats.kendalltau(a, b).statistic)


def test_granulated_tau_by_hand():
    cfgs = [{"wd": 0, "c": "a"}, {"wd": 1, "c": "a"}, {"wd": 0, "c": "b"}, {"wd": 1, "c": "b"}]
    gaps = [0.1, 0.2, 0.5, 0.3]
    vals = [1.0, 2.0, 3.0, 4.0]
    total, per = S.granulated_tau(vals, gaps, cfgs, ["wd", "c"])
    # wd varies within c=a (tau +1) and c=b (tau -1): psi_wd = 0; c varies within wd=0 (+1), wd=1 (+1)
    assert per == {"wd": 0.0, "c": 1.0}
    assert total == pytest.approx(0.5)


@pytest.fixture(scope="module")
def local_runs():
    """Results of a tiny local training loop on synthetic data: label noise x weight decay."""
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(4, 10, generator=g) * 1.5
    yt = torch.randint(0, 4, (240,), generator=g)
    xall = centers[yt] + torch.randn(240, 10, generator=g)
    xtr, ytr_clean, xte, yte = xall[:120], yt[:120], xall[120:], yt[120:]
    runs, data = [], {}
    for p in (0.0, 1.0):
        noisy = ytr_clean.clone()
        flip = torch.rand(120, generator=g) < p
        noisy[flip] = torch.randint(0, 4, (int(flip.sum()),), generator=g)
        for wd in (0.0, 1e-3):
            torch.manual_seed(1)
            net = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 4))
            init = {k: v.clone() for k, v in net.state_dict().items()}
            opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=wd)
            hist = []
            for epoch in range(1, 31):
                for _ in range(3):
                    opt.zero_grad()
                    nn.functional.cross_entropy(net(xtr), noisy).backward()
                    opt.step()
                with torch.no_grad():
                    out, oute = net(xtr), net(xte)
                hist.append({"epoch": epoch, "step": 3 * epoch, "lr": 0.1,
                             "train_loss": float(nn.functional.cross_entropy(out, noisy)),
                             "train_acc": float((out.argmax(1) == noisy).float().mean()),
                             "test_loss": float(nn.functional.cross_entropy(oute, yte)),
                             "test_acc": float((oute.argmax(1) == yte).float().mean()), "seconds": 0.0})
            name = f"mlp_synthetic_labels-{p}_wd{wd:g}_s0"
            cfg = {"model": "mlp", "dataset": "synthetic", "corruption": f"labels:{p}", "weight_decay": wd,
                   "seed": 0, "run_name": name}
            runs.append(Result(history=hist, config=cfg, model=net, init_state=init))
            data[name] = (xtr, noisy)
    return runs, data


def test_study_on_local_runs(tmp_path, local_runs):
    runs, data = local_runs
    runs = list(runs)
    runs.append(Result(config={"run_name": "broken"}, status="failed", error="NaN loss"))
    rep = S.study(runs, tmp_path, dataset=lambda r: data[r.config["run_name"]], device="cpu", samples=2,
                  max_examples=100)
    assert len(rep.rows) == 4 and "broken" in rep.skipped
    assert rep.hyperparameters == ["corruption", "weight_decay"]
    assert {r["measure"] for r in rep.ranking} == set(M.MEASURES)
    for r in rep.ranking:
        assert math.isnan(r["tau"]) or -1 <= r["tau"] <= 1
    # more label noise -> larger gap; the gap ordering is the truth the measures are ranked against
    gaps = {r["run_name"]: r["gap"] for r in rep.rows}
    assert gaps["mlp_synthetic_labels-1.0_wd0_s0"] > gaps["mlp_synthetic_labels-0.0_wd0_s0"]
    by = {r["measure"]: r for r in rep.ranking}
    assert by["params"]["tau"] != by["params"]["tau"]  # constant across runs: NaN
    assert by["dist_init"]["tau"] > 0  # fitting noisier labels moves the weights further
    import csv

    with open(rep.paths["csv"]) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and "path_norm" in rows[0] and "gap" in rows[0]
    md = open(rep.paths["md"]).read()
    assert "| rank | measure | tau | granulated |" in md and "Time per measure group" in md
    assert "broken: status failed: NaN loss" in md
    assert open(rep.paths["png"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_study_bad_input(tmp_path):
    with pytest.raises(ValueError, match="no results"):
        S.study(tmp_path)
    with pytest.raises(ValueError, match="not a directory"):
        S.study(tmp_path / "missing")
    with pytest.raises(ValueError, match="out_dir"):
        S.study([Result(history=[{"train_acc": 1.0, "test_acc": 0.5}])])


@pytest.mark.slow
def test_study_of_a_sweep_directory(tmp_path):
    import rethink

    ds = rethink.datasets.load("digits")
    small = rethink.datasets.from_tensors(ds.train.images[:128], ds.train.labels[:128], ds.test.images[:100],
                                          ds.test.labels[:100], num_classes=10, name="digits128")
    rethink.sweep(models=["mlp1x512"], corruptions=["none", "random_labels"], seeds=[0],
                  out_dir=tmp_path, dataset=small, weight_decay=[0.0, 1e-3], max_epochs=60, batch_size=32,
                  lr=0.05, device="cpu", progress=False)
    rep = S.study(tmp_path, dataset=small, device="cpu", samples=2, max_examples=64)
    assert len(rep.rows) == 4 and not rep.skipped
    assert rep.hyperparameters == ["corruption", "weight_decay"]
    gaps = {r["corruption"]: r["gap"] for r in rep.rows if r["weight_decay"] == 0.0}
    assert gaps["random_labels"] > gaps["none"]
    for r in rep.rows:  # init_state from the .pt files, history from the JSON
        assert math.isfinite(r["dist_init"]) and r["dist_init"] > 0
        assert math.isfinite(r["steps_to_fit"]) and r["steps_to_fit"] > 0
        assert math.isnan(r["steps_to_loss"]) or r["steps_to_loss"] > 0
        assert math.isfinite(r["pacbayes_sigma"]) and r["margin"] > 0
    # the same measures from the in-memory model and from the files
    res = rethink.train.load_results(tmp_path)[0]
    path = tmp_path / f"{res.config['run_name']}.json"
    a = M.compute(str(path), small, measures=["margin", "l2", "dist_init"], device="cpu")
    row = next(r for r in rep.rows if r["run_name"] == res.config["run_name"])
    assert a["margin"] == pytest.approx(row["margin"]) and a["dist_init"] == pytest.approx(row["dist_init"])


@pytest.mark.slow
def test_cli_measures(tmp_path, capsys):
    import rethink
    from rethink.cli import main

    rethink.sweep(models=["mlp1x512"], corruptions=["none", "random_labels"], seeds=[0], out_dir=tmp_path,
                  dataset="digits", max_epochs=2, device="cpu", progress=False)
    out = tmp_path / "report"
    code = main(["measures", str(tmp_path), "--out", str(out), "--measures", "margin,l2,spectral,path_norm",
                 "--device", "cpu", "--no-progress"])
    assert code == 0
    md = (out / "measures.md").read_text()
    assert "path_norm" in md and "2 runs" in md
    assert (out / "measures.png").exists() and (out / "measures.csv").exists()
    assert main(["measures", str(tmp_path / "nothing")]) == 1
    assert "rethink: error:" in capsys.readouterr().err
