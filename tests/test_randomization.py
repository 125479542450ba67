"""The main job: run planning, verdict, summary.csv, and (end to end) the randomization test on digits."""

from __future__ import annotations

import csv

import pytest
from test_plots import make_result, paper_set

from rethink import randomization as rz

# ----------------------------------------------------------------------------- planning


def test_plan_default_runs_without_duplicates():
    plan = rz.plan_runs()
    keys = [(r.corruption, r.weight_decay, r.augment) for r in plan]
    assert len(keys) == len(set(keys))
    corr = [r.corruption for r in plan if r.weight_decay == 0 and r.augment is None]
    # five variants + four intermediate noise levels (0 and 1 are the true/random-label runs)
    assert corr[:5] == ["none", "random_labels", "shuffled_pixels", "random_pixels", "gaussian"]
    assert len(corr) == 9
    assert any("0.4" in c for c in corr)
    grid = [(r.weight_decay, r.augment) for r in plan if r.purpose == "grid"]
    assert grid == [(5e-4, None), (0.0, "flip"), (5e-4, "flip")]
    assert {r.corruption for r in plan if r.purpose == "grid"} == {"none"}


def test_plan_seeds_and_no_grid():
    plan = rz.plan_runs(["true", "random_labels"], [0, 0.5, 1], seeds=[0, 3], grid=False)
    assert [(r.corruption.split(":")[0], r.seed) for r in plan] == [
        ("none", 0),
        ("random_labels", 0),
        ("labels", 0),
        ("none", 3),
        ("random_labels", 3),
        ("labels", 3),
    ]


@pytest.mark.parametrize("noise", [[1.5], [-0.1], ["x"], [float("nan")]])
def test_plan_bad_label_noise(noise):
    with pytest.raises(ValueError, match="label noise level"):
        rz.plan_runs(label_noise=noise)


@pytest.mark.parametrize("seeds", [[], [-1], [1.5]])
def test_plan_bad_seeds(seeds):
    with pytest.raises(ValueError, match="seed"):
        rz.plan_runs(seeds=seeds)


# ----------------------------------------------------------------------------- verdict


def test_verdict_from_numbers():
    text = rz.verdict(paper_set())
    assert text.startswith("MLP 1x512 on digits fits random labels to 100% train accuracy in 2.1x the steps")
    assert "(430 vs 200)" in text
    assert "test accuracy falls from 97.1% to 10.3% (chance: 10%)" in text
    assert "random pixels 1.6x" in text and "Gaussian 1.4x" in text
    # the noise sweep: test error 1 - accuracy per level (the fixture's 0.9712, 0.8, 0.6444, 0.45, 0.2678, 0.1034)
    assert ("Label noise (MLP 1x512): test error by corruption level 0: 2.9%, 0.2: 20%, 0.4: 35.6%, 0.6: 55%, "
            "0.8: 73.2%, 1: 89.7%.") in text
    # the regularizers: 97.33%, 98.01%, 98.22% against 97.12% without: at most 1.1 points
    assert ("Regularizers (true labels, final test accuracy): none 97.1%, crop_flip 98%, crop_flip + wd 0.0005 "
            "98.2%, wd 0.0005 97.3%; the largest change is 1.1 points.") in text
    assert "Figure 1b leaves" not in text  # every level fitted


def test_verdict_names_the_noise_levels_figure_1b_leaves_out():
    rs = [r for r in paper_set() if r.config["corruption"] != "labels:0.4"]
    rs.append(make_result("labels:0.4", test_acc=0.6, steps_to_fit=None))
    text = rz.verdict(rs)
    assert "at label noise 0.4 not every run reached the target, so Figure 1b leaves it out" in text


