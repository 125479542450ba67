"""The model zoo: the factorial grid, its runs through the runner (also submitit's local executor),
measures cached per run."""

import json
import math

import pytest
import torch

import rethink
from rethink.zoo import ZOO_GRID, MeasureJob, ZooReport, zoo_specs

pytestmark = pytest.mark.usefixtures("one_thread")

def _same(a, b):
    return a.keys() == b.keys() and all(a[k] == b[k] or (a[k] != a[k] and b[k] != b[k]) for k in a)


TINY = dict(dataset="digits", max_epochs=2, train_size=200, test_size=100, stop_at_train_acc=0.99)


def test_grid_is_the_product_with_seeds_innermost():
    specs = zoo_specs({"lr": [0.01, 0.02], "weight_decay": [0.0, 1e-3], "model": ["mlp1x128"]}, seeds=(0, 1), **TINY)
    assert len(specs) == 8
    assert [(s.lr, s.weight_decay, s.seed) for s in specs[:4]] == [(0.01, 0.0, 0), (0.01, 0.0, 1), (0.01, 1e-3, 0),
                                                                   (0.01, 1e-3, 1)]
    assert len({s.run_name() for s in specs}) == 8
    assert all(s.dataset == "digits" and s.train_size == 200 for s in specs)
    default = zoo_specs()
    assert len(default) == 128 and len(ZOO_GRID) >= 5
    with pytest.raises(ValueError, match="non-empty"):
        zoo_specs({"lr": []})
    with pytest.raises(ValueError, match="unknown model"):
        zoo_specs({"model": ["nope"]})
    for seeds in ((), [], None, 3):  # used to return an empty zoo
        with pytest.raises(ValueError, match="seeds must be a non-empty list"):
            zoo_specs({"lr": [0.01]}, seeds=seeds)


def test_bad_measure_settings_are_refused_before_training(tmp_path):
    for ms, match in (({"bogus": 1}, "unknown measure setting.*'bogus'"), ({"samples": 0}, "samples must be")):
        with pytest.raises(ValueError, match=match):
            rethink.zoo({"lr": [0.01]}, seeds=(0,), out_dir=tmp_path, device="cpu", progress=False,
                        measure_settings=ms, **TINY)
        assert not list(tmp_path.glob("*.json"))  # nothing trained


def test_zoo_trains_measures_and_caches(tmp_path):
    grid = {"lr": [0.01, 0.05], "model": ["mlp1x128"]}
    settings = {"measure_settings": {"measures": ["l2", "margin", "params"]}}
    rep = rethink.zoo(grid, seeds=(0,), out_dir=tmp_path, device="cpu", progress=False, **settings, **TINY)
    assert len(rep.results) == 2 and all(r.status == "completed" for r in rep.results)
    assert set(rep.measures) == {r.run_name for r in rep.results}
    for name, m in rep.measures.items():
        assert m["params"] > 0 and m["l2"] > 0
        cached = json.loads((tmp_path / f"{name}.measures.json").read_text())
        assert _same(cached["values"], m)
    # a second call recomputes nothing: same files, same values
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*.json")}
    again = rethink.zoo(grid, seeds=(0,), out_dir=tmp_path, device="cpu", progress=False, **settings, **TINY)
    assert all(_same(again.measures[k], rep.measures[k]) for k in rep.measures)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("*.json")} == stamps
    # without their weights files (a committed result folder) runs with cached measures are not trained again
    a, b = (r.run_name for r in rep.results)
    for name in (a, b):
        (tmp_path / f"{name}.pt").unlink()
    (tmp_path / f"{b}.measures.json").unlink()  # ... but a run without them is: its measures need its weights
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob(f"{a}*")}
    third = rethink.zoo(grid, seeds=(0,), out_dir=tmp_path, device="cpu", progress=False, **settings, **TINY)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob(f"{a}*")} == stamps and not (tmp_path / f"{a}.pt").exists()
    assert _same(third.measures[a], rep.measures[a])
    assert (tmp_path / f"{b}.pt").exists() and (tmp_path / f"{b}.measures.json").exists()
    assert _same(third.measures[b], rep.measures[b])  # retrained on the CPU with the same seed: the same values
    # other measure settings are a different cache entry
    assert MeasureJob.make(rep.results[0].run_name, {"measures": ["l2"]}).finished(tmp_path) is None
    same = MeasureJob.make(rep.results[0].run_name, {"measures": ("l2", "margin", "params"), "seed": 0})
    assert same.finished(tmp_path) is not None  # the defaults spelled out: the same cache entry
    # without measures no weights are read: finished runs stored without them are not trained again
    for name in (a, b):
        (tmp_path / f"{name}.pt").unlink(missing_ok=True)
        (tmp_path / f"{name}.measures.json").unlink()
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*.json")}
    plain = rethink.zoo(grid, seeds=(0,), out_dir=tmp_path, device="cpu", progress=False, measures=False, **TINY)
    assert [r.run_name for r in plain.results] == [a, b] and all(r.status == "completed" for r in plain.results)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("*.json")} == stamps and not list(tmp_path.glob("*.pt"))


