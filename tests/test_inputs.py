"""Your model and your data in every entry point (rethink.inputs): the conversion rules,
the fingerprints that keep resume safe, and each command run on a user CNN with a user
tensor dataset and a torchvision-style dataset, the caller's module left untouched."""

import textwrap

import numpy as np
import pytest
import torch
from torch import nn

import rethink
from rethink import inputs
from rethink.cli import main

FAST = dict(device="cpu", progress=False)


class UserCNN(nn.Module):
    """A user network: conv -> ReLU -> linear, sized from the view it is given."""

    def __init__(self, input_shape=(1, 8, 8), num_classes=10):
        super().__init__()
        c, h, w = input_shape
        self.conv = nn.Conv2d(c, 4, 3, padding=1)
        self.fc = nn.Linear(4 * h * w, num_classes)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


class TorchvisionStyle:
    """What torchvision's MNIST-like datasets hold: ``.data`` uint8 (N, H, W), ``.targets``."""

    def __init__(self, images, labels):
        self.data, self.targets = images[:, 0].clone(), labels.clone()

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):  # with a transform this would give float tensors; .data wins
        return self.data[i].float() / 255, int(self.targets[i])


@pytest.fixture(scope="module")
def digits():
    ds = rethink.datasets.load("digits")
    return ds.train.images[:240], ds.train.labels[:240], ds.test.images[:80], ds.test.labels[:80]


@pytest.fixture(params=["tensors", "torchvision"])
def user_data(request, digits):
    """The same images as a user tensor tuple and as a pair of torchvision-style datasets."""
    x, y, xt, yt = digits
    if request.param == "tensors":
        return (x.float() / 255, y, xt, yt)  # float images in [0, 1]
    return (TorchvisionStyle(x, y), TorchvisionStyle(xt, yt))


def _state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------- conversion


def test_image_rule():
    x = torch.tensor([[[0.0, 0.5], [1.0, 0.25]]])  # (N, H, W) in [0, 1]
    out = inputs.as_uint8_images(x)
    assert out.dtype == torch.uint8 and out.shape == (1, 1, 2, 2)
    assert out.flatten().tolist() == [0, 128, 255, 64]  # x * 255, rounded
    assert inputs.as_uint8_images(x * 200).flatten().tolist() == [0, 100, 200, 50]  # [0, 255]: rounded
    hwc = np.arange(2 * 6 * 5 * 3, dtype=np.uint8).reshape(2, 6, 5, 3)  # (N, H, W, C) -> channels first
    assert torch.equal(inputs.as_uint8_images(hwc), torch.from_numpy(hwc).permute(0, 3, 1, 2))
    chw = torch.zeros(2, 3, 6, 5, dtype=torch.uint8)
    assert inputs.as_uint8_images(chw).shape == (2, 3, 6, 5)
    for bad, match in [(x - 1, r"got values in \[-1, 0\]"), (x * 300, r"\[0, 300\]"),
                       (x.masked_fill(x > 0.9, float("nan")), "NaN"), (torch.tensor([[[256]]]), r"\[0, 255\]"),
                       (torch.zeros(3, 4), "shape"), (torch.zeros(1, 2, 2, dtype=torch.bool), "real numbers")]:
        with pytest.raises(ValueError, match=match):
            inputs.as_uint8_images(bad)


def test_dataset_forms(digits):
    x, y, xt, yt = digits
    ds, fp = inputs.as_dataset((x, y, xt, yt))
    assert torch.equal(ds.train.images, x) and torch.equal(ds.test.labels, yt) and fp is not None
    ds2, _ = inputs.as_dataset((x.numpy() / 255.0, y.numpy()))  # float [0, 1] arrays, no test split
    assert torch.equal(ds2.train.images, x) and len(ds2.test) == 0
    ds3, fp3 = inputs.as_dataset(torch.utils.data.TensorDataset(x.float(), y))  # float [0, 255] pairs
    assert torch.equal(ds3.train.images, x)
    ds4, fp4 = inputs.as_dataset((TorchvisionStyle(x, y), TorchvisionStyle(xt, yt)))
    assert torch.equal(ds4.train.images, x) and torch.equal(ds4.test.images, xt) and fp4 == fp
    hwc = [(img.permute(1, 2, 0).numpy(), int(lab)) for img, lab in zip(x, y)]  # e.g. PIL-like (H, W, C)
    assert torch.equal(inputs.as_dataset(hwc)[0].train.images, x)
    assert inputs.as_dataset("digits")[1] is None
    with pytest.raises(ValueError, match="got int 7"):
        inputs.as_dataset(7)
    with pytest.raises(ValueError, match="differ in number"):
        inputs.as_dataset((x, y[:-1]))
    with pytest.raises(ValueError, match="1-D integer tensor"):
        inputs.as_dataset((x, y.float()))
    with pytest.raises(ValueError, match="tuple of 3"):
        inputs.as_dataset((x, y, xt))