def test_verdict_when_random_labels_do_not_fit():
    rs = [
        make_result("none", test_acc=0.95, steps_to_fit=100),
        make_result("random_labels", train_acc=0.6234, test_acc=0.11, steps_to_fit=None, epochs=7),
    ]
    text = rz.verdict(rs)
    assert "does not fit random labels to 100% train accuracy within 7 epochs (it reaches 62.3%)" in text
    assert "from 95% to 11%" in text


def test_verdict_never_rounds_up_to_100():
    assert rz._pct(0.9996) == "99.9%"
    assert rz._pct(1.0) == "100%"
    assert rz._pct(0.5) == "50%"


def test_verdict_needs_both_runs():
    with pytest.raises(ValueError, match="random-label"):
        rz.verdict([make_result("none")])
    with pytest.raises(ValueError, match="true-label"):
        rz.verdict([make_result("random_labels")])


# ----------------------------------------------------------------------------- summary.csv


def test_summary_csv_rows(tmp_path):
    rs = paper_set()
    path = rz.write_summary_csv(rs, tmp_path / "summary.csv")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(rs)
    assert list(rows[0]) == list(rz.SUMMARY_COLUMNS + rz.GROUP_COLUMNS)
    for r, row in zip(rs, rows):
        assert float(row["test_acc"]) == r.final["test_acc"]
        assert float(row["train_acc"]) == r.final["train_acc"]
        assert int(row["steps_to_fit"]) == r.steps_to_fit
        assert row["corruption"] == r.config["corruption"]
    assert rows[5]["label_noise"] == "0.2" and rows[5]["variant"] == "labels"
    assert rows[3]["label_noise"] == ""
    assert all(row["seeds"] == "1" and row["test_acc_spread"] == "0.0" for row in rows)


def test_summary_csv_mean_and_spread_over_seeds(tmp_path):
    rs = [make_result("none", test_acc=0.9, seed=0), make_result("none", test_acc=0.8, seed=1),
          make_result("none", test_acc=0.7, seed=2), make_result("random_labels", test_acc=0.1, seed=0)]
    path = rz.write_summary_csv(rs, tmp_path / "summary.csv")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["seeds"] for row in rows] == ["3", "3", "3", "1"]
    assert float(rows[0]["test_acc_mean"]) == pytest.approx(0.8)
    assert float(rows[1]["test_acc_spread"]) == pytest.approx(0.1)  # sample standard deviation
    assert float(rows[3]["test_acc_mean"]) == pytest.approx(0.1) and float(rows[3]["test_acc_spread"]) == 0.0


# ----------------------------------------------------------------------------- end to end (digits, MLP 1x512)

import torch  # noqa: E402

import rethink  # noqa: E402
from rethink import plots  # noqa: E402
from rethink.cli import main as cli_main  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread for training here: on a 2-core machine shared with other work, more only contend."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits_job(tmp_path_factory):
    """The randomization test of MLP 1x512 on digits with the paper's settings, run once.

    Label noise 0, 0.5 and 1 (the full sweep adds four more runs of the same kind); no
    regularizer grid (exercised through the command line below).
    """
    out = tmp_path_factory.mktemp("randomization")
    return rethink.randomization_test(
        "mlp1x512", "digits", label_noise=(0, 0.5, 1), out_dir=out, device="cpu", progress=False, grid=False
    )


def _by_variant(report):
    return {(d["variant"], d["label_noise"]): d for d in (r.summary() for r in report.results)}


@pytest.mark.slow
def test_job_runs_the_plan(digits_job):
    names = [r.config["corruption"] for r in digits_job.results]
    assert names == ["none", "random_labels", "shuffled_pixels", "random_pixels", "gaussian", "labels:0.5"]
    assert all(r.status == "completed" for r in digits_job.results)
    assert all(r.config["lr"] == 0.01 and r.config["momentum"] == 0.9 and r.config["batch_size"] == 128 for r in digits_job.results)
    assert all(r.config["weight_decay"] == 0 and r.config["augment"] is None for r in digits_job.results)


