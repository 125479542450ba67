"""rethink.plots on hand-made results: Figure 1's numbers, Table 1's layout and values."""

from __future__ import annotations

import math

import pytest

from rethink import Result, plots


def make_result(
    corruption="none",
    *,
    model="mlp1x512",
    dataset="digits",
    train_acc=1.0,
    test_acc=0.9,
    steps_to_fit=300,
    weight_decay=0.0,
    augment=None,
    seed=0,
    epochs=5,
    steps_per_epoch=100,
    status="completed",
    num_classes=10,
):
    history = []
    for e in range(1, epochs + 1):
        frac = e / epochs
        history.append(
            {
                "epoch": e,
                "step": e * steps_per_epoch,
                "lr": 0.01 * 0.95 ** (e - 1),
                "train_loss": 2.3 * (1 - frac) + 0.001 * frac + 0.01 * len(corruption),
                "train_acc": train_acc * frac if e < epochs else train_acc,
                "test_loss": 1.0,
                "test_acc": test_acc * frac if e < epochs else test_acc,
                "seconds": 0.5 * e,
            }
        )
    return Result(
        history=history,
        steps_to_fit=steps_to_fit,
        epochs_to_fit=None if steps_to_fit is None else steps_to_fit // steps_per_epoch,
        config={
            "model": model,
            "dataset": dataset,
            "corruption": corruption,
            "seed": seed,
            "weight_decay": weight_decay,
            "augment": augment,
            "num_classes": num_classes,
            "run_name": f"{model}_{dataset}_{corruption}_s{seed}",
        },
        status=status,
    )


def paper_set(model="mlp1x512", scale=1.0):
    """Five variants, a label-noise sweep and the wd/augmentation grid for one model."""
    rs = [
        make_result("none", model=model, test_acc=0.9712 * scale, steps_to_fit=200),
        make_result("random_labels", model=model, test_acc=0.1034, steps_to_fit=430),
        make_result("shuffled_pixels", model=model, test_acc=0.9555 * scale, steps_to_fit=220),
        make_result("random_pixels", model=model, test_acc=0.0917, steps_to_fit=310),
        make_result("gaussian", model=model, test_acc=0.1111, steps_to_fit=290),
    ]
    for p, fit, acc in [(0.2, 260, 0.8), (0.4, 300, 0.6444), (0.6, 360, 0.45), (0.8, 400, 0.2678)]:
        rs.append(make_result(f"labels:{p}", model=model, test_acc=acc * scale, steps_to_fit=fit))
    rs.append(make_result("none", model=model, weight_decay=5e-4, test_acc=0.9733, train_acc=0.9987))
    rs.append(make_result("none", model=model, augment="crop_flip", test_acc=0.9801))
    rs.append(make_result("none", model=model, weight_decay=5e-4, augment="crop_flip", test_acc=0.9822))
    return rs


@pytest.mark.parametrize(
    "text,expected",
    [
        ("none", ("true", 0.0)),
        ("true", ("true", 0.0)),
        ("labels:0.4", ("labels", 0.4)),
        ("labels:0", ("true", 0.0)),
        ("labels:1.0", ("random_labels", 1.0)),
        ("random_labels", ("random_labels", 1.0)),
        ("shuffled_pixels", ("shuffled_pixels", None)),
        ("random_pixels", ("random_pixels", None)),
        ("gaussian", ("gaussian", None)),
    ],
)
def test_summary_variant_and_label_noise(text, expected):
    d = make_result(text).summary()
    assert (d["variant"], d["label_noise"]) == expected


def test_summary_reads_final_epoch():
    r = make_result("labels:0.6", test_acc=0.45, weight_decay=5e-4, augment="crop_flip")
    d = r.summary()
    assert d["variant"] == "labels" and d["label_noise"] == 0.6
    assert d["test_acc"] == 0.45 and d["train_acc"] == 1.0
    assert d["weight_decay"] == 5e-4 and d["augment"] == "crop_flip"
    assert d["chance"] == pytest.approx(0.1)
    assert d["steps"] == 500 and d["epochs"] == 5
    # the best test accuracy over the schedule (the history rises to the last epoch here)
    assert d["best_test_acc"] == 0.45 and d["best_test_epoch"] == 5


