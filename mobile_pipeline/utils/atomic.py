"""Atomic file output: write to a temporary name in the same folder, then rename.

A killed process (SIGINT or SIGKILL) therefore never leaves a half-written artifact under
its final name; a rerun sees either the complete file or nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _temp_sibling(path: Path, is_dir: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}."
    if is_dir:
        return Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=path.parent))
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    return Path(name)


def is_temporary(path: Path) -> bool:
    """True for the temporaries :func:`atomic_output` makes (``.<name>.<random>.tmp[.suffix]``)."""
    name = Path(path).name
    return name.startswith(".") and ".tmp" in name


def remove_temporaries(root: str | os.PathLike[str]) -> list[Path]:
    """Delete temporaries a killed writer left under ``root`` (files and folders); returns them.

    Only for folders that no other process is writing into (a resumed stage's own folder).
    """
    root = Path(root)
    if not root.is_dir():
        return []
    stale = sorted((p for p in root.rglob(".*") if is_temporary(p)), key=lambda p: len(p.parts))
    removed: list[Path] = []
    for path in stale:
        if any(parent in removed for parent in path.parents):
            continue  # inside a temporary folder already removed
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it is renamed to ``path``.

    Use it when a library insists on writing the file itself (``onnx.save``,
    ``mlmodel.save``). For a directory output pass ``is_dir=True``: the temporary directory
    replaces ``path`` as a whole. On any exception the temporary is removed and ``path`` is
    left as it was.

    The temporary keeps the final suffix so that libraries that dispatch on it still work.
    """
    final = Path(path)
    tmp = _temp_sibling(final, is_dir=is_dir)
    if not is_dir:
        tmp.unlink()  # let the writer create it; some refuse to overwrite
    try:
        yield tmp
        if is_dir:
            if final.exists():
                old = _temp_sibling(final, is_dir=True)
                old.rmdir()
                final.rename(old)
                tmp.rename(final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                tmp.rename(final)
        else:
            if not tmp.exists():
                raise FileNotFoundError(f"writer produced no file at {tmp} for {final}")
            _fsync_file(tmp)
            os.replace(tmp, final)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically and return the path."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any, indent: int = 2) -> Path:
    """Write ``obj`` as JSON (sorted keys, so equal objects give equal bytes)."""
    text = json.dumps(obj, indent=indent, sort_keys=True, default=_json_default) + "\n"
    return atomic_write_text(path, text)


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def sha256_file(path: str | os.PathLike[str], chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks so large artifacts do not fill memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of a byte string."""
    return hashlib.sha256(data).hexdigest()