def test_measures_cache_is_keyed_by_the_weights(tmp_path):
    r = rethink.fit_random(max_epochs=1, train_size=100, test_size=50, out_dir=tmp_path, run_name="w", device="cpu",
                           progress=False)
    job = MeasureJob.make("w", {"measures": ["l2"]})
    out = job(tmp_path, "cpu")
    assert job.finished(tmp_path) == out
    # the run retrained (here: other weights under the same name and settings) -> recomputed
    state = torch.load(tmp_path / "w.pt", weights_only=False)
    state["model_state"] = {k: 2 * v for k, v in state["model_state"].items()}
    torch.save(state, tmp_path / "w.pt")
    assert job.finished(tmp_path) is None
    again = rethink.runner.run_jobs([job], tmp_path, device="cpu", progress=False)[0]
    assert again["values"]["l2"] == pytest.approx(2 * out["values"]["l2"], rel=1e-5)
    assert r.status == "completed"
    # a folder without the weights (e.g. committed results): the cache is the only record and is used
    (tmp_path / "w.pt").unlink()
    assert job.finished(tmp_path) == again
    assert MeasureJob.make("w", {"measures": ["margin"]}).finished(tmp_path) is None  # other settings: none


@pytest.mark.slow
def test_zoo_through_submitit_local_executor(tmp_path):
    submitit = pytest.importorskip("submitit", reason="submitit is not installed (pip install submitit)")
    ex = submitit.LocalExecutor(folder=str(tmp_path / "logs"))
    ex.update_parameters(timeout_min=10)
    grid = {"lr": [0.01, 0.05], "model": ["mlp1x128"]}
    rep = rethink.zoo(grid, seeds=(0,), out_dir=tmp_path / "z", executor=ex, device="cpu", progress=False,
                      measure_settings={"measures": ["l2"]}, **TINY)
    assert [r.status for r in rep.results] == ["completed", "completed"]
    single = rethink.fit_random("mlp1x128", lr=0.05, seed=0, device="cpu", progress=False, **TINY)
    assert [h["train_loss"] for h in rep.results[1].history] == pytest.approx(
        [h["train_loss"] for h in single.history], rel=1e-6)
    assert set(rep.measures) == {r.run_name for r in rep.results}


def test_an_all_measures_cache_of_an_older_rethink_is_recomputed(tmp_path):
    import json

    rethink.fit_random(max_epochs=1, train_size=100, test_size=50, out_dir=tmp_path, run_name="w", device="cpu",
                       progress=False)
    job = MeasureJob.make("w", {"measures": "all", "samples": 1, "max_examples": 64, "sharpness_steps": 1})
    path = tmp_path / "w.measures.json"
    job(tmp_path, "cpu")
    assert job.finished(tmp_path) is not None
    d = json.loads(path.read_text())
    del d["values"]["pacbayes_bound"]  # written before that measure existed
    path.write_text(json.dumps(d))
    assert job.finished(tmp_path) is None  # "all" means more now: computed again
    (tmp_path / "w.pt").unlink()
    assert job.finished(tmp_path) is not None  # without the weights the stored record is all there is


