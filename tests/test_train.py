import json
import math
import os

import pytest
import torch
from conftest import requires_cuda
from torch import nn

import rethink
from rethink import train
from rethink.results import FORMAT_VERSION, Result

FAST = dict(device="cpu", progress=False)


pytestmark = pytest.mark.usefixtures("one_thread")


def _no_seconds(history):
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


def _assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# ----------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_true_labels_generalize_on_digits():
    r = rethink.fit_random("mlp1x512", "digits", "none", **FAST)
    assert r.status == "completed"
    assert r.final["train_acc"] == 1.0 and r.epochs_to_fit == r.final["epoch"]
    assert r.final["test_acc"] > 0.93
    assert r.steps_to_fit == r.history[-1]["step"]


@pytest.mark.slow
def test_random_labels_are_memorized_on_digits():
    r = rethink.fit_random("mlp1x512", "digits", "random_labels", **FAST)
    assert r.final["train_acc"] == 1.0, r.final
    assert r.epochs_to_fit is not None
    assert abs(r.final["test_acc"] - 0.1) < 0.06  # chance on 10 classes (360 test images)
    assert r.final["gap"] > 0.8


def test_history_config_and_schedule():
    r = rethink.fit_random("mlp1x512", "digits", "labels:0.5", max_epochs=3, batch_size=100, **FAST)
    assert [h["epoch"] for h in r.history] == [1, 2, 3]
    assert set(r.history[0]) == set(rethink.results.HISTORY_KEYS)
    n = r.config["num_train"]
    steps = math.ceil(n / 100)
    assert [h["step"] for h in r.history] == [steps, 2 * steps, 3 * steps]
    for i, h in enumerate(r.history):  # 0.95 per 50,000 examples, set at epoch boundaries
        assert h["lr"] == pytest.approx(0.01 * 0.95 ** (i * n / 50_000), rel=1e-12)
        assert 0 <= h["train_acc"] <= 1 and 0 <= h["test_acc"] <= 1
        assert math.isfinite(h["train_loss"]) and math.isfinite(h["test_loss"])
    for key in ["model", "dataset", "corruption", "seed", "lr", "momentum", "lr_decay", "lr_decay_examples",
                "weight_decay", "batch_size", "max_epochs", "stop_at_train_acc", "augment", "crop", "normalize",
                "device", "num_train", "num_classes", "input_shape", "run_name", "versions"]:
        assert key in r.config, key
    assert r.config["corruption"] == "labels:0.5" and r.config["model"] == "mlp1x512"
    assert r.config["run_name"] == "mlp1x512_digits_labels-0.5_wd0_noaug_s0-" + r.spec.key()
    assert r.spec == rethink.RunSpec(corruption="labels:0.5", max_epochs=3, batch_size=100).resolved()
    assert r.config["versions"]["torch"] == torch.__version__
    assert isinstance(r.model, nn.Module) and "net.1.weight" in r.init_state
    assert not torch.equal(r.model.state_dict()["net.1.weight"], r.init_state["net.1.weight"])


def test_same_seed_same_run_and_inception_lr_default():
    a = rethink.fit_random("mlp1x512", "digits", "random_labels", max_epochs=2, **FAST)
    b = rethink.fit_random("mlp1x512", "digits", "random_labels", max_epochs=2, **FAST)
    c = rethink.fit_random("mlp1x512", "digits", "random_labels", max_epochs=2, seed=1, **FAST)
    assert _no_seconds(a.history) == _no_seconds(b.history)
    assert _no_seconds(a.history) != _no_seconds(c.history)
    r = rethink.fit_random("inception_small_nobn", "digits", "none", max_epochs=1, batch_size=256, **FAST)
    assert r.config["lr"] == 0.1 and r.history[0]["lr"] == 0.1