def test_dataset_file(tmp_path, digits):
    x, y, xt, yt = digits
    np.savez(tmp_path / "d.npz", train_images=x.numpy(), train_labels=y.numpy(), test_images=xt.numpy(),
             test_labels=yt.numpy())
    ds, fp = inputs.as_dataset(tmp_path / "d.npz")
    assert fp == inputs.as_dataset((x, y, xt, yt))[1] and ds.name == "d"
    torch.save((x, y), tmp_path / "t.pt")
    assert torch.equal(inputs.as_dataset(tmp_path / "t.pt")[0].train.labels, y)
    np.savez(tmp_path / "bad.npz", images=x.numpy())
    with pytest.raises(ValueError, match="must hold train_images"):
        inputs.as_dataset(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="does not exist"):
        inputs.load_dataset_file(tmp_path / "missing.npz")


def test_fingerprints_tell_models_and_data_apart(digits):
    x, y, xt, yt = digits
    a = UserCNN()
    fa = inputs.as_model(a).fingerprint
    assert inputs.as_model(a).fingerprint == fa
    with torch.no_grad():
        a.fc.bias[0] += 1
    assert inputs.as_model(a).fingerprint != fa  # other weights, another model
    assert inputs.as_model(UserCNN).fingerprint == inputs.as_model(UserCNN).fingerprint
    assert inputs.as_model(UserCNN).fingerprint != inputs.as_model(TorchvisionStyle.__init__).fingerprint
    y2 = y.clone()
    y2[0] = (y2[0] + 1) % 10
    assert inputs.as_dataset((x, y))[1] != inputs.as_dataset((x, y2))[1]
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        inputs.as_model("nope")
    with pytest.raises(ValueError, match="not an nn.Module"):
        inputs.as_model(TorchvisionStyle)
    with pytest.raises(ValueError, match="needs argument 'depth'"):
        inputs.as_model(lambda depth: UserCNN()).build(0, (1, 8, 8), 10)


def test_factory_is_seeded_and_gets_the_view():
    src = inputs.as_model(UserCNN)
    a, b, c = src.build(3, (1, 6, 6), 4), src.build(3, (1, 6, 6), 4), src.build(4, (1, 6, 6), 4)
    assert _same(a.state_dict(), b.state_dict()) and not _same(a.state_dict(), c.state_dict())
    assert a.fc.in_features == 4 * 36 and a.fc.out_features == 4
    g = torch.get_rng_state()
    src.build(5, (1, 6, 6), 4)
    assert torch.equal(torch.get_rng_state(), g)  # the caller's RNG is left as it was


# ----------------------------------------------------------------------------- entry points


def test_fit_random_copies_the_module_and_resume_is_safe(tmp_path, digits):
    net = UserCNN()
    before = _state(net)
    r = rethink.fit_random(net, digits, "random_labels", max_epochs=2, out_dir=tmp_path, run_name="mine", **FAST)
    assert _same(_state(net), before) and r.model is not net
    assert r.config["model"] == "UserCNN" and r.config["dataset"] == "tensors" and r.status == "completed"
    again = rethink.fit_random(net, digits, "random_labels", max_epochs=2, out_dir=tmp_path, run_name="mine",
                               resume=True, **FAST)
    assert again.history == r.history  # read back: the same module and data
    rebuilt, _ = rethink.load_model(tmp_path / "mine.json")
    assert isinstance(rebuilt, UserCNN) and _same(rebuilt.state_dict(), r.model.state_dict())
    with torch.no_grad():
        net.fc.bias.add_(1.0)
    with pytest.raises(ValueError, match="model_fingerprint"):  # other weights under the same name
        rethink.fit_random(net, digits, "random_labels", max_epochs=2, out_dir=tmp_path, run_name="mine", **FAST)


def test_fit_random_class_on_torchvision_style(digits):
    x, y, xt, yt = digits
    r1 = rethink.fit_random(UserCNN, (TorchvisionStyle(x, y), TorchvisionStyle(xt, yt)), "none", max_epochs=2,
                            seed=1, **FAST)
    r2 = rethink.fit_random(UserCNN, (TorchvisionStyle(x, y), TorchvisionStyle(xt, yt)), "none", max_epochs=2,
                            seed=1, **FAST)
    assert r1.config["dataset"] == "torchvisionstyle" and r1.config["num_test"] == len(yt)
    assert [h["train_acc"] for h in r1.history] == [h["train_acc"] for h in r2.history]  # seeded factory


def test_sweep_user_model_and_data(tmp_path, user_data):
    net = UserCNN()
    before = _state(net)
    kw = dict(corruptions=["none", "random_labels"], seeds=[0], out_dir=tmp_path, max_epochs=1, **FAST)
    rs = rethink.sweep([net, UserCNN], dataset=user_data, **kw)
    assert [r.status for r in rs] == ["completed"] * 4 and _same(_state(net), before)
    files = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.json")}
    again = rethink.sweep([net, UserCNN], dataset=user_data, **kw)  # finished runs are read back
    assert [r.history for r in again] == [r.history for r in rs]
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.json")} == files


