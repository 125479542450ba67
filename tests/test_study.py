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



# ---------------------------------------------------------------------------- CMI and sign-error


def _h(p):
    return -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


def test_cmi_empty_set_by_hand():
    # ordered pairs (i, j), i == j included: (V_gap, V_measure) counts (0,0): 5, (0,1): 1, (1,0): 1, (1,1): 2
    # of 9; p(V_gap = 1) = p(V_measure = 1) = 1/3, so MI = 5/9 log2(1.25) (the off-diagonal terms cancel)
    table = S.cmi_table([1, 3, 2], [0.1, 0.2, 0.3], [{}, {}, {}])
    assert table == {(): pytest.approx(5 / 9 * math.log2(1.25) / _h(1 / 3))}
    assert S.cmi([1, 3, 2], [0.1, 0.2, 0.3], [{"c": 0}] * 3) == pytest.approx(5 / 9 * math.log2(1.25) / _h(1 / 3))


def test_cmi_conditioned_on_one_hyperparameter_by_hand():
    hp = [{"c": "x"}, {"c": "x"}, {"c": "y"}, {"c": "y"}]
    gaps = [0.1, 0.2, 0.5, 0.3]
    assert S.cmi(gaps, gaps, hp, set_sizes=(1,)) == pytest.approx(1.0)  # the gap predicts itself
    # cells (x,x), (x,y), (y,x), (y,y) of 4 pairs each; in (x,x) the measure agrees with the gap
    # (MI = H = H(1/4)); in (y,y) it is reversed: joint (0,0) 1/2, (1,0) 1/4, (0,1) 1/4, so MI =
    # 1/2 log2(32/27); in (x,y) and (y,x) the gap's sign is constant (H = MI = 0)
    want = (_h(1 / 4) + 0.5 * math.log2(32 / 27)) / (2 * _h(1 / 4))
    assert S.cmi_table([1, 2, 3, 4], gaps, hp, set_sizes=(1,)) == {("c",): pytest.approx(want)}
    # with one hyper-parameter the default conditions on nothing
    assert list(S.cmi_table([1, 2, 3, 4], gaps, hp)) == [()]
    both = S.cmi_table([1, 2, 3, 4], gaps, hp, set_sizes=(0, 1))
    assert set(both) == {(), ("c",)}
    assert S.cmi([1, 2, 3, 4], gaps, hp, set_sizes=(0, 1)) == pytest.approx(min(both.values()))


def _pgdl_cmi(prediction, gaps, hparams):
    """The competition's scoring_program/mutual_information.py, transcribed loop for loop:
    ordered pairs of models (i == j included), cells keyed by str(value_i) + str(value_j) per
    conditioning hyper-parameter, every cell of the full grid averaged unweighted, entropies with
    log2(p + 1e-12), minimum over ordered pairs of distinct hyper-parameters."""
    names = list(hparams[0])
    possible = {h: sorted({hp[h] for hp in hparams}) for h in names}

    def entropy(p):
        p = p / p.sum()
        return -np.sum(p * np.log2(p + 1e-12))

    best = math.inf
    for h1 in names:
        for h2 in names:
            if h1 == h2:
                continue
            keys = [str(a) + str(b) + str(c) + str(d) for a in possible[h1] for b in possible[h1]
                    for c in possible[h2] for d in possible[h2]]
            table = np.zeros((2, 2, len(keys)))
            for i in range(len(gaps)):
                for j in range(len(gaps)):
                    k = str(hparams[i][h1]) + str(hparams[j][h1]) + str(hparams[i][h2]) + str(hparams[j][h2])
                    table[0 if gaps[i] > gaps[j] else 1, 0 if prediction[i] > prediction[j] else 1, keys.index(k)] += 1
            mi = ce = 0.0
            for c in range(len(keys)):
                t = table[:, :, c]
                n, a0, a1 = t.sum(), t.sum(1), t.sum(0)
                for x in range(2):
                    for y in range(2):
                        if t[x, y]:
                            mi += t[x, y] / n * np.log2((t[x, y] / n) / (a0[x] / n * a1[y] / n))
                ce += entropy(a0)
            best = min(best, (mi / len(keys)) / (ce / len(keys)))
    return best


