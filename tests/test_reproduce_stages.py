"""The stages of scripts/reproduce_convnets.py: no run is planned into two folders (it would be
trained twice and counted twice)."""
import json
from collections import defaultdict
from pathlib import Path

import pytest
from _scripts import load_script

import rethink


def _stages():
    return load_script("reproduce_convnets")


def _make_report():
    return load_script("make_report")


def test_every_run_has_one_folder():
    rc = _stages()
    folders = defaultdict(set)  # run name -> folders it is planned into
    for st in rc.STAGES:
        for m in st.models:
            for p in rethink.randomization.plan_runs(model=m, **st.kwargs()):
                folders[p.spec.run_name()].add(f"{st.out}/{m}")
    assert folders and all(len(f) == 1 for f in folders.values()), {r: f for r, f in folders.items() if len(f) > 1}


def test_a_shared_folder_is_another_stage_of_the_same_runs():
    rc = _stages()
    shared = [st for st in rc.STAGES if st.folder]
    assert {st.name for st in shared} >= {"alexnet10k_table1", "inception5k_table1", "mlp12k_table1"}
    for st in shared:
        host = rc.BY_NAME[st.folder]
        assert host.folder is None and host.models == st.models and host.train_size == st.train_size
        mine = {p.spec.run_name() for p in rethink.randomization.plan_runs(model=st.models[0], **st.kwargs())}
        theirs = {p.spec.run_name() for p in rethink.randomization.plan_runs(model=st.models[0], **host.kwargs())}
        assert mine & theirs  # the reason to share: the unregularized runs are the host's


def test_the_reports_median_epochs_to_fit():
    mr = _make_report()
    runs = [{"variant": "true", "epochs_to_fit": e, "weight_decay": 0.0, "augment": None, "dropout": 0.0}
            for e in (59, 53)]
    assert mr._median_epochs(runs, "true") == 56  # an even count: the mean of the middle two
    assert mr._median_epochs(runs + [dict(runs[0], epochs_to_fit=70)], "true") == 59
    assert mr._median_epochs(runs, "random_labels") is None


def test_models_filter_trains_only_the_named_models(monkeypatch, tmp_path):
    rc = _stages()
    calls = []
    monkeypatch.setattr(rc.rethink, "randomization_test", lambda model, **kw: calls.append((model, kw["device"],
                                                                                            kw["devices"])))
    rc.main(["--stages", "inception5k_s1", "--models", "inception_small", "--device", "cuda", "--workers", "3",
             "--results", str(tmp_path)])
    assert calls == [("inception_small", "cuda", ["cuda"] * 3)]  # the stage's other model is skipped

    with pytest.raises(SystemExit):  # a name no chosen stage trains is refused before anything runs
        rc.main(["--stages", "inception5k_s1", "--models", "alexnet_small", "--results", str(tmp_path)])
    assert len(calls) == 1


def test_variants_filter_trains_the_stages_own_runs_of_those_variants(monkeypatch, tmp_path):
    rc = _stages()
    calls = []
    monkeypatch.setattr(rc.rethink, "randomization_test", lambda model, **kw: calls.append(kw))
    rc.main(["--stages", "inception5k_s1", "inception5k_table1", "alexnet10k_noise", "--models", "inception_small",
             "--variants", "gaussian", "random_labels", "--results", str(tmp_path)])
    assert len(calls) == 2  # alexnet10k_noise has none of the variants; inception_small_nobn is not named
    for kw in calls:
        assert kw["label_noise"] == [] and not kw["grid"] and not kw["regularized_random"]
    assert calls[0]["corruptions"] == ["gaussian", "random_labels"]  # in the order given
    assert calls[1]["corruptions"] == ["random_labels"]  # inception5k_table1 trains only these two variants
    for name in ("inception5k_s1", "inception5k_table1"):  # the same runs (so the same files) as the stage's own
        st = rc.BY_NAME[name]
        whole = {p.spec for p in rethink.randomization.plan_runs(model="inception_small", **st.kwargs())}
        some = rethink.randomization.plan_runs(model="inception_small", **rc.stage_kwargs(st, ["gaussian",
                                                                                             "random_labels"]))
        assert some and {p.spec for p in some} <= whole
        assert {p.spec.corruption for p in some} <= {"gaussian", "random_labels"}
    with pytest.raises(SystemExit):  # not a variant
        rc.main(["--stages", "inception5k_s1", "--variants", "labels:0.4", "--results", str(tmp_path)])