def test_randomization_test_user_model_and_data(tmp_path, user_data):
    net = UserCNN()
    before = _state(net)
    rep = rethink.randomization_test(net, user_data,
                                     corruptions=["none", "random_labels"], label_noise=[], grid=False,
                                     out_dir=tmp_path, max_epochs=1, **FAST)
    assert len(rep.results) == 2 and all(r.config["model"] == "UserCNN" for r in rep.results)
    assert rep.paths["figure1"].exists() and _same(_state(net), before)


def test_zoo_user_model_and_data(tmp_path, user_data):
    rep = rethink.zoo({"model": [UserCNN], "lr": [0.01, 0.05]}, seeds=[0], out_dir=tmp_path, dataset=user_data,
                      max_epochs=1, stop_at_train_acc=None, test_size=None, measure_settings={"measures": ["l2"]},
                      **FAST)
    assert len(rep.results) == 2 and len(rep.measures) == 2
    assert all(v["l2"] > 0 for v in rep.measures.values())


def test_memorization_user_model_and_data(tmp_path, user_data, digits):
    net = UserCNN()
    before = _state(net)
    rep = rethink.memorization(net, user_data, "labels:0.2", runs=2, out_dir=tmp_path, max_epochs=1, **FAST)
    assert rep.scores.shape == (len(digits[1]),) and rep.flipped.any() and _same(_state(net), before)


def test_measures_and_rademacher_user_model_and_data(user_data):
    net = UserCNN()
    before = _state(net)
    vals = rethink.measures.compute(net, user_data, measures=["l2", "margin"], device="cpu")
    assert vals["l2"] > 0 and np.isfinite(vals["margin"]) and _same(_state(net), before)
    two = UserCNN(num_classes=2)  # Rademacher draws two classes
    two_before = _state(two)
    rad = rethink.rademacher(two, user_data, draws=1, max_epochs=1, device="cpu")
    assert len(rad.correlations) == 1 and _same(_state(two), two_before)
    rad = rethink.rademacher(UserCNN, user_data, draws=2, max_epochs=1, device="cpu")
    assert len(rad.correlations) == 2 and all(-1 <= c <= 1 for c in rad.correlations)


def test_a_user_run_trained_in_one_command_is_measured_from_its_files(tmp_path, user_data):
    rethink.fit_random(UserCNN, user_data, "none", max_epochs=1, out_dir=tmp_path, run_name="u", **FAST)
    with pytest.raises(ValueError, match="user dataset"):  # the data is not in the files: it must be given
        rethink.measures.compute(str(tmp_path / "u.json"), measures=["l2"], device="cpu")
    vals = rethink.measures.compute(str(tmp_path / "u.json"), user_data, measures=["l2", "margin"], device="cpu")
    assert vals["l2"] > 0


def test_cli_user_model_and_dataset_file(tmp_path, monkeypatch, digits, capsys):
    x, y, xt, yt = digits
    (tmp_path / "my_nets.py").write_text(textwrap.dedent('''
        import torch
        from torch import nn

        def small(input_shape, num_classes):
            return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0] * input_shape[1] * input_shape[2],
                                                         num_classes))
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    np.savez(tmp_path / "mine.npz", train_images=x.numpy(), train_labels=y.numpy(), test_images=xt.numpy(),
             test_labels=yt.numpy())
    out = tmp_path / "out"
    assert main(["fit-random", "--model", "my_nets:small", "--dataset", str(tmp_path / "mine.npz"), "--max-epochs",
                 "1", "--out-dir", str(out), "--no-progress", "--device", "cpu"]) == 0
    [res] = rethink.load_runs(out)
    assert res.config["model"] == "small" and res.config["dataset"] == "mine"
    assert main(["sweep", "--model", "my_nets:small", "mlp1x128", "--dataset", str(tmp_path / "mine.npz"),
                 "--corruption", "none", "--max-epochs", "1", "--out-dir", str(out), "--no-progress",
                 "--device", "cpu"]) == 0
    assert "2 runs, 0 failed" in capsys.readouterr().out
    assert main(["fit-random", "--model", "my_nets:nothing", "--no-progress"]) == 1
    assert "has no attribute 'nothing'" in capsys.readouterr().err


def test_fit_random_takes_the_commands_execution_settings(tmp_path, digits):
    from rethink.runner import Execution

    ex = Execution(out_dir=tmp_path, device="cpu", progress=False)
    r = rethink.fit_random("mlp1x128", digits, "none", max_epochs=1, execution=ex)
    assert (tmp_path / f"{r.config['run_name']}.json").exists()
    with pytest.raises(ValueError, match="give devices / an executor to sweep"):
        rethink.fit_random("mlp1x128", digits, "none", max_epochs=1,
                           execution=Execution(out_dir=tmp_path, devices=["cpu", "cpu"]))