def _zoo_convnets():
    from _scripts import load_script

    return load_script("zoo_convnets")


def test_convnet_zoo_script_defines_the_issues_zoo():
    z = _zoo_convnets()
    main = z.specs(z.main_blocks())
    conv = [s for s in main if s.model in rethink.models.CONVOLUTIONAL]
    assert len(main) >= 256 and len(conv) >= 64
    assert len({s.run_name() for s in main}) == len(main)
    assert {s.model for s in conv} >= {"alexnet_small", "nin2x24", "nin4x96"}
    assert all(s.dataset == "fashion_mnist" and s.stop_at_train_acc == 0.99 and s.max_epochs == z.BUDGET
               for s in main)
    assert sorted({s.seed for s in main}) == [0, 1]
    # the pilot: every run is its family's base with at most one hyper-parameter changed
    pilot = z.specs(z.pilot_blocks())
    for s in pilot:
        base = z.BASE[z.family(s.model)]
        d = s.to_dict()
        changed = [k for k, v in base.items() if d[k] != v]
        assert len(changed) <= 1, (s.run_name(), changed)
    assert len(pilot) == sum(2 * (1 + sum(lv != z.BASE[f][key] for key, levels in hp.values() for lv in levels))
                             for f, hp in z.PILOT_LEVELS.items())


def test_convnet_zoo_main_families_and_models_select_the_grid(monkeypatch):
    z = _zoo_convnets()
    seen = {}

    def fake_train(blocks, out_dir, devices, measures=False, device="cpu", each=False, seeds=None):
        seen.update(blocks=blocks, devices=devices, device=device, measures=measures, each=each, seeds=seeds)
        return []

    monkeypatch.setattr(z, "train", fake_train)
    z.main(["main", "--families", "nin", "alexnet", "--models", "nin2x24", "nin4x24", "--device", "cuda",
            "--workers", "2", "--measures"])
    assert [f for f, _, _ in seen["blocks"]] == ["nin"]  # alexnet has none of the models named
    assert seen["blocks"][0][1]["model"] == ["nin2x24", "nin4x24"]
    assert seen["devices"] == ["cuda", "cuda"] and seen["device"] == "cuda" and seen["measures"]
    picked = {s.run_name() for s in z.specs(seen["blocks"])}
    whole = [s for s in z.specs(z.main_blocks()) if s.model in ("nin2x24", "nin4x24")]
    assert picked == {s.run_name() for s in whole} and len(picked) == 16
    assert not seen["each"] and list(seen["seeds"]) == list(z.SEEDS)
    z.main(["main", "--families", "alexnet", "mlp", "--each", "--seeds", "1"])
    assert [f for f, _, _ in seen["blocks"]] == ["alexnet", "mlp"] and seen["devices"] is None and seen["each"]
    assert seen["seeds"] == [1]
    with pytest.raises(SystemExit):
        z.main(["main", "--families", "mlp", "--models", "nin2x24"])