def _section(mr, monkeypatch, tmp_path, resume: str) -> tuple[str, list[str]]:
    """The conv-net section made from ``tmp_path/store`` (its figures under ``tmp_path/figs``):
    its text and the rows of its first table (the runs per model)."""
    monkeypatch.setattr(mr, "FIGS", tmp_path / "figs")
    (tmp_path / "figs").mkdir()
    out = []
    mr.section_convnets(out.append, tmp_path / "store", figures="gpu", stored_only=True, resume=resume)
    text = "".join(out)
    lines = text.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("| model | training images |"))
    end = next(i for i in range(head, len(lines)) if not lines[i].startswith("|"))
    return text, lines[head + 2:end]


def test_gpu_section_tables_only_the_stored_groups(monkeypatch, tmp_path):
    """The GPU part of the report: a folder holding one stage's runs gets one table row (the other
    stages' models, with nothing stored, are left out), its figures are prefixed, and the text
    says how the runs not done would be trained on a GPU."""
    mr = _make_report()
    src = Path(__file__).resolve().parent.parent / "docs" / "results" / "convnets_cuda" / "alexnet60k"
    if not any(src.rglob("*.json")):
        import pytest
        pytest.skip(f"no stored GPU runs under {src}")
    dst = tmp_path / "store" / "alexnet60k"
    for p in src.rglob("*.json"):
        (dst / p.parent.relative_to(src)).mkdir(parents=True, exist_ok=True)
        (dst / p.relative_to(src)).write_text(p.read_text())
    text, table = _section(mr, monkeypatch, tmp_path, "RESUME ON A GPU")
    assert len(table) == 1 and "60,000" in table[0], table
    assert "RESUME ON A GPU" in text and "Runs not done were not reached in the time" not in text
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["fashion_gpu_60k_alexnet_small_figure1.png"]


def test_a_second_schedule_is_reported_apart(monkeypatch, tmp_path):
    """A stage whose learning rate or its decay departs from the paper's is its own group: its own
    table row, section and figure files, named by the schedule (here the constant learning rate of
    alexnet60k_constant_lr, with the stored 60,000-image run copied into its folder)."""
    rc, mr = _stages(), _make_report()
    assert rc.BY_NAME["alexnet60k_constant_lr"].schedule == (("lr_decay", 1.0),)
    assert rc.BY_NAME["inception5k_nobn_lr0.01"].schedule == (("lr", 0.01),)
    assert rc.BY_NAME["alexnet60k"].schedule == ()
    assert mr._schedule_label((("lr", 0.01),), "inception_small_nobn") == "learning rate 0.01 instead of the paper's 0.1"
    assert mr._schedule_label((("lr_decay", 1.0),)) == "a constant learning rate"
    assert mr._schedule_suffix((("lr", 0.01),)) == "_lr0.01" and mr._schedule_suffix((("lr_decay", 1.0),)) == "_constlr"
    src = Path(__file__).resolve().parent.parent / "docs" / "results" / "convnets_cuda" / "alexnet60k"
    files = sorted(src.rglob("*.json"))
    if not files:
        import pytest
        pytest.skip(f"no stored GPU runs under {src}")
    for stage in ("alexnet60k", "alexnet60k_constant_lr"):
        dst = tmp_path / "store" / stage / "alexnet_small"
        dst.mkdir(parents=True)
        (dst / files[0].name).write_text(files[0].read_text())
    text, table = _section(mr, monkeypatch, tmp_path, "RESUME")
    assert [line.split(" | ")[0] for line in table] == ["| small AlexNet", "| small AlexNet (a constant learning rate)"]
    assert ("## small AlexNet on 60,000 Fashion-MNIST training images, a second schedule: a constant learning "
            "rate (the paper's decays by 0.95 per 50,000 examples)") in text
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == [
        "fashion_gpu_60k_alexnet_small_figure1.png", "fashion_gpu_60k_constlr_alexnet_small_figure1.png"]