def test_cmi_matches_the_competition_code_on_a_complete_grid():
    g = np.random.default_rng(0)
    hparams = [{"depth": d, "width": w, "lr": lr} for d in (1, 2) for w in (8, 16, 32) for lr in (0.1, 0.01)]
    for _ in range(5):
        gaps = g.normal(size=len(hparams))
        values = gaps + g.normal(size=len(hparams))  # a noisy predictor
        assert S.cmi(values, gaps, hparams) == pytest.approx(_pgdl_cmi(values, gaps, hparams), rel=1e-9)
    assert len(S.cmi_table(values, gaps, hparams)) == 3  # the three pairs of hyper-parameters


def test_cmi_edge_cases():
    hp = [{"c": "x"}, {"c": "x"}, {"c": "y"}, {"c": "y"}]
    gaps = [0.1, 0.2, 0.5, 0.3]
    assert S.cmi([7.0] * 4, gaps, hp) == 0.0  # a constant measure tells nothing about the gap
    assert math.isnan(S.cmi([1, 2, 3, 4], [0.2] * 4, hp))  # a constant gap: nothing to predict
    assert math.isnan(S.cmi([1.0], [0.2], [{"c": "x"}]))  # one run: no pair
    # NaN runs are left out; infinities are ordered
    assert S.cmi([1, float("nan"), 2, 3], [0.1, 5.0, 0.2, 0.3], [{}] * 4) == pytest.approx(1.0)
    assert S.cmi([1, 2, float("inf")], [0.1, 0.2, 0.3], [{}] * 3) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="one entry per run: got 2, 3 and 3"):
        S.cmi([1, 2], [1, 2, 3], [{}] * 3)
    with pytest.raises(ValueError, match="no runs"):
        S.cmi([], [], [])
    with pytest.raises(ValueError, match=r"values\[1\] = 'high' is not a number"):
        S.cmi([1, "high"], [1, 2], [{}, {}])
    with pytest.raises(ValueError, match=r"hparams\[1\] has hyper-parameters \['lr'\]"):
        S.cmi([1, 2], [1, 2], [{"wd": 0}, {"lr": 1}])
    with pytest.raises(ValueError, match="dict of hyper-parameter"):
        S.cmi([1, 2], [1, 2], [{"wd": 0}, 3])
    with pytest.raises(ValueError, match="only 1 hyper-parameters"):
        S.cmi([1, 2], [1, 2], [{"wd": 0}, {"wd": 1}], set_sizes=(2,))


# runs: lr, wd, seed, gap, measure. Runs 0 and 1 differ only in seed: noise = |0.10 - 0.12| = 0.02.
_SIGN_RUNS = [("a", 0, 0, 0.10, 1.0), ("a", 0, 1, 0.12, 2.0), ("b", 0, 0, 0.30, 3.0), ("a", 1, 0, 0.20, 1.0),
              ("b", 1, 0, 0.21, 4.0)]


def _sign_args(runs=_SIGN_RUNS):
    return ([r[4] for r in runs], [r[3] for r in runs], [{"lr": r[0], "wd": r[1], "seed": r[2]} for r in runs])


def test_sign_error_by_hand():
    # pairs differing in exactly one of lr, wd (seed may differ too):
    # (0,2) lr, wd=0: measure and gap both rise -> 0;  (1,2) lr, wd=0 -> 0
    # (0,3) wd, lr=a: measure ties -> 1/2;  (1,3) wd, lr=a: measure falls, gap rises -> 1
    # (2,4) wd, lr=b: measure rises, gap falls -> 1;  (3,4) lr, wd=1: gaps differ by 0.01 <= 0.02: dropped
    se = S.sign_error(*_sign_args())
    assert se.noise == pytest.approx(0.02)
    assert (se.environments, se.pairs) == (3, 5)
    assert se.worst == 1.0 and se.mean == pytest.approx((0 + 0.75 + 1) / 3)
    envs = {(h, fixed, pair): (err, n) for h, fixed, pair, err, n in se.per_environment}
    assert envs == {("lr", (("wd", 0),), ("a", "b")): (0.0, 2), ("wd", (("lr", "a"),), (0, 1)): (0.75, 2),
                    ("wd", (("lr", "b"),), (0, 1)): (1.0, 1)}
    # environments need two pairs: only (lr, wd=0) and (wd, lr=a) are left
    se2 = S.sign_error(*_sign_args(), min_pairs=2)
    assert (se2.worst, se2.mean, se2.environments, se2.pairs) == (0.75, 0.375, 2, 4)
    # no noise filter: (3,4) is kept and agrees (both fall) -> a fourth environment at 0
    se0 = S.sign_error(*_sign_args(), noise=0.0)
    assert (se0.environments, se0.pairs) == (4, 6) and se0.mean == pytest.approx((0 + 0.75 + 1 + 0) / 4)


