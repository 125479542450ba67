"""Atomic file writes: a result on disk is either the old one or the new one, never half.

Files get the mode a new file gets under the user's umask (as ``open(path, "w")`` would
give), not the 0600 of the temporary file they are written through.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_file_mode() -> int:
    """The permission bits a new file gets under the current umask (e.g. 0644 under 022)."""
    return 0o666 & ~_umask()


def check_writable(folder: str | os.PathLike, what: str = "folder") -> Path:
    """Create ``folder`` if needed and check that files can be written in it (a probe file is
    written and removed), before any work whose results would go there.

    Raises:
        ValueError: ``folder`` is a file or not a path.
        PermissionError: the folder cannot be created or written (the message names it).
    """
    from ._check import check_path

    folder = check_path(what, folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{what} {str(folder)!r} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".rethink-write-check.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise PermissionError(f"{what} {str(folder)!r} cannot be written ({e.strerror or e}): results could not be "
                              f"saved; choose another folder") from None
    return folder


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, new_file_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=True) + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` through a temporary file and a rename."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def file_digest(path: str | os.PathLike) -> str:
    """The sha256 (hex) of a file's bytes: the identity of what a cache was computed from.

    Raises FileNotFoundError naming the file when it is missing."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


REUSE_NOTE = "already done with the same settings, reused (rerun=True / --rerun trains anew)"


def note(message: str) -> None:
    """One line on stderr, ``rethink: <message>``."""
    import sys

    print(f"rethink: {message}", file=sys.stderr)


def progress_bar(enabled: bool, **kwargs: Any):
    """A tqdm bar on stderr, or None: only when ``enabled`` and stderr is a terminal (or a
    notebook's), so progress never fills a redirected log file. ``kwargs`` go to tqdm."""
    import sys

    if not enabled:
        return None
    isatty = getattr(sys.stderr, "isatty", None)
    if not ((isatty is not None and isatty()) or "ipykernel" in sys.modules):
        return None
    from tqdm.auto import tqdm

    return tqdm(file=sys.stderr, **kwargs)