def test_figure1_data_numbers():
    rs = paper_set()
    data = plots.figure1_data(rs)
    assert set(data["a"]["curves"]) == set(plots.VARIANTS)
    assert data["a"]["model"] == "MLP 1x512"
    rl = data["a"]["curves"]["random_labels"][0]
    assert rl["train_loss"] == [h["train_loss"] for h in rs[1].history]
    b = data["b"]["MLP 1x512"]
    assert b["label_noise"] == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert b["steps_to_fit"] == [200, 260, 300, 360, 400, 430]
    assert b["relative"] == pytest.approx([1.0, 1.3, 1.5, 1.8, 2.0, 2.15])
    c = data["c"]["MLP 1x512"]
    assert c["test_error"] == pytest.approx([1 - 0.9712, 0.2, 1 - 0.6444, 0.55, 1 - 0.2678, 1 - 0.1034])
    # Regularized runs are not part of the figure.
    assert len(data["a"]["curves"]["true"]) == 1


def test_figure1_unfitted_run_is_nan_and_seeds_average():
    rs = [
        make_result("none", steps_to_fit=100, test_acc=0.9, seed=0),
        make_result("none", steps_to_fit=300, test_acc=0.8, seed=1),
        make_result("random_labels", steps_to_fit=None, train_acc=0.5, test_acc=0.1),
    ]
    data = plots.figure1_data(rs)
    b = data["b"]["MLP 1x512"]
    assert b["steps_to_fit"][0] == 200
    assert math.isnan(b["relative"][1])
    assert data["c"]["MLP 1x512"]["test_error"][0] == pytest.approx(0.15)
    assert len(data["a"]["curves"]["true"]) == 2


def test_figure1_writes_png_with_the_results_numbers(tmp_path):
    rs = paper_set() + paper_set(model="alexnet_small", scale=0.9)
    path = plots.figure1(rs, tmp_path / "fig" / "figure1.png", title="digits")
    assert path.exists() and path.stat().st_size > 10_000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    back = plots.read_figure_data(path)
    assert back["a"]["model"] == "MLP 1x512"
    assert set(back["b"]) == {"MLP 1x512", "small AlexNet"}
    # The numbers in the file are the results' numbers.
    for r in rs:
        d = r.summary()
        if d["weight_decay"] or d["augment"]:
            continue
        key = plots.model_label(d["model"])
        if d["label_noise"] is not None:
            i = back["c"][key]["label_noise"].index(d["label_noise"])
            assert back["c"][key]["test_error"][i] == pytest.approx(1 - d["test_acc"])
            assert back["b"][key]["steps_to_fit"][i] == d["steps_to_fit"]
        if key == "MLP 1x512" and d["variant"] in plots.VARIANTS:
            curve = back["a"]["curves"][d["variant"]][0]
            assert curve["train_loss"] == pytest.approx([h["train_loss"] for h in r.history])
            assert curve["step"] == [h["step"] for h in r.history]


def test_figure1_other_formats_and_empty(tmp_path):
    p = plots.figure1([], tmp_path / "empty.png")
    assert p.exists()
    assert plots.read_figure_data(p)["b"] == {}
    svg = plots.figure1(paper_set(), tmp_path / "f.svg")
    assert svg.read_text().lstrip().startswith("<?xml")


def test_figure1_bad_input(tmp_path):
    with pytest.raises(TypeError, match="Result"):
        plots.figure1([{"history": []}], tmp_path / "x.png")
    with pytest.raises(ValueError, match="resnet18"):
        plots.figure1(paper_set(), tmp_path / "x.png", model="resnet18")
    assert not (tmp_path / "x.png").exists()
    (tmp_path / "not.png").write_bytes(b"hello")
    with pytest.raises(ValueError, match="not a PNG"):
        plots.read_figure_data(tmp_path / "not.png")


