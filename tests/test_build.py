import torch

import rethink


def test_build_info_fields():
    info = rethink.build_info()
    assert info["torch"] == torch.__version__
    assert info["cuda"] == (torch.version.cuda if info["cuda_kernels"] else None)
    assert isinstance(info["cuda_kernels"], bool)
    assert isinstance(info["cuda_archs"], list)
    assert all(isinstance(a, str) for a in info["cuda_archs"])
    if info["cuda_kernels"]:
        assert info["cuda_archs"], "a CUDA build must record its architectures"


def test_version_mismatch_is_an_import_error(monkeypatch):
    import importlib

    import rethink._build as b

    real = b._C.build_info

    def fake():
        d = dict(real())
        d["torch"] = "0.0.1"
        return d

    monkeypatch.setattr(b._C, "build_info", fake)
    try:
        importlib.reload(b)
    except ImportError as e:
        assert "built against torch 0.0.1" in str(e) and "pip install --no-build-isolation" in str(e)
    else:
        raise AssertionError("a torch version mismatch must raise ImportError")
    finally:
        monkeypatch.setattr(b._C, "build_info", real)
        importlib.reload(b)


def test_source_folder_shadowing_an_install_is_named(tmp_path):
    """`import rethink` from a checkout without a build, next to a non-editable install, says
    that the folder shadows the install (rebuilding would not help)."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    src = tmp_path / "checkout"
    shutil.copytree(Path(rethink.__file__).parent, src / "rethink", ignore=shutil.ignore_patterns("_C*.so", "__pycache__"))
    site = tmp_path / "site"
    (site / "rethink").mkdir(parents=True)
    (site / "rethink" / "__init__.py").write_text("")
    info = site / "rethink-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: rethink\nVersion: 0.1.0\n")
    (info / "RECORD").write_text("rethink/__init__.py,,\n")
    # -S: no site processing, so the editable install's import hook of this environment is not
    # loaded; torch and numpy come from its site-packages through PYTHONPATH, after the "install"
    packages = Path(torch.__file__).resolve().parents[1]
    env = {**__import__("os").environ, "PYTHONPATH": f"{site}:{packages}"}
    proc = subprocess.run([sys.executable, "-S", "-c", "import rethink"], cwd=src, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode != 0
    assert "shadows the rethink installed in" in proc.stderr and str(site / "rethink") in proc.stderr