def test_convnet_zoo_one_run_at_a_time_covers_the_grid_cheapest_first(monkeypatch):
    z = _zoo_convnets()
    blocks = [b for b in z.main_blocks() if b[0] == "nin"]
    runs = z.one_by_one(blocks)
    names = [s.run_name() for _, grid, fixed, seeds in runs for s in zoo_specs(grid, seeds, **{**z.SETTINGS, **fixed})]
    assert len(names) == len(runs) == len(set(names)) and set(names) == {s.run_name() for s in z.specs(blocks)}
    cells = [{k: v[0] for k, v in grid.items()} | {"seed": seeds[0]} for _, grid, _, seeds in runs]
    keys = [(c["train_size"], c["corruption"] != "none", c["seed"]) for c in cells]
    assert keys == sorted(keys) and keys[0] == (min(z.MAIN["nin"]["train_size"]), False, 0)
    calls = []
    monkeypatch.setattr(z.rethink, "zoo", lambda grid, seeds, out_dir, **kw: calls.append((grid, seeds))
                        or ZooReport(results=[]))
    z.train(blocks, None, None, measures=True, each=True)
    assert calls == [(grid, seeds) for _, grid, _, seeds in runs]
    calls.clear()
    z.train(blocks, None, None, measures=True)
    assert calls == [(blocks[0][1], z.SEEDS)]
    # one seed of the grid: exactly its runs, so two processes can split the grid by seed
    calls.clear()
    z.train(blocks, None, None, measures=True, each=True, seeds=(1,))
    assert calls == [(grid, seeds) for _, grid, _, seeds in runs if seeds == (1,)] and len(calls) == len(runs) // 2
    calls.clear()
    z.train(blocks, None, None, measures=True, seeds=(1,))
    assert calls == [(blocks[0][1], (1,))]
    with pytest.raises(ValueError, match=r"seeds \[7\]"):
        z.train(blocks, None, None, seeds=(7,))
    with pytest.raises(SystemExit):
        z.main(["main", "--seeds", "7"])


def test_convnet_zoo_pilot_report_against_seed_noise():
    # fake pilot results: label noise adds 0.2 to the gap, seed 1 adds 0.01 (seed sd 0.01 / sqrt 2)
    z = _zoo_convnets()
    results = []
    for s in z.specs(z.pilot_blocks()):
        gap = 0.1 + (0.2 if s.corruption != "none" else 0.0) + 0.01 * s.seed
        s = s.resolved()  # as result files record it: corruption and subset seeds filled from the seed
        fit = None if (z.family(s.model) == "nin" and s.augment) else 1  # NiN with augmentation misses the rule
        results.append(rethink.Result(history=[{"epoch": 1, "train_acc": 1.0, "test_acc": 1 - gap}], epochs_to_fit=fit,
                                      config={**s.to_dict(), "run_name": s.run_name()}))
    table = z.pilot_report(results)
    rows = [line.split(" | ") for line in table.splitlines() if line.startswith("| nin |")]
    by_hp = {r[1]: r for r in rows}
    assert by_hp["label_noise"][3:7] == ["0.105 / 0.305", "+0.200", "+28.3", "2/2 / 2/2 |"]
    assert by_hp["augment"][6] == "2/2 / 0/2 |"  # the level whose runs missed the rule says so
    assert by_hp["width"][4] == "+0.000" and by_hp["lr"][4] == "+0.000"
    assert "| nin | (seed sd of the gap) | | 0.0071 over 15 configurations | | | |" in table
    assert "nin 28/30" in table


def _fake_pilot(z, skip=lambda s: False, extra=lambda s: 0.0):
    # label noise adds 0.2 to the gap, seed 1 adds 0.01 (and ``extra``); every run at the rule
    results = []
    for s in z.specs(z.pilot_blocks()):
        if skip(s):
            continue
        gap = 0.1 + (0.2 if s.corruption != "none" else 0.0) + 0.01 * s.seed + extra(s)
        s = s.resolved()
        results.append(rethink.Result(history=[{"epoch": 1, "train_acc": 1.0, "test_acc": 1 - gap}], epochs_to_fit=1,
                                      config={**s.to_dict(), "run_name": s.run_name()}))
    return results