@pytest.mark.slow
def test_true_labels_generalize(digits_job):
    true = _by_variant(digits_job)[("true", 0.0)]
    assert true["train_acc"] == 1.0
    assert true["test_acc"] >= 0.95


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["random_labels", "random_pixels", "gaussian"])
def test_randomized_data_is_memorized_at_chance(digits_job, variant):
    d = next(d for d in (r.summary() for r in digits_job.results) if d["variant"] == variant)
    assert d["train_acc"] == 1.0 and d["steps_to_fit"] is not None
    assert abs(d["test_acc"] - 0.1) <= 0.05


@pytest.mark.slow
def test_shuffled_pixels_generalize_like_true_labels_for_an_mlp(digits_job):
    v = _by_variant(digits_job)
    shuffled, true = v[("shuffled_pixels", None)], v[("true", 0.0)]
    assert shuffled["train_acc"] == 1.0
    assert abs(shuffled["test_acc"] - true["test_acc"]) <= 0.03


@pytest.mark.slow
def test_test_error_grows_with_label_corruption(digits_job):
    v = _by_variant(digits_job)
    errors = [1 - v[k]["test_acc"] for k in [("true", 0.0), ("labels", 0.5), ("random_labels", 1.0)]]
    assert errors[0] < errors[1] < errors[2]
    assert v[("labels", 0.5)]["train_acc"] == 1.0