def test_sign_error_edge_cases():
    values, gaps, hp = _sign_args()
    const = S.sign_error([5.0] * 5, gaps, hp)
    assert const.worst == 0.5 and const.mean == 0.5  # ties everywhere: chance
    # every pair differs in both hyper-parameters: no environment
    none = S.sign_error([1, 2], [0.1, 0.5], [{"lr": "a", "wd": 0}, {"lr": "b", "wd": 1}])
    assert math.isnan(none.worst) and math.isnan(none.mean) and none.environments == 0 and none.pairs == 0
    # no seed key: no noise estimate
    assert S.sign_error([1, 2], [0.1, 0.5], [{"lr": "a"}, {"lr": "b"}]).noise == 0.0
    nan_run = S.sign_error([float("nan"), *values[1:]], gaps, hp)
    assert nan_run.pairs == 3  # the pairs with run 0 are gone
    with pytest.raises(ValueError, match="noise must be a finite number >= 0, got -1"):
        S.sign_error(values, gaps, hp, noise=-1)
    with pytest.raises(ValueError, match="min_pairs must be an integer >= 1, got 0"):
        S.sign_error(values, gaps, hp, min_pairs=0)
    with pytest.raises(ValueError, match="one entry per run"):
        S.sign_error(values[:2], gaps, hp)


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
    # a constant measure: no information (CMI 0) and a tie in every pair (sign-error 1/2)
    assert by["params"]["cmi"] == 0.0 and by["params"]["sign_error_worst"] == 0.5
    hp = [{"corruption": r["corruption"], "weight_decay": r["weight_decay"]} for r in rep.rows]
    for k in ("dist_init", "margin", "pacbayes_sigma"):
        vals = [r[k] for r in rep.rows]
        assert by[k]["cmi"] == S.cmi(vals, list(gaps.values()), hp)
        se = S.sign_error(vals, list(gaps.values()), hp)
        assert (by[k]["sign_error_worst"], by[k]["sign_error_mean"]) == (se.worst, se.mean)
        # the 2 x 2 grid has 4 pairs that differ in one hyper-parameter (fewer when two gaps are equal)
        assert by[k]["sign_error_envs"] == se.environments and 1 <= se.environments <= 4
    import csv

    with open(rep.paths["csv"]) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and "path_norm" in rows[0] and "gap" in rows[0]
    md = open(rep.paths["md"]).read()
    assert "| rank | measure | tau | granulated | CMI | sign err worst | sign err mean |" in md
    assert "Time per measure group" in md
    assert "broken: status failed: NaN loss" in md
    assert open(rep.paths["png"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_study_bad_input(tmp_path):
    with pytest.raises(ValueError, match="no results"):
        S.study(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        S.study(tmp_path / "missing")
    with pytest.raises(ValueError, match="out_dir"):
        S.study([Result(history=[{"train_acc": 1.0, "test_acc": 0.5}])])



def test_study_refuses_a_file_as_out_dir_and_bad_settings_before_measuring(tmp_path, monkeypatch):
    Result(config={"model": "mlp1x512", "dataset": "digits"}, history=[{"train_acc": 1.0, "test_acc": 0.5}]).save(
        tmp_path / "r.json")
    (tmp_path / "file").write_text("x")
    monkeypatch.setattr(S, "_measure_runs", lambda *a, **k: pytest.fail("measured before checking out_dir"))
    with pytest.raises(ValueError, match="out_dir .*file.* is a file"):
        S.study(tmp_path, tmp_path / "file")
    with pytest.raises(ValueError, match="samples must be an integer >= 1, got 0"):
        S.study(tmp_path, samples=0)


@pytest.mark.slow
def test_study_of_a_sweep_directory(tmp_path):
    import rethink

    rethink.sweep(models=["mlp1x512"], corruptions=["none", "random_labels"], seeds=[0, 1], out_dir=tmp_path,
                  dataset="digits", train_size=128, test_size=100, weight_decay=[0.0, 1e-3], max_epochs=60,
                  batch_size=32, lr=0.05, device="cpu", progress=False)
    rep = S.study(tmp_path, device="cpu", samples=2, max_examples=64)
    assert len(rep.rows) == 8 and not rep.skipped
    assert rep.hyperparameters == ["corruption", "seed", "weight_decay"]
    gaps = {(r["corruption"], r["seed"]): r["gap"] for r in rep.rows if r["weight_decay"] == 0.0}
    assert all(gaps[("random_labels", s)] > gaps[("none", s)] for s in (0, 1))
    for r in rep.rows:  # init_state from the .pt files, history from the JSON
        assert math.isfinite(r["dist_init"]) and r["dist_init"] > 0
        assert math.isfinite(r["steps_to_fit"]) and r["steps_to_fit"] > 0
        assert math.isnan(r["steps_to_loss"]) or r["steps_to_loss"] > 0
        assert math.isfinite(r["pacbayes_sigma"]) and r["margin"] > 0
    for entry in rep.ranking:  # tau on each seed's 4 runs, and their spread
        assert len(entry["tau_by_seed"]) <= 2
    # measured on the run's own 128 training images (its subset), cached beside each result
    res = rethink.load_runs(tmp_path)[0]
    cached = tmp_path / f"{res.config['run_name']}.measures.json"
    assert cached.exists()
    a = M.compute(str(res.path), measures=["margin", "l2", "dist_init"], device="cpu")
    row = next(r for r in rep.rows if r["run_name"] == res.config["run_name"])
    assert a["margin"] == pytest.approx(row["margin"]) and a["dist_init"] == pytest.approx(row["dist_init"])
    x, _ = M.training_tensors("digits", res.spec.corruption_object(), crop=None,
                              subset=rethink.runs.subset_indices(1437, 128, res.spec.resolved().subset_seed))
    assert len(x) == 128
    # a second study reads every measure from the cache
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*.measures.json")}
    again = S.study(tmp_path, device="cpu", samples=2, max_examples=64)
    assert [r["run_name"] for r in again.rows] == [r["run_name"] for r in rep.rows]
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("*.measures.json")} == stamps


def test_kendall_tau_a_against_a_pair_count_and_scipy():
    import itertools

    from scipy.stats import kendalltau

    from rethink.study import kendall_tau_a
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 4, 12).astype(float), rng.integers(0, 4, 12).astype(float)  # many ties
    pairs = list(itertools.combinations(range(12), 2))
    want = sum(np.sign(a[i] - a[j]) * np.sign(b[i] - b[j]) for i, j in pairs) / len(pairs)
    assert kendall_tau_a(a, b) == pytest.approx(want)
    assert abs(kendall_tau_a(a, b)) <= abs(kendalltau(a, b).statistic) + 1e-12  # ties shrink tau-a
    c = rng.normal(size=12)  # no ties: tau-a is tau-b
    assert kendall_tau_a(c, -c) == pytest.approx(-1.0)
    assert kendall_tau_a(c, c ** 3) == pytest.approx(kendalltau(c, c ** 3).statistic)
    assert math.isnan(kendall_tau_a([1.0, float("nan")], [2.0, 3.0]))


def test_hyperparameter_baseline_orders_label_noise_by_its_fraction():
    import rethink

    st = rethink.study
    assert sorted(["labels:0.3", "none", "random_labels", "labels:0.1", "gaussian"], key=st.level_order) == [
        "none", "labels:0.1", "labels:0.3", "random_labels", "gaussian"]
    assert sorted([4000, 500, 1000], key=st.level_order) == [500, 1000, 4000]
    assert sorted(["'labels:0.2'", "'none'"], key=st.level_order) == ["'none'", "'labels:0.2'"]  # as reprs
    # the gap rises with label noise; "none" sorted as text would come last and break the order
    levels = ["none", "labels:0.1", "labels:0.2", "labels:0.3"]
    gaps = [0.1 * i + 0.001 * s for i in range(4) for s in range(2)]
    hps = [{"corruption": levels[i], "train_size": 1000 + 1000 * s} for i in range(4) for s in range(2)]
    base = st.hyperparameter_baseline(gaps, hps, folds=2)
    assert base.best == "corruption"
    # by hand: 8 runs, 28 pairs; the 4 pairs within a level tie in corruption, the other 24 agree
    assert base.single["corruption"] == pytest.approx(24 / math.sqrt(24 * 28))


def test_bootstrap_interval_and_permutation_pvalue():
    from rethink.study import bootstrap_interval, kendall_tau, permutation_pvalue
    rng = np.random.default_rng(1)
    x = rng.normal(size=40)
    lo, hi = bootstrap_interval(lambda idx: float(x[idx].mean()), 40, resamples=500, seed=0)
    assert lo < x.mean() < hi and hi - lo < 1.0
    assert bootstrap_interval(lambda idx: float(x[idx].mean()), 40, resamples=500, seed=0) == (lo, hi)
    y_dep, y_ind = x + 0.1 * rng.normal(size=40), rng.normal(size=40)
    p_dep = permutation_pvalue(x, y_dep, resamples=200, seed=0)
    assert p_dep == pytest.approx(1 / 201)  # no permutation matches a tau near 1
    assert permutation_pvalue(x, y_ind, resamples=200, seed=0) > 0.01
    assert kendall_tau(x, y_dep) > 0.8
    with pytest.raises(ValueError, match="resamples"):
        bootstrap_interval(lambda idx: 0.0, 5, resamples=0)


def test_one_run_interval_draws_one_run_of_every_configuration():
    from rethink.study import one_run_interval
    x = np.array([1.0, 2.0, 10.0, 30.0, 100.0])
    groups = [[0, 1], [2, 3], [4]]
    seen = []

    def stat(idx):
        seen.append(tuple(int(i) for i in idx))
        return float(x[idx].sum())

    med, lo, hi = one_run_interval(stat, groups, resamples=400, seed=3)
    # every draw is a complete grid without repeats: one run of each configuration, in order
    assert set(seen) <= {(a, b, 4) for a in (0, 1) for b in (2, 3)} and len(set(seen)) == 4
    # direct computation from the same generator
    rng = np.random.default_rng(3)
    direct = [x[[[0, 1][i], [2, 3][j], 4]].sum() for i, j, _ in (rng.integers(0, [2, 2, 1]) for _ in range(400))]
    assert (med, lo, hi) == tuple(float(q) for q in np.quantile(direct, [0.5, 0.025, 0.975]))
    assert lo == 111.0 and hi == 132.0  # the smallest and largest of the four grids' sums
    assert all(math.isnan(v) for v in one_run_interval(lambda idx: float("nan"), groups, resamples=5))
    with pytest.raises(ValueError, match=r"group sizes \[2, 0\]"):
        one_run_interval(stat, [[0, 1], []])
    with pytest.raises(ValueError, match="resamples"):
        one_run_interval(stat, groups, resamples=0)


def test_seed_sd_pools_the_spread_within_configurations():
    # two configurations of two seeds: deviations +-0.5 and +-1 -> (0.25*2 + 1*2) / 2 dof = 1.25
    sd, used = S.seed_sd([[1.0, 2.0], [5.0, 7.0], [3.0], [float("nan"), 4.0]])
    assert used == 2 and sd == pytest.approx(math.sqrt(1.25))
    assert math.isnan(S.seed_sd([[1.0], []])[0])


def test_study_report_statistics_table_against_direct_computation():
    # a complete 2x2x2 grid, two seeds; the measure follows the gap but for one flipped pair
    from types import SimpleNamespace

    import rethink.study

    sg = _study_script()
    rows = []
    for a in (0, 1):
        for b in (0, 1):
            for c in (0, 1):
                for seed in (0, 1):
                    gap = 0.3 * a + 0.1 * b
                    rows.append({"a": a, "b": b, "c": c, "seed": seed, "gap": gap,
                                 "m": gap + (0.5 if (a, b, c, seed) == (0, 0, 0, 0) else 0.0)})
    rep = SimpleNamespace(rows=rows, ranking=[{"measure": "m"}])
    table = sg._statistics_table(rep, ["a", "b", "c"], resamples=20)
    cells = [line.split(" | ") for line in table.splitlines() if line.startswith("| m |")][0]
    v, g = [r["m"] for r in rows], [r["gap"] for r in rows]
    hp = [{h: r[h] for h in "abc"} for r in rows]
    assert cells[1].startswith(f"{rethink.study.kendall_tau(v, g):+.3f} [")
    assert cells[2] == f"{rethink.study.kendall_tau_a(v, g):+.3f}"
    # c never moves the gap: conditioning on (a, b) leaves the gap's order constant in every cell,
    # which the PGDL scorer scores 0 and the "dropped" convention leaves out
    dropped, zero = rethink.study.cmi(v, g, hp), rethink.study.cmi(v, g, hp, degenerate="zero")
    assert zero == 0.0 and dropped > 0
    assert cells[4].startswith(f"{dropped:.3f} / {zero:.3f} [")
    se = rethink.study.sign_error_by_hyperparameter(rethink.study.sign_error(v, g, [{**h, "seed": r["seed"]}
                                                                                  for h, r in zip(hp, rows)]))
    # the one-run column: grids of one seed per configuration (the configuration's two runs are adjacent)
    groups = [[2 * k, 2 * k + 1] for k in range(8)]
    med, lo, hi = rethink.study.one_run_interval(
        lambda idx: rethink.study.cmi(np.array(v)[idx], np.array(g)[idx], [hp[i] for i in idx], degenerate="zero"),
        groups, resamples=20, seed=0)
    assert cells[5] == f"{med:.3f} [{lo:.3f}, {hi:.3f}]" == "0.000 [0.000, 0.000]"
    assert cells[6:9] == [f"{se[h]:.3f}" for h in "ab"] + ["n/a |" if "c" not in se else f"{se['c']:.3f} |"]
    assert "one seed per configuration" in table


def test_study_report_zoo_section_scores_the_runs_at_the_rule(tmp_path):
    # a tiny zoo through the one runner; the section reads its cached measures and scores only
    # the runs that reached the stopping rule, against the hyper-parameter baseline

    import rethink

    sg = _study_script()
    grid = {"model": ["mlp1x128"], "lr": [0.02, 0.05], "corruption": ["none", "labels:0.2"]}
    rethink.zoo(grid, seeds=(0, 1), out_dir=tmp_path / "zoo", device="cpu", progress=False, dataset="digits",
                max_epochs=60, train_size=100, test_size=100, batch_size=16, stop_at_train_acc=0.99, measures=True,
                measure_settings={"measures": ["l2", "margin", "params"]})
    runs = rethink.load_runs(tmp_path / "zoo", status="completed")
    at_rule = [r for r in runs if r.epochs_to_fit is not None]
    assert len(at_rule) >= 4  # enough to score
    text = sg.zoo_section(tmp_path / "zoo", tmp_path / "study", resamples=5, measures=["l2", "margin", "params"])
    assert f"{len(runs)} of the main grid's" in text and f"{len(at_rule)} reached 99%" in text
    rows = [line.split(" | ") for line in text.splitlines() if line.startswith("| l2 |")]
    gaps = [r.final["gap"] for r in at_rule]
    rep = rethink.study.study(at_rule, out_dir=tmp_path / "direct", device="cpu", measures=["l2", "margin", "params"])
    l2 = [x["l2"] for x in rep.rows]
    assert rows[0][1].startswith(f"{rethink.study.kendall_tau(l2, [x['gap'] for x in rep.rows]):+.3f} [")
    base = rethink.study.hyperparameter_baseline(gaps, [{"lr": r.spec.lr, "corruption": r.spec.corruption}
                                                        for r in at_rule])
    assert f"ranks the gaps with |tau-b| {abs(base.best_tau):.3f}" in text
    assert "params one value over the zoo" in text  # one architecture: a constant measure is named
    # weights gone (a GPU's runs come back without them): a run with cached measures is still
    # scored from its cache, one without is named as not scored, and nothing is recomputed
    first, second = at_rule[0].spec.run_name(), at_rule[1].spec.run_name()
    for name in (first, second):
        (tmp_path / "zoo" / f"{name}.pt").unlink()
    (tmp_path / "zoo" / f"{first}.measures.json").unlink()
    text = sg.zoo_section(tmp_path / "zoo", tmp_path / "study2", resamples=5, measures=["l2", "margin", "params"])
    assert "Not scored, though they reached the rule: 1 mlp run (no weights file and no cached measures)" in text
    assert f"{len(at_rule) - 1} with every measure cached" in text
    assert not (tmp_path / "zoo" / f"{first}.measures.json").exists()


def _study_script():
    from _scripts import load_script

    return load_script("study_generalization")


def test_simple_signals_of_a_flipped_label_on_a_small_pool():
    # the memorization report's simpler signals on a hand-built pool of digits with 30% of the
    # labels flipped: every signal per seed, the halves of the cross-fit, and the early loss
    # separating flipped from clean labels (it is what the small-loss heuristics rely on)
    import rethink

    sg = _study_script()
    spec = rethink.RunSpec(model="mlp1x128", dataset="digits", corruption="labels:0.3:different", seed=0,
                           batch_size=32, max_epochs=12, stop_at_train_acc=1.0, test_size=100)
    ds = rethink.datasets.load("digits")
    pool = 200
    labels = rethink.corruption.corrupted_labels(ds.train.labels, ds.num_classes, spec.corruption_object(),
                                                 "train")[:pool]
    flipped = labels != ds.train.labels[:pool]
    d = {"settings": {**spec.to_dict(), "runs": 2, "subset": 0.7}, "pool": pool, "flipped_mask": flipped.tolist()}
    sig = sg.simple_signals(d, epochs=(1, 3), seeds=(0, 1))
    assert set(sig["auroc"]) == {"loss_all", "loss_epoch1", "loss_epoch3", "heldout_loss"}
    assert all(len(v) == 2 and all(0 <= x <= 1 for x in v) for v in sig["auroc"].values())
    assert {k: f["train_size"] for k, f in sig["fits"].items() if k.startswith("half")} == {
        "half 0, seed 0": 100, "half 1, seed 0": 100, "half 0, seed 1": 100, "half 1, seed 1": 100}
    assert min(sig["auroc"]["loss_epoch3"]) > 0.6  # flipped labels are fitted later: higher early loss
    # the early fits' AUROC, recomputed by hand from a 1-epoch fit of the same settings
    import torch.nn.functional as F

    data = rethink.datasets.from_tensors(ds.train.images[:pool], labels, ds.test.images[:100], ds.test.labels[:100])
    r = rethink.fit_random("mlp1x128", data, "none", progress=False, device="cpu", seed=0, batch_size=32,
                           max_epochs=1, stop_at_train_acc=1.0, test_size=100)
    x, y = rethink.measures.training_tensors(data, None, "per_image", None)
    loss = F.cross_entropy(r.model.eval()(x), y, reduction="none").detach().double()
    from rethink.memorization import auroc

    assert abs(auroc(loss, flipped) - sig["auroc"]["loss_epoch1"][0]) < 1e-9


def test_signals_section_reads_a_difference_against_the_seed_spread():
    sg = _study_script()
    d = {"auroc": 0.950, "settings": {"runs": 100, "subset": 0.7}}
    fits = {f"{k}, seed {s}": {"train_size": 2500, "epochs": 10} for k in ("half 0", "half 1", "whole pool")
            for s in (0, 1)}
    sig = {"auroc": {"loss_all": [0.80, 0.81], "loss_epoch1": [0.955, 0.945], "heldout_loss": [0.90, 0.91]},
           "epochs": [1], "seeds": [0, 1], "fits": fits}
    text = sg.signals_section(d, sig, knn=0.90)
    assert "| training loss after 1 epoch of that run | 1 per seed (its first epochs) | 0.950 ± 0.007 |" in text
    assert "The best simpler signal is the training loss after 1 epoch of that run (0.950)" in text
    assert "within twice the seed spread of that signal (0.007): not a difference" in text
    sig["auroc"]["loss_epoch1"] = [0.991, 0.989]
    text = sg.signals_section(d, sig, knn=0.90)
    assert "0.040 below it, more than twice the seed spread of that signal (0.001)" in text


def test_study_names_a_run_it_cannot_measure_without_this_machines_paths(tmp_path):
    import rethink

    runs = tmp_path / "runs"
    for wd in (0.0, 1e-3):
        rethink.fit_random(dataset="digits", train_size=100, test_size=50, max_epochs=1, weight_decay=wd,
                           out_dir=runs, run_name=f"wd{wd:g}", device="cpu", progress=False)
    (runs / "wd0.pt").unlink()  # its weights gone, its measures never cached
    rep = S.study(runs, tmp_path / "study", measures=["l2"], device="cpu")
    assert [r["run_name"] for r in rep.rows] == ["wd0.001"]
    reason = rep.skipped["wd0"]
    assert reason.startswith("FileNotFoundError") and "'wd0.pt'" in reason, reason
    text = (tmp_path / "study" / "measures.md").read_text()
    assert "wd0.pt" in text and str(tmp_path) not in text and str(tmp_path.resolve()) not in text


def test_family_scores_score_each_family_on_its_own_runs():
    import rethink

    sg = _study_script()
    rows = []
    for fam, shift in (("b", 0.5), ("a", 0.0)):
        for i, noise in enumerate(["none", "labels:0.1", "labels:0.2"]):
            for size in (1000, 2000):
                for seed in (0, 1):
                    gap = shift + 0.1 * i - 0.01 * (size // 1000) + 0.001 * seed
                    # "family": tells the families apart, nothing within one; "within": the gap's
                    # order within a family, reversed across them
                    rows.append({"model": f"{fam}net", "corruption": noise, "train_size": size, "seed": seed,
                                 "gap": gap, "family": shift, "within": gap - 2 * shift,
                                 "broken": math.inf if seed else gap})
    text = sg.family_scores(rows, ["family", "within", "broken"], ["model", "corruption", "train_size"],
                            lambda m: m[0], order=["a", "b"])
    head = next(line for line in text.splitlines() if line.startswith("| measure"))
    assert head.split(" | ")[1:4] == ["a tau-b", "a Psi", "a CMI"]  # the order given, not the rows'
    cells = {line.split(" | ")[0][2:]: line.split(" | ")[1:] for line in text.splitlines() if line.startswith("| ")}
    assert cells["family"][0] == "n/a"  # constant within a family: no tau there
    assert cells["within"][0] == "+1.000" and cells["within"][1] == "+1.000"
    a = [x for x in rows if x["model"] == "anet"]
    finite = [x for x in a if x["seed"] == 0]
    assert cells["broken"][0] == f"{rethink.study.kendall_tau([x['gap'] for x in finite], [x['gap'] for x in finite]):+.3f}"
    base = rethink.study.hyperparameter_baseline([x["gap"] for x in a],
                                                 [{"corruption": x["corruption"], "train_size": x["train_size"]} for x in a])
    assert cells["(best single hyper-parameter)"][0] == f"{abs(base.best_tau):.3f} (corruption)"
    assert (f"a (12 runs; varied: corruption, train_size): above its best single hyper-parameter (corruption, "
            f"|tau-b| {abs(base.best_tau):.3f}): within, broken;") in text


def test_zoo_section_names_a_hyperparameter_no_two_runs_differ_in_alone():
    sg = _study_script()
    rows = [dict(model=m, lr=lr, train_size=n) for m, lr in (("a", 0.1), ("b", 0.1), ("c", 0.2)) for n in (1, 2)]
    text = sg._never_alone(rows, ["model", "lr", "train_size"])
    assert text == (" No two runs differ in lr alone (it changes only with another hyper-parameter): its sign error "
                    "reads n/a and Psi leaves it out.")
    rows.append(dict(model="c", lr=0.1, train_size=1))  # now c's two runs at size 1 differ in lr alone
    assert sg._never_alone(rows, ["model", "lr", "train_size"]) == ""