def test_collect_stores_finished_runs_and_never_drops_a_stored_one(tmp_path):
    mr = _make_report()
    src, dst = tmp_path / "results", tmp_path / "docs"
    r = rethink.fit_random(dataset="digits", max_epochs=1, train_size=100, test_size=50, out_dir=src / "a",
                           run_name="done", device="cpu", progress=False)
    assert r.status == "completed"
    (src / "a" / "done.measures.json").write_text('{"values": {"l2": 1.0}}')
    assert mr.collect(src, dst) == 2
    stored = (dst / "a" / "done.json").read_text()
    got = rethink.Result.load(dst / "a" / "done.json")
    assert got.status == "completed" and got.final == r.final
    assert got.config["out_dir"] == "results/a"  # no absolute path of this machine
    assert (dst / "a" / "done.measures.json").read_text() == '{"values": {"l2": 1.0}}'
    # the same run trained again, unfinished: the stored finished copy stays as it was
    d = json.loads((src / "a" / "done.json").read_text())
    d["status"] = "running"
    (src / "a" / "done.json").write_text(json.dumps(d))
    assert mr.collect(src, dst) == 1  # the measures only
    assert (dst / "a" / "done.json").read_text() == stored


def test_the_reports_per_seed_time_to_fit_where_no_mean_is_drawn():
    mr = _make_report()
    base = dict(weight_decay=0.0, augment=None, dropout=0.0, label_noise=None, train_acc=1.0, epochs_to_fit=1)
    ds = [dict(base, variant="true", seed=0, steps_to_fit=100), dict(base, variant="true", seed=1, steps_to_fit=200),
          dict(base, variant="labels", label_noise=0.2, seed=0, steps_to_fit=150),
          dict(base, variant="labels", label_noise=0.2, seed=1, steps_to_fit=None, train_acc=0.99),
          dict(base, variant="random_labels", seed=0, steps_to_fit=None, train_acc=0.9999),
          dict(base, variant="random_labels", seed=1, steps_to_fit=400),
          dict(base, variant="random_labels", seed=1, steps_to_fit=10, weight_decay=5e-4)]  # regularized: not counted
    assert mr._per_seed_relative(ds, [0.2, 1.0]) == (
        "  Where not every seed fit (no mean), each seed against its own true-label run: "
        "seed 0: 0.2: 1.50x, 1: not fit (99.99% training accuracy); "
        "seed 1: 0.2: not fit (99.00% training accuracy), 1: 2.00x.\n")
    unfit = [d for d in ds if not (d["variant"] != "true" and d["steps_to_fit"])]
    assert mr._per_seed_relative(unfit, [0.2, 1.0]) == ""  # no seed fit any of these levels: nothing to say


def test_an_accuracy_below_100_never_reads_as_100():
    mr = _make_report()  # the report's cells use rethink.plots.percent (its own test: tests/test_plots.py)
    assert mr.pm([1.0, 0.9999]) == "99.99 ± 0.01 (2)"  # one seed short of fitting: the mean is not 100
    assert mr.pm([1.0, 1.0]) == "100.00 ± 0.00 (2)"
    assert mr._cell((0.99996, 0.0, 1)) == "99.99 (1)"


def test_the_early_stopping_line_says_where_the_stopping_rule_ended_a_run_at_its_best():
    mr = _make_report()

    class R:  # what _stopped_at_best reads of a Result
        def __init__(self, **d):
            self.d = dict(variant="true", test_acc=0.88, best_test_acc=0.88, epochs_to_fit=40) | d

        def summary(self):
            return self.d

    ended_at_best, improved_earlier = R(), R(best_test_acc=0.89)
    budget_out = R(epochs_to_fit=None)  # at its best at the end, but the budget ended it, not the rule
    other = R(variant="random_labels")
    assert mr._stopped_at_best([ended_at_best, improved_earlier, budget_out, other]) == (
        "; 1 of 3 ends at its best test accuracy as the stopping rule ended it at 100% training accuracy, "
        "before the end of the schedule")
    assert "2 of 2 end at their best" in mr._stopped_at_best([R(), R()])
    assert mr._stopped_at_best([improved_earlier, budget_out]) == ""