@pytest.mark.slow
def test_files_hold_the_results_numbers(digits_job):
    paths = digits_job.paths
    for key in ("summary", "figure1", "table1", "verdict"):
        assert paths[key].exists(), key
    # every run's JSON, readable by the engine
    loaded = {r.config["run_name"]: r for r in rethink.load_runs(paths["out_dir"])}
    for r, p in zip(digits_job.results, paths["results"]):
        assert p.exists()
        assert loaded[r.config["run_name"]].history == r.history
    # summary.csv
    with open(paths["summary"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["run_name"] for row in rows] == [r.config["run_name"] for r in digits_job.results]
    for r, row in zip(digits_job.results, rows):
        assert float(row["test_acc"]) == r.final["test_acc"]
        assert float(row["train_acc"]) == r.final["train_acc"]
    # table1.md
    table = paths["table1"].read_text()
    for d in (r.summary() for r in digits_job.results):
        if d["variant"] != "labels":
            assert f"{100 * d['train_acc']:.2f}/{100 * d['test_acc']:.2f}" in table
    # figure1.png
    fig = plots.read_figure_data(paths["figure1"])
    curves = fig["a"]["curves"]
    for r in digits_job.results:
        d = r.summary()
        if d["variant"] in curves:
            assert curves[d["variant"]][0]["train_loss"] == pytest.approx([v for _, v in r.loss_log])
            assert curves[d["variant"]][0]["step"] == [s for s, _ in r.loss_log]
    c = fig["c"]["MLP 1x512"]
    assert c["label_noise"] == [0.0, 0.5, 1.0]
    v = _by_variant(digits_job)
    assert c["test_error"] == pytest.approx([1 - v[k]["test_acc"] for k in [("true", 0.0), ("labels", 0.5), ("random_labels", 1.0)]])
    # verdict
    assert paths["verdict"].read_text().strip() == digits_job.verdict
    assert digits_job.verdict.startswith("MLP 1x512 on digits fits random labels to 100% train accuracy in ")


@pytest.mark.slow
def test_resume_skips_finished_runs(digits_job):
    out = digits_job.paths["out_dir"]
    stamps = {p: p.stat().st_mtime_ns for p in digits_job.paths["results"]}
    again = rethink.randomization_test(
        "mlp1x512", "digits", label_noise=(0, 0.5, 1), out_dir=out, device="cpu", progress=False, grid=False, resume=True
    )
    assert {p: p.stat().st_mtime_ns for p in digits_job.paths["results"]} == stamps
    assert [r.history for r in again.results] == [r.history for r in digits_job.results]
    assert again.verdict == digits_job.verdict


# ----------------------------------------------------------------------------- command line


def test_cli_small_job_and_resume(tmp_path, capsys):
    out = tmp_path / "out"
    argv = [
        "randomization-test",
        "--corruptions", "true", "random_labels",
        "--label-noise", "0,1",
        "--max-epochs", "2",
        "--out-dir", str(out),
        "--device", "cpu",
        "--no-progress",
    ]
    assert cli_main(argv) == 0
    printed = capsys.readouterr().out
    results = rethink.load_runs(out)
    assert len(results) == 5  # true, random labels, and the grid: wd, flip, wd + flip
    assert {(r.config["weight_decay"], r.config["augment"]) for r in results} == {
        (0.0, None), (5e-4, None), (0.0, "flip"), (5e-4, "flip")
    }
    table = (out / "table1.md").read_text()
    assert plots.table1(results).splitlines()[0] in table
    assert "| MLP 1x512 |" in printed and "flip + wd 0.0005" in printed
    assert "does not fit random labels to 100% train accuracy within 2 epochs" in printed
    for name in ("summary.csv", "figure1.png", "figure2.png", "verdict.txt"):
        assert (out / name).exists()
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*.json")}
    assert cli_main(argv + ["--resume"]) == 0
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.json")} == stamps


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--label-noise", "0,2"], "label noise level"),
        (["--seeds", "x"], "--seeds"),
        (["--corruptions", "bogus"], "bogus"),
        (["--model", "nope"], "nope"),
        (["--threads", "0"], "--threads"),
        (["--dataset", "imagenet"], "imagenet"),
        (["--augment", "blur"], "blur"),
        (["--crop", "99"], "crop"),
        (["--dropout", "1.5"], "dropout"),
    ],
)
def test_cli_bad_input_is_one_line(tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    rc = cli_main(["randomization-test", "--out-dir", str(out), "--no-progress", "--device", "cpu", *extra])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith("rethink: error:") and message in err and err.count("\n") == 1
    assert not out.exists()  # nothing written, no folder made, for a bad name or value


def test_plan_with_the_papers_random_crop_on_real_images():
    plan = rz.plan_runs(["true", "random_labels"], [0, 1], grid_augment="crop", regularized_random=True,
                        dataset="fashion_mnist", crop=24)
    grid = [(r.corruption, r.weight_decay, r.augment) for r in plan if r.purpose in ("grid", "regularized_random")]
    assert grid == [("none", 5e-4, None), ("none", 0.0, "crop"), ("none", 5e-4, "crop"),
                    ("random_labels", 5e-4, None), ("random_labels", 0.0, "crop"), ("random_labels", 5e-4, "crop")]
    assert all(r.crop == 24 and r.dataset == "fashion_mnist" for r in plan)
    with pytest.raises(ValueError, match="crop window"):
        rz.plan_runs(grid_augment="crop", dataset="fashion_mnist")  # a random crop needs a window size


def test_a_label_noise_sweep_alone_draws_its_figure(tmp_path):
    # no variant and no true-label run: Figure 1 has panels (b) and (c) only, Figure 2 nothing to draw
    rep = rethink.randomization_test("mlp1x512", "digits", corruptions=(), label_noise=(0.5,), out_dir=tmp_path,
                                     device="cpu", progress=False, grid=False, max_epochs=1, seeds=[0])
    assert [r.config["corruption"] for r in rep.results] == ["labels:0.5"]
    assert rep.paths["figure2"] is None and not (tmp_path / "figure2.png").exists()
    back = rethink.plots.read_figure_data(rep.paths["figure1"])
    assert back["c"]["MLP 1x512"]["label_noise"] == [0.5]
    assert back["c"]["MLP 1x512"]["test_error"] == pytest.approx([1 - rep.results[0].final["test_acc"]])
    assert back["a"]["curves"] == {}
