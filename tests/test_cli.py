import json
import subprocess
import sys
from pathlib import Path

import pytest

from rethink import RunSpec, cli

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("argv", [["--help"], ["fit-random", "--help"], ["sweep", "--help"],
                                  ["randomization-test", "--help"], ["measures", "--help"]])
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
    assert "epoch" in captured.err  # the progress bar
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
