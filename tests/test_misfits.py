"""scripts/fashion_misfits.py: the training images a run gets wrong, found in the run's own view
(its training subset), with their nearest neighbours."""
from __future__ import annotations

import json

import pytest
import torch
from _scripts import load_script

import rethink
from rethink.results import load_model
from rethink.run import Run

pytestmark = pytest.mark.usefixtures("one_thread")

#: A misfits file's whole-split scale and one misclassified image with its near-duplicate.
SCALE = dict(images=60000, crop=24, normalize="per_image", median=9.0, p01=3.1, below_1=43)
PAIR = dict(index=5, label=1, predicted=2, nearest=9, distance=0.3, nearest_label=2, nearest_predicted=2,
            image=50, nearest_image=90)


@pytest.fixture(scope="module")
def subset_run(tmp_path_factory):
    """A 2-epoch run on random labels of 300 of digits' training images (most still wrong)."""
    out = tmp_path_factory.mktemp("misfits")
    rethink.fit_random(dataset="digits", corruption="random_labels", train_size=300, max_epochs=2, seed=1,
                       out_dir=out, run_name="r", device="cpu", progress=False)
    return out / "r.json"


def test_nearest_is_the_closest_other_row():
    fm = load_script("fashion_misfits")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 7, generator=g, dtype=torch.float64)
    rows = torch.tensor([0, 3, 49])
    dist, idx = fm.nearest(x, rows)
    d = torch.cdist(x[rows], x)
    d[torch.arange(3), rows] = float("inf")  # never the row itself
    torch.testing.assert_close(dist, d.min(1).values)
    assert idx.tolist() == d.argmin(1).tolist()
    assert fm.nearest(x, torch.zeros(0, dtype=torch.long))[0].numel() == 0


def test_a_subset_runs_misfits_are_found_in_its_own_images(subset_run):
    fm = load_script("fashion_misfits")
    out = fm.analyse(subset_run, max_wrong=10_000)
    run = Run.of_result(subset_run)
    x, y = run.training_tensors()
    assert x.shape[0] == 300  # the run's subset, not digits' whole training split
    model, _ = load_model(subset_run)
    with torch.no_grad():
        pred = model(x).argmax(1)
    wrong = (pred != y).nonzero().flatten().tolist()
    assert wrong and [w["index"] for w in out["wrong"]] == wrong
    xf = x.reshape(len(x), -1).double()
    for w in out["wrong"]:
        i, j = w["index"], w["nearest"]
        d = (xf - xf[i]).norm(dim=1)
        d[i] = float("inf")
        assert w["distance"] == pytest.approx(float(d.min()), abs=1e-3) == pytest.approx(float(d[j]), abs=1e-3)
        assert (w["label"], w["predicted"], w["nearest_label"]) == (int(y[i]), int(pred[i]), int(y[j]))
        assert (w["image"], w["nearest_image"]) == (int(run.subset[i]), int(run.subset[j]))  # training-split ids
    nn = out["nearest_neighbour"]  # the scale of the run's own 300 images
    assert nn["images"] == 300 and 0 <= nn["p01"] <= nn["median"] and 0 <= nn["below_1"] <= 300


def test_a_run_with_more_misfits_than_the_limit_is_left_out(subset_run):
    fm = load_script("fashion_misfits")
    assert fm.analyse(subset_run, max_wrong=0) is None


def test_a_run_without_its_weights_is_skipped_with_a_reason(subset_run, tmp_path, capsys):
    fm = load_script("fashion_misfits")
    lone = tmp_path / "r.json"
    lone.write_text(subset_run.read_text())  # the result alone, its .pt not beside it
    got = fm.analyse(lone, max_wrong=10_000)
    assert got["skipped"] == "its weights were not kept" and got["run_name"] == "r" and "wrong" not in got
    assert got["corruption"] == "random_labels" and 0 <= got["train_acc"] < 1
    assert "skipped r.json: weights file" in (err := capsys.readouterr().err) and "r.pt' not found" in err
    # main records it under not_analysed, beside the runs it could look into
    both = tmp_path / "both"
    both.mkdir()
    (both / "lone.json").write_text(subset_run.read_text().replace('"run_name": "r"', '"run_name": "lone"'))
    for suffix in (".json", ".pt"):
        (both / f"r{suffix}").write_bytes(subset_run.with_suffix(suffix).read_bytes())
    out = tmp_path / "m.json"
    assert fm.main(["--results", str(both), "--out", str(out), "--max-wrong", "10000"]) == 0
    d = json.loads(out.read_text())
    assert [r["run_name"] for r in d["runs"]] == ["r"]
    assert [r["run_name"] for r in d["not_analysed"]] == ["lone"]