def test_convnet_zoo_pilot_names_levels_not_run_and_the_main_grid_says_what_its_pilot_did_not_support():
    from _scripts import load_script

    z = _zoo_convnets()
    # NiN's pilot without its deeper and shallower networks and without label noise
    results = _fake_pilot(z, skip=lambda s: s.model in ("nin2x48", "nin4x48")
                          or (s.model.startswith("nin") and s.corruption != "none"))
    # ... and one of them still training (its latest state stored): counted nowhere, as if not run
    s = next(s for s in z.specs(z.pilot_blocks()) if s.model == "nin2x48").resolved()
    results.append(rethink.Result(history=[{"epoch": 1, "train_acc": 0.5, "test_acc": 0.4}], status="running",
                                  config={**s.to_dict(), "run_name": s.run_name()}))
    assert "nin 24/24" in z.pilot_report(results)
    rows = {r[1]: r for r in (line.split(" | ") for line in z.pilot_report(results).splitlines()
                              if line.startswith("| nin |"))}
    assert rows["depth"][3:7] == ["not run / not run", "-", "-", "0/0 / 0/0 |"]
    assert rows["label_noise"][3:6] == ["0.105 / not run", "-", "-"]
    assert "nan" not in z.pilot_report(results)
    support = z.main_grid_support(results)
    assert support["nin"]["corruption"]["not_run"] == [("label_noise", pytest.approx(float("nan"), nan_ok=True))]
    assert [hp for hp, _ in support["nin"]["model"]["not_run"]] == ["depth"]
    assert [hp for hp, _ in support["mlp"]["corruption"]["moved"]] == ["label_noise"]
    assert support["mlp"]["corruption"]["moved"][0][1] == pytest.approx(0.2 / (0.01 / 2 ** 0.5))
    # width moves no fake gap: within the noise for every family
    assert [hp for hp, _ in support["nin"]["model"]["within"]] == ["width"]
    text = load_script("study_generalization").main_grid_sentence(z, results, 280)
    assert "nin's label_noise (not run in its pilot; beyond the seed noise in the pilots of mlp and alexnet)" in text
    assert "nin's depth (not run in its pilot)" in text and "nin's width (within the seed noise in its pilot)" in text
    assert "corruption in {none, labels:0.1, labels:0.2} (label_noise +28.3)" in text
    assert "alexnet's model" not in text  # one level: not varied


def test_convnet_zoo_main_effects_by_hand():
    z = _zoo_convnets()
    # the main grid with a gap that label noise raises by 0.1 per 0.1 of noise, width lowers by
    # 0.01 per doubling, and seed 1 raises by 0.02 (the seed sd: 0.02 / sqrt(2)); one NiN run
    # missed the rule and a whole NiN configuration (nin4x96, noisy, 2000 images) is absent
    results = []
    for s in z.specs(z.main_blocks()):
        if (s.model, s.corruption, s.train_size) == ("nin4x96", "labels:0.2", 2000):
            continue
        noise = 0.0 if s.corruption == "none" else float(s.corruption.split(":")[1])
        width = int(s.model.split("x")[1]) if s.model.startswith(("mlp", "nin")) else 1
        gap = 0.1 + noise - 0.01 * math.log2(width) + 0.02 * s.seed
        fit = not (s.model == "nin2x24" and s.corruption == "none" and s.train_size == 1000 and s.seed == 1)
        s = s.resolved()
        results.append(rethink.Result(history=[{"epoch": 1, "train_acc": 1.0, "test_acc": 1 - gap}],
                                      epochs_to_fit=1 if fit else None,
                                      config={**s.to_dict(), "run_name": s.run_name()}))
    eff = z.main_effects(results)
    sd = 0.02 / 2 ** 0.5
    mlp = eff["mlp"]
    assert mlp["sd"] == pytest.approx(sd) and mlp["configs"] == 108
    assert mlp["rows"]["width"]["levels"] == [32, 128, 512, 2048]
    assert mlp["rows"]["width"]["first_last"] == pytest.approx(-0.06)  # 2048 is 6 doublings above 32
    assert mlp["rows"]["width"]["ratio"] == pytest.approx(0.06 / sd)
    assert mlp["rows"]["depth"]["spread"] == pytest.approx(0.0, abs=1e-12)
    assert mlp["rows"]["corruption"]["levels"] == ["none", "labels:0.1", "labels:0.2"]
    assert mlp["rows"]["corruption"]["means"][2] - mlp["rows"]["corruption"]["means"][0] == pytest.approx(0.2)
    assert mlp["rows"]["train_size"]["groups"] == 36 and mlp["rows"]["train_size"]["runs"] == 72
    assert mlp["rows"]["width"]["se"] == pytest.approx(sd * (2 / 54) ** 0.5)
    assert "model" not in eff["alexnet"]["rows"] and "width" not in eff["alexnet"]["rows"]
    assert eff["alexnet"]["rows"]["corruption"]["first_last"] == pytest.approx(0.3)
    nin = eff["nin"]
    # the absent configuration leaves 7 of 8 matched groups for every factor; the configuration
    # whose seed-1 run missed the rule keeps its seed-0 run alone, so its gap reads 0.01 low
    # (seed 1 adds 0.02), which lowers the mean of width 24 and of no noise by 0.01 / 7
    assert [nin["rows"][f]["groups"] for f in ("width", "depth", "corruption", "train_size")] == [7, 7, 7, 7]
    assert nin["rows"]["width"]["first_last"] == pytest.approx(-0.02 + 0.01 / 7)
    assert nin["rows"]["corruption"]["spread"] == pytest.approx(0.2 + 0.01 / 7)
    assert nin["rows"]["width"]["runs"] == 13  # 7 configurations of width 24, one with one run
    table = z.main_effects_report(results)
    assert "| nin | (seed sd of the gap) | | 0.0141 over 14 configurations |" in table
    assert "nan" not in table
    from _scripts import load_script

    text = load_script("study_generalization").main_effects_paragraph(z, results)
    assert ("Within it: mlp's depth (0.0), mlp's train_size (0.0), alexnet's train_size (0.0), nin's depth (0.1), "
            "nin's train_size (0.1); none of those is beyond 3 standard errors") in text
    assert "alexnet's corruption (" in text.split("Within it")[0]
    assert "Not varied in the main grid (one value per family; the pilot table gives what each did there): lr, " \
           "batch_size, weight_decay, dropout, augment." in text


