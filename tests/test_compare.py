"""rethink.compare: grouping by every setting but one, mean and spread over seeds, verdicts."""

from __future__ import annotations

import pytest

from rethink import Result
from rethink.compare import compare


def run(dtype, seed, *, corruption="random_labels", epochs_to_fit=10, train_acc=1.0, test_acc=0.1,
        model="mlp1x512", status="completed"):
    hist = [{"epoch": e, "step": 10 * e, "train_acc": train_acc if e == 12 else 0.5, "test_acc": test_acc,
             "train_loss": 0.1, "test_loss": 2.0, "seconds": e} for e in range(1, 13)]
    cfg = {"model": model, "dataset": "fashion_mnist", "corruption": corruption, "seed": seed, "dtype": dtype,
           "corruption_seed": seed, "num_classes": 10, "run_name": f"{model}_{corruption}_{dtype}_s{seed}"}
    return Result(history=hist, epochs_to_fit=epochs_to_fit, steps_to_fit=None if epochs_to_fit is None else 10,
                  config=cfg, status=status)


def test_groups_by_everything_but_the_setting_and_seeds():
    rs = [run("float32", s, epochs_to_fit=10 + s) for s in (0, 1)] + \
         [run("bfloat16", s, epochs_to_fit=11 + s) for s in (0, 1)] + \
         [run("float32", s, corruption="none", epochs_to_fit=3) for s in (0, 1)] + \
         [run("bfloat16", s, corruption="none", epochs_to_fit=3) for s in (0, 1)] + \
         [run("float32", 0, model="mlp3x512")]  # no bfloat16 twin: no comparison
    out = compare(rs, "dtype")
    assert [c.group for c in out] == [{"corruption": "random_labels", "dataset": "fashion_mnist", "model": "mlp1x512"},
                                      {"corruption": "none", "dataset": "fashion_mnist", "model": "mlp1x512"}]
    c = out[0]
    assert c.values == ("float32", "bfloat16") and c.runs == {"float32": 2, "bfloat16": 2}
    m, sd, n = c.stats["bfloat16"]["epochs_to_fit"]
    assert (m, n) == (11.5, 2) and sd == pytest.approx(0.7071067811865476)
    # 11.5 vs 10.5 with spreads 0.707 each: |1.0| < 1.414, within the spread
    assert c.verdict["bfloat16"]["epochs_to_fit"] == "within the spread"
    assert out[1].verdict["bfloat16"]["epochs_to_fit"] == "within the spread"  # equal, spread 0


def test_effect_beyond_the_spread_and_one_seed():
    rs = [run("float32", s, test_acc=0.10 + 0.001 * s) for s in (0, 1)] + \
         [run("bfloat16", s, test_acc=0.20 + 0.001 * s) for s in (0, 1)]
    assert compare(rs, "dtype")[0].verdict["bfloat16"]["test_acc"] == "effect"
    one = [run("float32", 0), run("bfloat16", 0, test_acc=0.9)]
    assert compare(one, "dtype")[0].verdict["bfloat16"]["test_acc"] == "one seed: no claim"


def test_unfitted_runs_make_epochs_incomparable_and_unfinished_runs_are_left_out():
    rs = [run("float32", s) for s in (0, 1)] + [run("bfloat16", 0), run("bfloat16", 1, epochs_to_fit=None),
                                                 run("bfloat16", 2, status="running")]
    c = compare(rs, "dtype")[0]
    assert c.runs["bfloat16"] == 2 and c.fitted == {"float32": 2, "bfloat16": 1}
    assert c.verdict["bfloat16"]["epochs_to_fit"].startswith("not every run fit (1 of 2 against 2 of 2)")


@pytest.mark.parametrize("bad", ["seed", "colour", "subset_seed"])
def test_bad_setting_is_named(bad):
    with pytest.raises(ValueError, match=repr(bad)):
        compare([], bad)