def test_the_reports_misfits_section_names_the_runs_it_could_not_analyse(tmp_path):
    mr = load_script("make_report")
    scale = SCALE
    lone = dict(run_name="x-1", model="alexnet_small", corruption="random_labels", train_acc=0.99995,
                weight_decay=0.0, augment=None, skipped="its weights were not kept")
    path = tmp_path / "misfits.json"
    path.write_text(json.dumps({"nearest_neighbour": scale, "runs": [], "not_analysed": [lone]}))
    out = []
    mr.section_misfits(out.append, path)
    text = "".join(out)
    assert ("Not analysed, as their weights were not kept: small AlexNet random_labels (`x-1`, 99.99% training "
            "accuracy).") in text
    assert "| model |" not in text  # no run was analysed: no table


def test_the_reports_misfits_section_names_each_runs_regularizer_and_scale(tmp_path):
    mr = load_script("make_report")
    scale = SCALE
    pair = PAIR
    runs = [dict(run_name="a", model="mlp1x512", corruption="random_labels", train_acc=0.9999, wrong=[pair],
                 crop=24, normalize="per_image", weight_decay=5e-4, augment=None,
                 nearest_neighbour=dict(scale, images=12500, below_1=2)),
            dict(run_name="b", model="mlp1x512", corruption="labels:0.8", train_acc=0.9999, wrong=[pair],
                 crop=24, normalize="per_image", weight_decay=0.0, augment="crop",
                 nearest_neighbour=dict(scale, images=12500, below_1=2)),
            dict(run_name="c", model="mlp1x512", corruption="none", train_acc=1.0, wrong=[], crop=24,
                 normalize="per_image")]
    path = tmp_path / "misfits.json"
    path.write_text(json.dumps({"nearest_neighbour": scale, "runs": runs}))
    out = []
    mr.section_misfits(out.append, path)
    text = "".join(out)
    assert "| MLP 1x512 | random_labels + weight decay | 1 | 0.30 | 1 of 1 | 1 of 1 | 12,500 | 2 |" in text
    assert "| MLP 1x512 | labels:0.8 + random crop | 1 |" in text
    assert "| none |" not in text  # a run with nothing misclassified has no row
    assert "which at most 2 of a run's training images have" in text
    assert ("one image of a nearly identical pair with conflicting labels (1 distinct pair in all): training images "
            "50 and 90." in text)  # the pair by its training-split ids


def test_the_reports_misfits_section_keeps_near_duplicates_apart_from_the_other_runs(tmp_path):
    mr = load_script("make_report")
    scale = dict(SCALE, images=10000, median=10.0, p01=3.7, below_1=2)
    pair = PAIR
    far = [dict(pair, index=i, nearest=i + 1, distance=d, image=i, nearest_image=i + 1)
           for i, d in ((1, 7.0), (3, 8.0), (6, 0.5))]
    runs = [dict(run_name="a", model="alexnet_small", corruption="random_labels", train_acc=0.9999, wrong=[pair],
                 crop=24, normalize="per_image", weight_decay=5e-4, augment=None, nearest_neighbour=scale),
            dict(run_name="b", model="alexnet_small", corruption="none", train_acc=0.9997, wrong=far, crop=24,
                 normalize="per_image", weight_decay=0.0, augment="crop", nearest_neighbour=scale)]
    path = tmp_path / "misfits.json"
    path.write_text(json.dumps({"nearest_neighbour": scale, "runs": runs}))
    out = []
    mr.section_misfits(out.append, path)
    text = "".join(out)
    # the near-duplicate claim is made of the run it holds for, not of every run
    assert "Every image the small AlexNet random_labels + weight decay run still misclassifies" in text
    assert "what it leaves unfitted is one image of a nearly identical pair" in text
    assert "training images 50 and 90." in text
    assert ("In the other runs, the distance from each image still misclassified to its nearest other training "
            "image: small AlexNet none + random crop: median 7.00 (the median over its training images 10.00), "
            "1 of 3 closer than 1 (a run trained on random crops is looked at in its centre crop") in text