def test_table1_layout_and_numbers(tmp_path):
    rs = paper_set() + paper_set(model="inception_small", scale=0.95)
    md = plots.table1(rs)
    lines = md.splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == [
        "model",
        "crop_flip + wd 0.0005",
        "crop_flip",
        "wd 0.0005",
        "no regularizer",
        "random labels",
        "shuffled pixels",
        "random pixels",
        "Gaussian",
    ]
    assert lines[1].startswith("| --- |")
    rows = {c[0]: c[1:] for c in ([x.strip() for x in line.strip("|").split("|")] for line in lines[2:4])}
    assert set(rows) == {"MLP 1x512", "small Inception"}
    mlp = rows["MLP 1x512"]
    assert mlp[0] == "100.00/98.22"
    assert mlp[1] == "100.00/98.01"
    assert mlp[2] == "99.87/97.33"
    assert mlp[3] == "100.00/97.12"
    assert mlp[4] == "100.00/10.34"
    assert mlp[6] == "100.00/9.17"
    # Every result's accuracy (label noise aside) is in the file once written.
    path = tmp_path / "table1.md"
    path.write_text(md)
    text = path.read_text()
    for r in rs:
        d = r.summary()
        if d["variant"] == "labels":
            continue
        assert f"{100 * d['train_acc']:.2f}/{100 * d['test_acc']:.2f}" in text


def test_table1_seeds_mean_and_incomplete_mark():
    rs = [
        make_result("none", test_acc=0.90, seed=0),
        make_result("none", test_acc=0.80, seed=1),
        make_result("random_labels", test_acc=0.1, train_acc=0.5, status="running", steps_to_fit=None),
    ]
    md = plots.table1(rs)
    assert "| MLP 1x512 | 100.00/85.00 ± 7.07 | 50.00/10.00* |" in md


def test_percent_never_rounds_a_fraction_below_1_up_to_100():
    assert plots.percent(1.0) == "100.00"
    assert plots.percent(59_999 / 60_000) == "99.99"  # rounding would read as fitted
    assert plots.percent(0.9996, 1) == "99.9"
    assert plots.percent(0.98765) == "98.77"  # elsewhere the usual rounding
    rs = [make_result("none", test_acc=0.90, seed=0),
          make_result("random_labels", train_acc=1.0, test_acc=0.1, seed=0),
          make_result("random_labels", train_acc=0.9999, test_acc=0.1, seed=1, steps_to_fit=None)]
    assert "| 99.99/10.00 ± 0.00 |" in plots.table1(rs)  # one seed short of 100%: its mean is not 100.00


def test_table1_datasets_split_rows():
    rs = [make_result("none", dataset="digits"), make_result("none", dataset="mnist", test_acc=0.98)]
    md = plots.table1(rs)
    assert "| MLP 1x512 (digits) | 100.00/90.00 |" in md
    assert "| MLP 1x512 (mnist) | 100.00/98.00 |" in md


def test_table1_rejects_non_results():
    with pytest.raises(TypeError):
        plots.table1([1, 2])


def test_figure2_has_no_empty_panel(tmp_path):
    import matplotlib.image

    one = plots.figure2(paper_set(), tmp_path / "one.png")  # no small Inception runs: one panel
    both = plots.figure2(paper_set() + paper_set(model="inception_small") + paper_set(model="inception_small_nobn"),
                         tmp_path / "two.png", model="mlp1x512")
    w1, w2 = matplotlib.image.imread(one).shape[1], matplotlib.image.imread(both).shape[1]
    assert w1 < 0.7 * w2
    assert plots.read_figure_data(one)["batch_norm"] == {}
    assert len(plots.read_figure_data(both)["batch_norm"]) == 2  # with and without batch norm
