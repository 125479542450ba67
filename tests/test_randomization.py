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
    assert text.count(". ") == 1  # two sentences


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
    assert list(rows[0]) == list(rz.SUMMARY_COLUMNS)
    for r, row in zip(rs, rows):
        assert float(row["test_acc"]) == r.final["test_acc"]
        assert float(row["train_acc"]) == r.final["train_acc"]
        assert int(row["steps_to_fit"]) == r.steps_to_fit
        assert row["corruption"] == r.config["corruption"]
    assert rows[5]["label_noise"] == "0.2" and rows[5]["variant"] == "labels"
    assert rows[3]["label_noise"] == ""