def test_convnet_zoo_pilot_selection_keeps_the_families_base_and_named_blocks():
    z = _zoo_convnets()
    blocks = z.pilot_selection(["nin"], ["depth", "label_noise"])
    assert [b[0] for b in blocks] == ["nin/base", "nin/depth", "nin/label_noise"]
    assert blocks[1][1] == {"model": ["nin2x48", "nin4x48"]}
    assert [b[0] for b in z.pilot_selection(["alexnet", "nin"])][:2] == ["alexnet/base", "alexnet/lr"]
    assert len(z.specs(z.pilot_selection(list(z.BASE)))) == len(z.specs(z.pilot_blocks()))
    with pytest.raises(ValueError, match=r"\['widht'\]: not a pilot hyper-parameter"):
        z.pilot_selection(["nin"], ["widht"])
    with pytest.raises(SystemExit):  # the command line says so before anything trains
        z.main(["pilot", "--families", "nin", "--hyperparameters", "widht"])


def test_convnet_zoo_macs_by_hand():
    z = _zoo_convnets()
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(2 * 4 * 4, 10))
    # conv: 2 x 4 x 4 outputs x (1 x 3 x 3) each; linear: 10 outputs x 32 inputs
    assert z.macs(net, (1, 4, 4)) == 2 * 16 * 9 + 10 * 32