def test_user_module_and_dataset_object():
    ds = rethink.datasets.load("digits")
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    r = rethink.fit_random(net, ds, rethink.Corruption("random_labels", seed=5), max_epochs=2, **FAST)
    assert r.config["model"] == "Sequential" and r.config["corruption_seed"] == 5
    # the caller's module is copied, never trained in place: passing it again starts over
    assert r.model is not net
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert any(not torch.equal(before[k], v.cpu()) for k, v in r.model.state_dict().items())
    again = rethink.fit_random(net, ds, rethink.Corruption("random_labels", seed=5), max_epochs=2, **FAST)
    assert _no_seconds(again.history) == _no_seconds(r.history)


@pytest.mark.parametrize("corruption", ["random_pixels", "gaussian"])
def test_prepared_split_equals_streaming_loader(corruption, monkeypatch):
    # without augmentation the split is prepared once and batches are gathered from it; this
    # must give exactly the run that streams every batch through the loader
    kw = dict(model="mlp1x512", dataset="digits", corruption=corruption, max_epochs=2, batch_size=100, **FAST)
    prepared = rethink.fit_random(**kw)
    monkeypatch.setattr(rethink.loader, "CACHE_BYTES", 0)
    streamed = rethink.fit_random(**kw)
    assert _no_seconds(prepared.history) == _no_seconds(streamed.history)
    _assert_same_state(prepared.model.state_dict(), streamed.model.state_dict())


def test_run_without_augmentation_prepares_each_split_once(monkeypatch):
    # the training samples serve both the SGD batches and the training evaluation, and only
    # the subset's samples are made: one kernel call for them, one for the test split
    calls = []
    real = rethink.loader._Plan.run

    def counting(self, images, labels, indices, epoch, check_indices):
        calls.append(int(indices.numel()))
        return real(self, images, labels, indices, epoch, check_indices)

    monkeypatch.setattr(rethink.loader._Plan, "run", counting)
    r = rethink.fit_random("mlp1x512", "digits", "gaussian", train_size=500, max_epochs=2, batch_size=100, **FAST)
    assert sorted(calls) == sorted([500, len(rethink.datasets.load("digits").test)])
    assert r.config["num_train"] == 500 and len(r.history) == 2


def test_augmented_run_measures_train_accuracy_without_augmentation():
    r = rethink.fit_random("mlp1x512", "digits", "labels:0.3", augment="crop_flip", max_epochs=2, **FAST)
    assert r.config["augment"] == "crop_flip" and len(r.history) == 2
    assert r.config["run_name"].startswith("mlp1x512_digits_labels-0.3_wd0_crop_flip_s0-")
    # the recorded accuracy is that of the final model on the whole corrupted training split,
    # eval mode, no augmentation
    corr = rethink.Corruption("labels", p=0.3, seed=0)
    x, y = rethink.RandomizedLoader(rethink.datasets.load("digits"), corr, shuffle=False).materialize()
    with torch.no_grad():
        acc = (r.model.eval()(x).argmax(1) == y).double().mean().item()
    assert r.history[-1]["train_acc"] == pytest.approx(acc, abs=1e-12)


def test_stop_at_train_acc():
    r = rethink.fit_random("mlp1x512", "digits", "none", stop_at_train_acc=0.5, **FAST)
    assert r.history[-1]["train_acc"] >= 0.5 and all(h["train_acc"] < 0.5 for h in r.history[:-1])
    assert r.epochs_to_fit == len(r.history) and r.steps_to_fit == r.history[-1]["step"]
    never = rethink.fit_random("mlp1x512", "digits", "random_labels", max_epochs=2, **FAST)
    assert never.epochs_to_fit is None and never.steps_to_fit is None and never.status == "completed"


# ----------------------------------------------------------------------------- files, resume


