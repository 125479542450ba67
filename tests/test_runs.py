"""The run model: RunSpec, run names and identity, stale results, the results reader, damaged files."""

from __future__ import annotations

import json
import os
import stat
import warnings
from pathlib import Path

import pytest
import torch

import rethink
from rethink import Corruption, RunSpec, train
from rethink.cli import main as cli_main
from rethink.results import Result

FAST = dict(device="cpu", progress=False)
pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------------------- RunSpec


def test_spec_canonical_forms_and_defaults():
    s = RunSpec(corruption="labels:0.40", augment="flip+crop", normalize="none", dtype="bf16", crop=6)
    assert s.corruption == "labels:0.4" and s.augment == "crop+flip" and s.normalize is None
    assert s.dtype == "bfloat16"
    r = s.resolved()
    assert r.lr == 0.01 and r.max_epochs == 1000 and r.corruption_seed == 0 and r.subset_seed == 0
    assert RunSpec(model="inception_small").resolved().lr == 0.1
    assert RunSpec(augment="rotate").max_rotation == 25 and RunSpec().max_rotation is None
    assert RunSpec(seed=3).corruption_object() == rethink.Corruption("random_labels", seed=3)


@pytest.mark.parametrize("kwargs, match", [
    (dict(model="vgg16"), r"unknown model 'vgg16'; choose one of: mlp1x512, mlp3x512"),
    (dict(dataset="imagenet"), "imagenet"),
    (dict(corruption="labels:0.3:0.7"), "twice"),
    (dict(corruption="rotated"), "rotated"),
    (dict(seed=2**64), r"seed must be an integer in \[0, 2\^63\), got 18446744073709551616"),
    (dict(seed=-1), "seed must be"),
    (dict(corruption_seed=2**63), "corruption_seed must be"),
    (dict(lr=float("nan")), "lr must be"),
    (dict(dropout=1.0), "dropout must be"),
    (dict(max_rotation=10), "needs augment with 'rotate'"),
    (dict(augment="rotate", max_rotation=60), "max_rotation must be"),
    (dict(augment="blur"), "blur"),
    (dict(stop_at_train_loss=0), "stop_at_train_loss"),
    (dict(epochs_after_fit=-1), "epochs_after_fit"),
    (dict(train_size=0), "train_size"),
    (dict(dtype="float16"), "'float16'"),
    (dict(normalize="zca"), "zca"),
])
def test_spec_rejects_bad_values_naming_them(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RunSpec(**kwargs)


def test_unknown_setting_is_named():
    with pytest.raises(ValueError, match="unknown setting.*learning_rate"):
        rethink.fit_random(learning_rate=0.1, **FAST)
    with pytest.raises(TypeError):
        RunSpec(learning_rate=0.1)


def test_name_and_identity_follow_every_setting():
    base = RunSpec(max_epochs=3)
    assert base.run_name() == RunSpec(max_epochs=3).run_name()
    assert base.run_name().startswith("mlp1x512_digits_random_labels_wd0_noaug_s0-")
    names = {base.run_name()}
    for change in [dict(lr=0.02), dict(max_epochs=4), dict(batch_size=64), dict(momentum=0.5), dict(crop=6),
                   dict(dropout=0.1), dict(epochs_after_fit=1), dict(stop_at_train_acc=None), dict(train_size=100),
                   dict(train_pool=500),
                   dict(loss_window=10), dict(corruption_seed=1), dict(dtype="bfloat16")]:
        other = base.replace(**change)
        assert other.run_name() not in names, change
        names.add(other.run_name())
        assert [k for k, _, _ in base.diff(other)] == list(change), change
    # a default given explicitly is the same run
    assert RunSpec(max_epochs=3, lr=0.01).run_name() == base.run_name()
    assert RunSpec(max_epochs=3, corruption_seed=0).key() == base.key()


def test_spec_from_a_rethink_01_config():
    cfg = {"model": "mlp1x512", "dataset": "digits", "corruption": "random_labels", "corruption_seed": 0, "seed": 0,
           "lr": 0.01, "momentum": 0.9, "lr_decay": 0.95, "lr_decay_examples": 50000, "weight_decay": 0.0,
           "batch_size": 128, "max_epochs": 5, "stop_at_train_acc": 1.0, "augment": None, "crop": None,
           "normalize": "per_image", "device": "cpu", "dtype": "float32", "compile": False, "run_name": "x",
           "versions": {}}
    s = RunSpec.from_config(cfg)
    assert s == RunSpec(max_epochs=5).resolved()
    r = Result.from_dict({"format_version": 1, "config": cfg, "history": [{"epoch": 1, "train_acc": 1.0}]})
    assert r.loss_log == [] and r.spec == s and r.summary()["variant"] == "random_labels"


# ----------------------------------------------------------------------------- stale results


def test_sweep_never_returns_a_result_of_other_settings(tmp_path):
    kw = dict(seeds=[0], out_dir=tmp_path, max_epochs=1, device="cpu", progress=False)
    a = rethink.sweep(["mlp1x512"], ["none"], lr=0.01, **kw)[0]
    b = rethink.sweep(["mlp1x512"], ["none"], lr=0.5, **kw)[0]
    assert a.config["lr"] == 0.01 and b.config["lr"] == 0.5
    assert a.history[0]["train_loss"] != b.history[0]["train_loss"]
    c = rethink.sweep(["mlp1x512"], ["none"], lr=0.01, max_epochs=2, seeds=[0], out_dir=tmp_path, device="cpu",
                      progress=False)[0]
    assert len(c.history) == 2
    assert len(list(tmp_path.glob("*.json"))) == 3
    again = rethink.sweep(["mlp1x512"], ["none"], lr=0.5, **kw)[0]  # the same question: read back
    assert again.history == b.history


def test_fit_random_resume_refuses_a_result_of_other_settings(tmp_path):
    rethink.fit_random(max_epochs=1, out_dir=tmp_path, run_name="r", **FAST)
    with pytest.raises(ValueError, match="lr is 0.01 there but 0.5 here"):
        rethink.fit_random(max_epochs=1, lr=0.5, out_dir=tmp_path, run_name="r", resume=True, **FAST)
    with pytest.raises(ValueError, match="max_epochs is 1 there but 2 here"):
        rethink.fit_random(max_epochs=2, out_dir=tmp_path, run_name="r", resume=True, **FAST)
    # with the default names the question gets its own file
    a = rethink.fit_random(max_epochs=1, out_dir=tmp_path, resume=True, **FAST)
    b = rethink.fit_random(max_epochs=1, lr=0.5, out_dir=tmp_path, resume=True, **FAST)
    assert a.config["lr"] == 0.01 and b.config["lr"] == 0.5 and a.config["run_name"] != b.config["run_name"]


def test_fresh_start_refuses_to_overwrite_a_run_of_other_settings(tmp_path, capsys):
    first = rethink.fit_random(max_epochs=1, out_dir=tmp_path, run_name="x", **FAST)
    before = (tmp_path / "x.json").read_bytes()
    with pytest.raises(ValueError, match="lr is 0.01 there but 0.5 here"):
        rethink.fit_random(max_epochs=1, lr=0.5, out_dir=tmp_path, run_name="x", **FAST)
    argv = ["fit-random", "--max-epochs", "1", "--lr", "0.5", "--run-name", "x", "--out-dir", str(tmp_path),
            "--device", "cpu", "--no-progress"]
    assert cli_main(argv) != 0
    assert "lr is 0.01 there but 0.5 here" in capsys.readouterr().err
    assert (tmp_path / "x.json").read_bytes() == before  # untouched
    again = rethink.fit_random(max_epochs=1, out_dir=tmp_path, run_name="x", **FAST)  # same settings: retrained
    assert again.history[0]["train_loss"] == first.history[0]["train_loss"]


def test_randomization_test_resume_recomputes_for_other_settings(tmp_path):
    argv = ["randomization-test", "--corruptions", "true", "random_labels", "--label-noise", "0", "1", "--no-grid",
            "--max-epochs", "1", "--out-dir", str(tmp_path), "--device", "cpu", "--no-progress", "--resume"]
    assert cli_main(argv) == 0
    first = {r.config["run_name"]: r for r in rethink.load_runs(tmp_path)}
    assert cli_main(argv[:-4] + ["--device", "cpu", "--no-progress", "--resume", "--lr", "0.05"]) == 0
    runs = rethink.load_runs(tmp_path)
    assert len(runs) == 4 and {r.config["lr"] for r in runs} == {0.01, 0.05}
    table = (tmp_path / "table1.md").read_text()
    new = [r for r in runs if r.config["lr"] == 0.05]
    assert all(f"{100 * r.final['train_acc']:.2f}/{100 * r.final['test_acc']:.2f}" in table for r in new)
    assert all(first[k].history == r.history for r in runs if (k := r.config["run_name"]) in first)


def test_a_randomization_test_reuses_results_stored_without_weights(tmp_path, monkeypatch):
    # committed results keep the JSON, not the weights: resuming from them trains nothing again,
    # while a job that reads the network (the default FitJob, as the zoo's) still retrains
    from rethink.runner import FitJob

    kw = dict(corruptions=["none", "random_labels"], label_noise=[], grid=False, max_epochs=1, train_size=200,
              out_dir=tmp_path, **FAST)
    first = rethink.randomization_test("mlp1x512", "digits", **kw)
    for p in tmp_path.glob("*.pt"):
        p.unlink()
    monkeypatch.setattr(train, "fit", lambda *a, **k: pytest.fail("a finished run was trained again"))
    again = rethink.randomization_test("mlp1x512", "digits", **kw)
    assert [r.history for r in again.results] == [r.history for r in first.results]
    spec = RunSpec.from_config(first.results[0].config)
    assert FitJob(spec, weights=False).finished(tmp_path).history == first.results[0].history
    assert FitJob(spec).finished(tmp_path) is None  # its weights are not there


# ----------------------------------------------------------------------------- the results reader


def test_load_runs_filters_status_and_skips_damaged_files(tmp_path):
    done = rethink.fit_random(max_epochs=1, out_dir=tmp_path, **FAST)
    Result(config={"model": "mlp1x512", "dataset": "digits"}, status="failed", error="x").save(tmp_path / "f.json")
    (tmp_path / "cut.json").write_text('{"format_version": 2, "hist')
    (tmp_path / "other.json").write_text('{"not": "a result"}')
    with pytest.warns(UserWarning, match="cut.json"):
        runs = rethink.load_runs(tmp_path)
    assert sorted(r.status for r in runs) == ["completed", "failed"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert [r.config["run_name"] for r in rethink.load_runs(tmp_path, status="completed")] == \
            [done.config["run_name"]]
    with pytest.raises(ValueError, match="cut.json"):
        rethink.load_runs(tmp_path, on_error="raise")
    with pytest.raises(ValueError, match="does not exist"):
        rethink.load_runs(tmp_path / "nope")


def test_load_runs_refuses_an_unknown_status_and_names_damaged_files(tmp_path):
    Result(config={"model": "mlp1x512", "dataset": "digits"}).save(tmp_path / "ok.json")
    with pytest.raises(ValueError, match="unknown status 'complete'.*'completed'"):
        rethink.load_runs(tmp_path, status="complete")
    with pytest.raises(ValueError, match="unknown status"):
        rethink.load_runs(tmp_path, status=["completed", "done"])
    with pytest.raises(ValueError, match="on_error"):
        rethink.load_runs(tmp_path, on_error="ignore")
    (tmp_path / "latin.json").write_bytes(b'{"format_version": 2, "error": "caf\xe9"}')
    with pytest.raises(ValueError, match="latin.json.*UTF-8"):
        Result.load(tmp_path / "latin.json")
    (tmp_path / "types.json").write_text('{"format_version": 2, "config": "x", "history": 3}')
    with pytest.raises(ValueError, match="types.json.*history must be a list, got 3"):
        Result.load(tmp_path / "types.json")
    with pytest.warns(UserWarning) as caught:
        runs = rethink.load_runs(tmp_path)
    named = " ".join(str(w.message) for w in caught)
    assert len(runs) == 1 and "latin.json" in named and "types.json" in named


# ----------------------------------------------------------------------------- faults


def test_damaged_result_is_kept_aside_and_the_sweep_goes_on(tmp_path):
    kw = dict(seeds=[0], out_dir=tmp_path, max_epochs=1, device="cpu", progress=False)
    first = rethink.sweep(["mlp1x512"], ["none", "random_labels"], **kw)
    victim = tmp_path / f"{first[0].config['run_name']}.json"
    text = victim.read_text()
    victim.write_text(text[: len(text) // 2])  # truncated by a crash
    with pytest.warns(UserWarning, match=victim.name):
        again = rethink.sweep(["mlp1x512"], ["none", "random_labels"], **kw)
    assert [r.status for r in again] == ["completed", "completed"]
    assert (tmp_path / (victim.name + ".damaged")).read_text() == text[: len(text) // 2]  # kept, not deleted
    assert json.loads(victim.read_text())["status"] == "completed"
    assert again[1].history == first[1].history


def test_damaged_checkpoint_is_named_kept_aside_and_the_run_restarts(tmp_path, monkeypatch):
    monkeypatch.setattr(train, "_CHECKPOINT_SECONDS", 0.0)
    monkeypatch.setattr(train, "_after_epoch", lambda e: (_ for _ in ()).throw(KeyboardInterrupt()))
    kw = dict(max_epochs=3, out_dir=tmp_path, run_name="r", **FAST)
    with pytest.raises(KeyboardInterrupt):
        rethink.fit_random(**kw)
    ckpt = tmp_path / "r.ckpt.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    monkeypatch.setattr(train, "_after_epoch", lambda e: None)
    with pytest.warns(UserWarning, match="r.ckpt.pt is damaged"):
        r = rethink.fit_random(**kw, resume=True)
    assert r.status == "completed" and len(r.history) == 3 and (tmp_path / "r.ckpt.pt.damaged").exists()
    whole = rethink.fit_random(max_epochs=3, **FAST)
    assert [h["train_loss"] for h in r.history] == [h["train_loss"] for h in whole.history]


def test_damaged_weights_file_is_named(tmp_path):
    r = rethink.fit_random(max_epochs=1, out_dir=tmp_path, **FAST)
    pt = tmp_path / f"{r.config['run_name']}.pt"
    pt.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=f"{pt.name}.*damaged"):
        rethink.load_model(tmp_path / f"{r.config['run_name']}.json")


def test_files_get_the_mode_of_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        r = rethink.fit_random(max_epochs=1, out_dir=tmp_path, **FAST)
    finally:
        os.umask(old)
    for suffix in (".json", ".pt"):
        mode = stat.S_IMODE((tmp_path / f"{r.config['run_name']}{suffix}").stat().st_mode)
        assert mode == 0o640, (suffix, oct(mode))


def test_unwritable_out_dir_fails_before_training(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("training started")

    monkeypatch.setattr(train, "_Trainer", boom)
    with pytest.raises(PermissionError, match="cannot be written"):
        rethink.fit_random(max_epochs=1, out_dir="/proc/rethink-unwritable", **FAST)
    with pytest.raises(PermissionError, match="cannot be written"):
        rethink.sweep(out_dir="/proc/rethink-unwritable", max_epochs=1, device="cpu", progress=False)
    assert cli_main(["randomization-test", "--out-dir", "/proc/rethink-unwritable", "--device", "cpu"]) == 1


# ----------------------------------------------------------------------------- the model and the data


def test_model_that_does_not_take_the_data_is_named():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(100, 10))
    with pytest.raises(ValueError, match=r"model 'Sequential' cannot take the images of dataset 'digits': input "
                                         r"shape \(1, 8, 8\)"):
        rethink.fit_random(net, "digits", max_epochs=1, **FAST)


def test_cpu_only_torch_says_how_to_fix_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="--device cpu"):
        rethink.fit_random(max_epochs=1, device="cuda", progress=False)


@pytest.mark.parametrize("call, match", [
    (lambda: RunSpec.from_config([1]), "not a run's config"),
    (lambda: rethink.load_runs(".", status=5), "status must be one of"),
    (lambda: rethink.runs.subset_indices(10, -1, 0), "train_size must be an integer >= 1, got -1"),
    (lambda: RunSpec(normalize=[]), "unknown normalize"),
    (lambda: RunSpec(test_size=2**70), "test_size must be an integer >= 1 and <= 9.22337e\\+18"),
    (lambda: RunSpec(epochs_after_fit=2**40), "epochs_after_fit must be"),
    (lambda: rethink.fit_random(out_dir=5, max_epochs=1, **FAST), "out_dir must be a path .*got int 5"),
    (lambda: rethink.results.load_model(5), "must be a path"),
    (lambda: Result.from_dict({"format_version": True}), "not a rethink result"),
    (lambda: rethink.datasets.load("mnist", root=5), "root must be a path"),
])
def test_values_of_the_wrong_type_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_shuffled_pixel_runs_with_a_crop_are_not_taken_for_earlier_versions_runs():
    # rethink 0.2 permuted the whole image, then cropped; such stored runs keep their names
    # but a spec of today names another run, so they are never reused as the new semantics
    # (small AlexNet's 10,000-image folder keeps one such run beside its redo)
    folder = Path(__file__).resolve().parent.parent / "docs" / "results" / "convnets" / "alexnet10k" / "alexnet_small"
    if not folder.is_dir():
        pytest.skip(f"no stored results in {folder}")
    renamed, kept = set(), set()
    for r in rethink.load_runs(folder):
        same = RunSpec.from_config(r.config).run_name() == r.config["run_name"]
        (kept if same else renamed).add(Corruption.parse(r.config["corruption"]).kind)
    # the folder holds one shuffled-pixels run of each version: the old one renamed, its redo kept
    assert renamed == {"shuffled_pixels"}
    assert {"none", "random_labels", "gaussian", "shuffled_pixels"} <= kept


def test_the_view_limits_are_the_loaders():
    # one check of a view for the spec and the loader: the same message, with the dataset named
    from rethink import _build
    from rethink.augment import check_view

    for kw in (dict(crop=9), dict(augment="crop", crop=8), dict(augment="crop")):
        with pytest.raises(ValueError) as from_loader:
            check_view(8, 8, kw.get("augment"), kw.get("crop"), 25)
        with pytest.raises(ValueError) as from_spec:
            RunSpec(dataset="digits", **kw)
        assert str(from_spec.value) == f"{from_loader.value} (dataset 'digits')"
    limit = _build._C.max_rotation
    RunSpec(augment="rotate", max_rotation=limit)
    with pytest.raises(ValueError, match=f"max_rotation must be an integer >= 1 and <= {limit}"):
        RunSpec(augment="rotate", max_rotation=limit + 1)