def test_jiang_projection_is_linear_in_the_measured_costs():
    z = _zoo_convnets()
    run = z.cost_runs()["nin"]

    def hours(lines):
        return [float(line.split(" epochs per model: ")[1].split(" CPU")[0].replace(",", "")) for line in lines[1:]]

    base = hours(z.project_jiang(10.0, {}, run))
    assert hours(z.project_jiang(20.0, {}, run)) == pytest.approx([2 * h for h in base], rel=1e-3)
    assert [b / e for b, e in zip(base, z.JIANG_EPOCHS)] == pytest.approx([base[0] / z.JIANG_EPOCHS[0]] * 3, rel=1e-3)
    # the measures add the same hours at every epoch count: JIANG_RUNS x their MAC-scaled seconds,
    # a full-data group scaled to the grid's training-set size, a subsampled one to 2,048 examples
    ratio = (sum(z.macs(rethink.models.NiN(z.JIANG_SHAPE, 10, width=w, depth=d), z.JIANG_SHAPE)
                 for d, w in z.JIANG_MODELS) / len(z.JIANG_MODELS) / z.macs(run["model"]))
    n = run["train_size"]
    for groups, seconds in (({"l2": 36.0}, 36.0), ({"pacbayes_bound": 36.0}, 36.0 * z.JIANG_IMAGES / n),
                            ({"sharpness": 36.0}, 36.0 * 2048 / min(n, 2048))):
        added = [a - b for a, b in zip(hours(z.project_jiang(10.0, groups, run)), base)]
        assert added == pytest.approx([z.JIANG_RUNS * seconds * ratio / 3600] * 3, rel=1e-3, abs=1.0)


def test_measure_seconds_by_what_each_group_reads():
    z = _zoo_convnets()
    groups = {"margin": 1.0, "pacbayes": 2.0, "spectral": 3.0}
    assert z.measure_seconds(groups, 1000, 1000) == pytest.approx(6.0)
    # 4,000 examples: margin reads all (x4), PAC-Bayes its 2,048-example subsample (x2.048), spectral none
    assert z.measure_seconds(groups, 1000, 4000) == pytest.approx(4.0 + 2.0 * 2.048 + 3.0)


def test_convnet_zoo_main_grid_sentence_names_what_moved_the_gap_in_the_pilot_but_is_held_fixed():
    from _scripts import load_script

    z = _zoo_convnets()
    sentence = load_script("study_generalization").main_grid_sentence
    assert "Held at one value" not in sentence(z, _fake_pilot(z), 280)
    # NiN's larger learning rate adds 0.1 to its gap: 0.1 / 0.0071 seed sd = +14.1, and the main grid holds lr fixed
    moved = _fake_pilot(z, extra=lambda s: 0.1 if s.model.startswith("nin") and s.lr == 0.05 else 0.0)
    text = sentence(z, moved, 280)
    assert text.endswith("Held at one value in the main grid, though the family's own pilot moved the gap by at "
                         "least 1.5 seed standard deviations with every run at the rule: nin's lr (+14.1).")


def test_convnet_zoo_probe_sentence_reports_each_finished_run_at_the_rule_or_off_it():
    from _scripts import load_script

    z = _zoo_convnets()
    runs = []
    main = z.specs(z.main_blocks())
    for s, fit, acc in ((main[-1], None, 0.942), (main[-2], 33, 0.992)):
        s = s.replace(lr=z.PROBE["level"]).resolved()
        runs.append(rethink.Result(history=[{"epoch": e, "train_acc": acc, "test_acc": 0.8} for e in range(1, 4)],
                                   epochs_to_fit=fit, config={**s.to_dict(), "run_name": s.run_name()}))
    text = load_script("study_generalization").probe_sentence(z.PROBE, runs, 200, "here")
    assert text.startswith("Tried and dropped as a factor of nin's main grid: lr = 0.005 (the probe's 2 finished runs")
    assert "94.2% training accuracy after 3 of 200 epochs, below the rule" in text
    assert "reached the rule in 33 epochs" in text and "1 of 2 missed the rule" in text
    # a run at another level in the probe's folder is refused, not reported as the probe's
    s = main[0].resolved()
    runs.append(rethink.Result(history=[{"epoch": 1, "train_acc": 1.0, "test_acc": 0.8}], epochs_to_fit=1,
                               config={**s.to_dict(), "run_name": s.run_name()}))
    with pytest.raises(ValueError, match=s.run_name() + ".*lr = 0.005"):
        load_script("study_generalization").probe_sentence(z.PROBE, runs, 200, "here")