def test_result_files_and_load_model(tmp_path):
    r = rethink.fit_random("mlp1x512", "digits", "random_labels", max_epochs=2, out_dir=tmp_path, **FAST)
    name = r.config["run_name"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{name}.json", f"{name}.pt"]
    loaded = Result.load(tmp_path / f"{name}.json")
    assert loaded.status == "completed" and loaded.history == r.history and loaded.config == r.config
    model, init = train.load_model(tmp_path / f"{name}.json")
    _assert_same_state(model.state_dict(), r.model.state_dict())
    _assert_same_state(init, r.init_state)
    model2, _ = train.load_model(loaded)
    _assert_same_state(model2.state_dict(), r.model.state_dict())
    assert [x.config["run_name"] for x in rethink.load_runs(tmp_path)] == [name]


def test_resume_parity(tmp_path, monkeypatch):
    monkeypatch.setattr(train, "_CHECKPOINT_SECONDS", 0.0)  # a checkpoint after every epoch
    kw = dict(model="mlp1x512", dataset="digits", corruption="random_labels", max_epochs=6, batch_size=200, **FAST)
    full = rethink.fit_random(**kw, out_dir=tmp_path / "full")

    def stop(epoch):
        if epoch == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(train, "_after_epoch", stop)
    with pytest.raises(KeyboardInterrupt):
        rethink.fit_random(**kw, out_dir=tmp_path / "cut")
    name = full.config["run_name"]
    partial = Result.load(tmp_path / "cut" / f"{name}.json")
    assert partial.status == "interrupted" and len(partial.history) == 3 and "resume=True" in partial.error
    assert (tmp_path / "cut" / f"{name}.ckpt.pt").exists()
    monkeypatch.setattr(train, "_after_epoch", lambda epoch: None)
    resumed = rethink.fit_random(**kw, out_dir=tmp_path / "cut", resume=True)
    assert resumed.status == "completed"
    assert _no_seconds(resumed.history) == _no_seconds(full.history)
    _assert_same_state(resumed.model.state_dict(), full.model.state_dict())
    _assert_same_state(resumed.init_state, full.init_state)
    assert not (tmp_path / "cut" / f"{name}.ckpt.pt").exists()
    # a completed run is returned as it is
    again = rethink.fit_random(**kw, out_dir=tmp_path / "cut", resume=True)
    assert again.history == resumed.history


def test_resume_refuses_checkpoint_of_another_run(tmp_path, monkeypatch):
    monkeypatch.setattr(train, "_CHECKPOINT_SECONDS", 0.0)
    kw = dict(model="mlp1x512", dataset="digits", corruption="random_labels", max_epochs=3, **FAST)
    monkeypatch.setattr(train, "_after_epoch", lambda e: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        rethink.fit_random(**kw, out_dir=tmp_path, run_name="r")
    monkeypatch.setattr(train, "_after_epoch", lambda e: None)
    with pytest.raises(ValueError, match="lr is 0.01 there but 0.02 here"):
        rethink.fit_random(**kw, out_dir=tmp_path, run_name="r", lr=0.02, resume=True)


def test_failed_checkpoint_write_keeps_previous_files(tmp_path, monkeypatch):
    monkeypatch.setattr(train, "_CHECKPOINT_SECONDS", 0.0)
    kw = dict(model="mlp1x512", dataset="digits", corruption="random_labels", max_epochs=4, **FAST)
    real = train.atomic_torch_save
    calls = []

    def flaky(obj, path):
        calls.append(path)
        if len(calls) == 3:  # the third epoch's checkpoint: the disk "fails" mid-write
            import rethink._io as io

            def boom(*a):
                raise OSError("disk full")

            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(io.os, "fsync", boom)
                return real(obj, path)
        return real(obj, path)

    monkeypatch.setattr(train, "atomic_torch_save", flaky)
    with pytest.raises(OSError, match="disk full"):
        rethink.fit_random(**kw, out_dir=tmp_path, run_name="r")
    # the previous checkpoint and result survive whole; no temporary files are left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.ckpt.pt", "r.json"]
    partial = Result.load(tmp_path / "r.json")
    assert partial.status == "running" and len(partial.history) == 2
    assert torch.load(tmp_path / "r.ckpt.pt", weights_only=False)["epoch"] == 2
    done = rethink.fit_random(**kw, out_dir=tmp_path, run_name="r", resume=True)
    assert done.status == "completed" and len(done.history) == 4


class _NaNAfter(nn.Module):
    def __init__(self, steps):
        super().__init__()
        self.lin = nn.Linear(64, 10)
        self.steps, self.calls = steps, 0

    def forward(self, x):
        out = self.lin(x.flatten(1))
        if self.training:
            self.calls += 1
            if self.calls >= self.steps:
                out = out * float("nan")
        return out


def test_nan_loss_stops_and_saves(tmp_path):
    with pytest.raises(train.TrainingFailed, match="step 17 ") as info:
        rethink.fit_random(_NaNAfter(17), "digits", "none", max_epochs=5, out_dir=tmp_path, run_name="nan", **FAST)
    saved = Result.load(tmp_path / "nan.json")
    assert saved.status == "failed" and "step 17" in saved.error
    assert len(saved.history) == 1  # epoch 1 (12 steps) completed, epoch 2 failed
    assert info.value.result.status == "failed"


# ----------------------------------------------------------------------------- sweep


def test_sweep_runs_product_and_skips_finished(tmp_path, monkeypatch):
    kw = dict(dataset="digits", max_epochs=1, device="cpu", progress=False)
    results = rethink.sweep(["mlp1x512"], ["none", "random_labels"], [0, 1], tmp_path, **kw)
    assert [(r.config["corruption"], r.config["seed"]) for r in results] == [
        ("none", 0), ("none", 1), ("random_labels", 0), ("random_labels", 1)]
    assert len(list(tmp_path.glob("*.json"))) == 4 and all(r.status == "completed" for r in results)

    calls = []
    real = train.fit
    monkeypatch.setattr(train, "fit", lambda spec, **k: calls.append(spec.run_name()) or real(spec, **k))
    # mark one run unfinished: only it runs again
    p = tmp_path / f"{results[1].config['run_name']}.json"
    d = json.loads(p.read_text())
    d["status"] = "running"
    p.write_text(json.dumps(d))
    again = rethink.sweep(["mlp1x512"], ["none", "random_labels"], [0, 1], tmp_path, **kw)
    assert calls == [results[1].config["run_name"]]
    assert [_no_seconds(r.history) for r in again] == [_no_seconds(r.history) for r in results]


def test_sweep_lists_of_other_settings(tmp_path):
    results = rethink.sweep(["mlp1x512"], ["none"], [0], tmp_path, dataset="digits", weight_decay=[0.0, 1e-3],
                            lr=[0.01, 0.02], max_epochs=1, device="cpu", progress=False)
    names = [r.config["run_name"] for r in results]
    assert len(set(names)) == 4
    assert [(r.config["weight_decay"], r.config["lr"]) for r in results] == [
        (0.0, 0.01), (0.0, 0.02), (1e-3, 0.01), (1e-3, 0.02)]



def test_sweep_refuses_an_empty_list_of_a_setting(tmp_path):
    with pytest.raises(ValueError, match="weight_decay= is an empty list"):
        rethink.sweep(["mlp1x512"], ["none"], [0], tmp_path, weight_decay=[], max_epochs=1, device="cpu",
                      progress=False)
    assert not list(tmp_path.glob("*.json"))


@pytest.mark.slow
def test_sweep_over_two_worker_processes(tmp_path):
    kw = dict(dataset="digits", max_epochs=1, progress=False)
    results = rethink.sweep(["mlp1x512"], ["none", "gaussian"], [0], tmp_path, devices=["cpu", "cpu"], **kw)
    assert [r.config["corruption"] for r in results] == ["none", "gaussian"]
    assert all(r.status == "completed" and len(r.history) == 1 for r in results)
    single = rethink.fit_random("mlp1x512", "digits", "gaussian", max_epochs=1, device="cpu", progress=False)
    assert _no_seconds(results[1].history) == _no_seconds(single.history)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("kwargs, match", [
    (dict(model="vgg16"), r"'vgg16'.*mlp1x512, mlp3x512"),
    (dict(dataset="imagenet"), "imagenet"),
    (dict(corruption="rotated"), "rotated"),
    (dict(lr=0.0), "lr must be .* got 0.0"),
    (dict(lr=-1), "lr must be .* got -1"),
    (dict(batch_size=0), "batch_size must be .* got 0"),
    (dict(max_epochs=0), "max_epochs must be .* got 0"),
    (dict(lr_decay=1.5), "lr_decay must be .* got 1.5"),
    (dict(stop_at_train_acc=0), "stop_at_train_acc"),
    (dict(device="tpu"), "'tpu'"),
    (dict(dtype="float16"), "'float16'"),
    (dict(model=nn.Sequential(nn.Flatten(), nn.Linear(64, 3))), r"outputs shape \(3,\).*10 classes"),
])
def test_bad_input(kwargs, match):
    kw = dict(max_epochs=1, **FAST)
    kw.update(kwargs)
    with pytest.raises(ValueError, match=match):
        rethink.fit_random(**kw)


def test_out_dir_that_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ValueError, match="out_dir .*file.* is a file"):
        rethink.fit_random(max_epochs=1, out_dir=f, **FAST)
    with pytest.raises(ValueError, match="is a file"):
        rethink.sweep(out_dir=f, max_epochs=1, device="cpu")


def test_newer_result_format_is_refused(tmp_path):
    name = rethink.RunSpec(max_epochs=1).run_name()
    (tmp_path / f"{name}.json").write_text(json.dumps({"format_version": FORMAT_VERSION + 1, "history": []}))
    with pytest.raises(ValueError, match=f"format_version {FORMAT_VERSION + 1}"):
        rethink.fit_random(max_epochs=1, out_dir=tmp_path, resume=True, **FAST)
    with pytest.raises(ValueError, match=f"format_version {FORMAT_VERSION + 1}"):
        rethink.load_runs(tmp_path)
    with pytest.raises(ValueError, match=f"format_version {FORMAT_VERSION + 1}"):
        rethink.sweep(out_dir=tmp_path, corruptions=["random_labels"], max_epochs=1, device="cpu")


def test_nothing_written_for_bad_input(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ValueError):
        rethink.fit_random(lr=-1, out_dir=out, **FAST)
    with pytest.raises(ValueError):
        rethink.sweep(["nope"], out_dir=out)
    assert not out.exists()
    assert not os.listdir(tmp_path)


# ----------------------------------------------------------------------------- GPU


@requires_cuda
def test_no_host_sync_per_step_on_cuda():
    import warnings

    ds = rethink.datasets.synthetic(4096, 256, shape=(3, 32, 32))
    rethink.fit_random("mlp1x512", ds, "random_labels", max_epochs=1, device="cuda", progress=False)  # warm-up
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            r = rethink.fit_random("mlp1x512", ds, "random_labels", max_epochs=2, batch_size=128, device="cuda",
                                   progress=False)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    syncs = [w for w in caught if "synchroniz" in str(w.message).lower()]
    assert r.history[-1]["step"] == 64
    assert len(syncs) < 32, [str(w.message) for w in syncs[:5]]  # a few per epoch, not one per step


@requires_cuda
@pytest.mark.parametrize("model", ["alexnet_small", "inception_small"])
def test_cuda_bf16_channels_last(model):
    kw = dict(max_epochs=6, device="cuda", progress=False)
    r = rethink.fit_random(model, "digits", "none", dtype="bfloat16", **kw)
    ref = rethink.fit_random(model, "digits", "none", **kw)
    assert r.config["dtype"] == "bfloat16" and r.config["device"].startswith("cuda")
    assert all(math.isfinite(h["train_loss"]) for h in r.history)
    assert r.history[-1]["train_loss"] < r.history[0]["train_loss"]  # it learns
    # bf16 autocast trains like float32 on the same device (same seed, same batches)
    assert abs(r.history[-1]["train_acc"] - ref.history[-1]["train_acc"]) < 0.15


@pytest.mark.slow
def test_compile_matches_eager():
    kw = dict(model="mlp1x512", dataset="digits", corruption="random_labels", max_epochs=1, **FAST)
    eager = rethink.fit_random(**kw)
    compiled = rethink.fit_random(**kw, compile=True)
    assert compiled.config["compile"] is True
    a, b = eager.history[0], compiled.history[0]
    assert a["step"] == b["step"]
    assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
    assert b["train_acc"] == pytest.approx(a["train_acc"], abs=3 / 1437)


# ----------------------------------------------------------------------------- the paper's settings


def _plain_pytorch_run(corruption, epochs, batch_size, dropout=0.0, augment=None, crop=None):
    """The same run written with plain PyTorch: per-step minibatch losses and the network."""
    import torch.nn.functional as F

    ds = rethink.datasets.load("digits")
    n = len(ds.train)
    loader = rethink.RandomizedLoader(ds, rethink.Corruption.parse(corruption, seed=0), batch_size=batch_size,
                                      seed=0, augment=augment, crop=crop, cache=False)
    net = rethink.models.create("mlp1x512", loader.output_shape, 10, seed=0, dropout=dropout)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    losses = []
    torch.manual_seed(0)  # dropout draws from the global RNG, seeded with the run's seed
    for epoch in range(epochs):
        for g in opt.param_groups:
            g["lr"] = 0.01 * 0.95 ** (epoch * n / 50_000)
        loader.set_epoch(epoch)
        net.train()
        for x, y in loader:
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return losses, net


def test_windowed_loss_matches_plain_pytorch():
    r = rethink.fit_random("mlp1x512", "digits", "random_labels", max_epochs=3, batch_size=100, loss_window=5,
                           stop_at_train_acc=None, **FAST)
    losses, net = _plain_pytorch_run("random_labels", 3, 100)
    assert len(losses) == r.history[-1]["step"] == 45
    want = [[min(k + 5, 45), sum(losses[k:k + 5]) / len(losses[k:k + 5])] for k in range(0, 45, 5)]
    assert [s for s, _ in r.loss_log] == [s for s, _ in want]
    assert [v for _, v in r.loss_log] == pytest.approx([v for _, v in want], rel=1e-6)
    _assert_same_state(r.model.state_dict(), net.state_dict())


def test_windowed_loss_partial_last_window_and_resume(tmp_path, monkeypatch):
    monkeypatch.setattr(train, "_CHECKPOINT_SECONDS", 0.0)
    kw = dict(model="mlp1x512", dataset="digits", corruption="none", max_epochs=4, batch_size=200, loss_window=7,
              stop_at_train_acc=None, **FAST)
    full = rethink.fit_random(**kw)
    assert [s for s, _ in full.loss_log] == [7, 14, 21, 28, 32]  # 8 steps per epoch, the last window partial

    def stop(epoch):
        if epoch == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(train, "_after_epoch", stop)
    with pytest.raises(KeyboardInterrupt):
        rethink.fit_random(**kw, out_dir=tmp_path)
    monkeypatch.setattr(train, "_after_epoch", lambda e: None)
    resumed = rethink.fit_random(**kw, out_dir=tmp_path, resume=True)
    assert resumed.loss_log == full.loss_log


def test_dropout_and_augmentation_match_plain_pytorch():
    r = rethink.fit_random("mlp1x512", "digits", "none", max_epochs=2, batch_size=100, loss_window=1, dropout=0.3,
                           augment="crop+flip", crop=6, stop_at_train_acc=None, **FAST)
    losses, net = _plain_pytorch_run("none", 2, 100, dropout=0.3, augment="crop+flip", crop=6)
    assert [v for _, v in r.loss_log] == pytest.approx(losses, rel=1e-6)
    _assert_same_state(r.model.state_dict(), net.state_dict())
    assert sum(isinstance(m, nn.Dropout) and m.p == 0.3 for m in r.model.modules()) == 1
    assert r.config["dropout"] == 0.3 and r.config["input_shape"] == [1, 6, 6]


def test_training_past_the_fit_records_the_whole_schedule():
    r = rethink.fit_random("mlp1x512", "digits", "none", stop_at_train_acc=0.5, epochs_after_fit=3, **FAST)
    assert r.epochs_to_fit is not None and len(r.history) == r.epochs_to_fit + 3
    assert r.steps_to_fit == r.history[r.epochs_to_fit - 1]["step"]
    s = r.summary()
    assert s["best_test_acc"] == max(h["test_acc"] for h in r.history)
    assert r.history[s["best_test_epoch"] - 1]["test_acc"] == s["best_test_acc"]
    fixed = rethink.fit_random("mlp1x512", "digits", "none", stop_at_train_acc=None, max_epochs=3, **FAST)
    assert len(fixed.history) == 3 and fixed.steps_to_fit is None
    by_loss = rethink.fit_random("mlp1x512", "digits", "none", stop_at_train_acc=None, stop_at_train_loss=1.0, **FAST)
    assert by_loss.history[-1]["train_loss"] <= 1.0 and all(h["train_loss"] > 1.0 for h in by_loss.history[:-1])


def test_training_subset():
    r = rethink.fit_random("mlp1x512", "digits", "random_labels", train_size=300, max_epochs=2, batch_size=100,
                           **FAST)
    assert r.config["num_train"] == 300 and r.history[-1]["step"] == 6
    idx = rethink.runs.subset_indices(1437, 300, 0)
    assert idx.numel() == 300 and torch.equal(idx, idx.sort().values)
    with pytest.raises(ValueError, match="train_size=5000 exceeds the 1437"):
        rethink.fit_random(train_size=5000, max_epochs=1, **FAST)


def test_threads_are_set_recorded_and_part_of_a_given_runs_identity(tmp_path):
    before = torch.get_num_threads()
    kw = dict(max_epochs=1, out_dir=tmp_path, **FAST)
    plain = rethink.fit_random("mlp1x128", "digits", "none", **kw)
    assert plain.config["threads"] is None and plain.config["versions"]["torch_threads"] == before
    one = rethink.fit_random("mlp1x128", "digits", "none", threads=1, **kw)
    assert one.config["threads"] == 1 and one.config["versions"]["torch_threads"] == 1
    assert torch.get_num_threads() == before  # restored after the run
    assert one.config["run_name"] != plain.config["run_name"]  # given, the count names the run
    # left unset, a finished run is reused whatever count made it; given, another count is another run
    spec = rethink.RunSpec(model="mlp1x128", dataset="digits", corruption="none", max_epochs=1)
    assert spec.diff(spec.replace(threads=3)) == []
    assert [d[0] for d in spec.replace(threads=1).diff(spec.replace(threads=3))] == ["threads"]
    with pytest.raises(ValueError, match="threads must be an integer >= 1"):
        rethink.RunSpec(threads=0)


def test_memory_format_on_cpu_follows_the_model():
    # small Inception runs in channels_last on a CPU too (faster there); small AlexNet and MLPs do not
    kw = dict(dataset="digits", corruption="none", max_epochs=1, train_size=64, test_size=32, batch_size=32, **FAST)
    inc = rethink.fit_random("inception_small", **kw)
    assert inc.config["channels_last"] is True
    assert rethink.fit_random("alexnet_small", **kw).config["channels_last"] is False
    assert rethink.fit_random("mlp1x128", **kw).config["channels_last"] is False
    assert math.isfinite(inc.history[0]["train_loss"])
