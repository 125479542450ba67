import json
import subprocess
import sys
from pathlib import Path

import pytest

import rethink
from rethink import RunSpec, cli

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("argv", [["--help"], ["fit-random", "--help"], ["sweep", "--help"],
                                  ["randomization-test", "--help"], ["measures", "--help"], ["zoo", "--help"],
                                  ["memorization", "--help"]])
def test_help(argv, capsys):
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "usage: rethink" in out


def test_python_m_rethink_help():
    proc = subprocess.run([sys.executable, "-m", "rethink", "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "fit-random" in proc.stdout and "sweep" in proc.stdout


def test_fit_random_writes_result_and_prints_table(tmp_path, capsys):
    code = cli.main(["fit-random", "--model", "mlp1x512", "--dataset", "digits", "--corruption", "labels:0.5",
                     "--max-epochs", "2", "--device", "cpu", "--out-dir", str(tmp_path), "--seed", "3"])
    assert code == 0
    captured = capsys.readouterr()
    name = RunSpec(corruption="labels:0.5", max_epochs=2, seed=3).run_name()
    assert name.startswith("mlp1x512_digits_labels-0.5_wd0_noaug_s3-")
    assert f"| {name} | completed | 2 |" in captured.out
    assert "epoch" not in captured.err  # no progress bar into a stream that is not a terminal
    d = json.loads((tmp_path / f"{name}.json").read_text())
    assert d["status"] == "completed" and len(d["history"]) == 2 and d["config"]["seed"] == 3


def test_sweep_and_rerun(tmp_path, capsys):
    argv = ["sweep", "--models", "mlp1x512", "--corruptions", "none", "random_labels", "--seeds", "0",
            "--max-epochs", "1", "--device", "cpu", "--out-dir", str(tmp_path), "--no-progress"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("| completed |") == 2 and "2 runs, 0 failed" in out
    mtimes = {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    assert cli.main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == mtimes  # nothing rerun


@pytest.mark.parametrize("argv, match", [
    (["fit-random", "--model", "vgg"], "rethink: error: unknown model 'vgg'; choose one of: mlp1x512"),
    (["fit-random", "--lr", "-1", "--device", "cpu"], "rethink: error: lr must be"),
    (["fit-random", "--batch-size", "x"], "rethink: error: fit-random: argument --batch-size: not an integer: 'x'"),
    (["sweep", "--models", "mlp1x512", "nope"], "rethink: error: unknown model 'nope'"),
    (["no-such-command"], "rethink: error: argument command: invalid choice"),
])
def test_errors_are_one_line_exit_1(argv, match, capsys):
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(match), err


def test_help_lists_the_models(capsys):
    assert cli.main(["randomization-test", "--help"]) == 0
    out = capsys.readouterr().out
    for name in ("mlp1x512", "mlp3x512", "alexnet_small", "inception_small", "inception_small_nobn", "resnet18"):
        assert name in out
    for flag in ("--crop", "--augment", "--weight-decay", "--dropout", "--epochs-after-fit", "--seeds",
                 "--stop-at-train-acc", "--normalize", "--regularized-random"):
        assert flag in out


def test_zoo_command_with_a_grid(tmp_path, capsys):
    argv = ["zoo", "--grid", "lr=0.01,0.05", "model=mlp1x128", "--seeds", "0", "--dataset", "digits",
            "--max-epochs", "1", "--train-size", "100", "--test-size", "100", "--out-dir", str(tmp_path), "--device", "cpu",
            "--no-progress", "--no-measures"]
    assert cli.main(argv) == 0
    assert "zoo: 2 runs" in capsys.readouterr().out
    assert len(list(tmp_path.glob("*.json"))) == 2
    assert cli.main(["zoo", "--grid", "learning_rate=1", "--out-dir", str(tmp_path / "x")]) == 1
    assert "is not SETTING=v1,v2" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_list_flags_take_spaces_or_commas(tmp_path):
    for seeds in (["0", "1"], ["0,1"]):
        out = tmp_path / "-".join(seeds)
        assert cli.main(["sweep", "--corruptions", "none", "--seeds", *seeds, "--max-epochs", "1", "--device", "cpu",
                         "--out-dir", str(out), "--no-progress"]) == 0
        assert len(list(out.glob("*.json"))) == 2


def test_measures_command(tmp_path, capsys):
    assert cli.main(["sweep", "--corruptions", "none", "random_labels", "--max-epochs", "2", "--train-size", "200",
                     "--device", "cpu", "--out-dir", str(tmp_path), "--no-progress"]) == 0
    capsys.readouterr()
    assert cli.main(["measures", str(tmp_path), "--measures", "l2", "margin", "--device", "cpu", "--no-progress",
                     "--out-dir", str(tmp_path / "study")]) == 0
    out = capsys.readouterr()
    assert "measured 2 runs (0 skipped)" in out.err
    assert "margin" in out.out and (tmp_path / "study" / "measures.md").exists()
    assert len(list(tmp_path.glob("*.measures.json"))) == 2


def test_bad_values_fail_before_anything_is_computed_or_written(tmp_path, capsys):
    rethink.fit_random(max_epochs=1, train_size=100, test_size=50, out_dir=tmp_path, device="cpu", progress=False)
    (tmp_path / "file").write_text("x")
    before = sorted(p.name for p in tmp_path.iterdir())
    for argv, match in (
        (["measures", str(tmp_path), "--measures", "l2", "--device", "cpu", "--no-progress", "--out-dir",
          str(tmp_path / "file")], "is a file"),
        (["measures", str(tmp_path), "--samples", "0", "--device", "cpu", "--no-progress"], "samples must be"),
        (["memorization", "--train-pool", "0", "--out-dir", str(tmp_path / "m"), "--device", "cpu"],
         "train_pool must be an integer >= 2, got 0"),
    ):
        assert cli.main(argv) == 1, argv
        assert match in capsys.readouterr().err, argv
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no cache, no folder, no run


def test_progress_bars_only_on_a_terminal(monkeypatch):
    import io

    from rethink._io import progress_bar

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert progress_bar(True, total=3) is None  # a log file: no bar
    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    assert progress_bar(False, total=3) is None
    bar = progress_bar(True, total=3, desc="runs")
    bar.update(1)
    bar.close()
    assert "runs" in term.getvalue()


def test_only_rank_zero_speaks_under_torchrun(monkeypatch, capsys):
    monkeypatch.setenv("RANK", "1")
    assert cli.main(["fit-random", "--model", "nope"]) == 1  # fails on every rank, reported once (by rank 0)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    monkeypatch.setenv("RANK", "0")
    assert cli.main(["fit-random", "--model", "nope"]) == 1
    assert "unknown model 'nope'" in capsys.readouterr().err
