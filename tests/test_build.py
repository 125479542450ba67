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
