"""The dataset manifest (``manifest.json``) and the read side of a built dataset.

The manifest is what later stages and reruns trust: every file with its sha256, byte size,
pixel size and split, the data config and its hash, and a cache key over the inputs'
content. :func:`load_dataset` re-checks those hashes so a dataset edited by hand (or
half-copied) is refused with a clear message instead of training on the wrong pixels.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from mobile_pipeline.data.images import read_png_fast
from mobile_pipeline.data.sources import DataError

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
REPORT_NAME = "report.json"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileEntry(_Model):
    """One file of the dataset, relative to the dataset directory."""

    file: str
    sha256: str
    bytes: int
    width: int
    height: int


class ImageEntry(_Model):
    """A training or validation image: the photo and its teacher target (same size)."""

    id: str
    split: Literal["train", "val"]
    photo: FileEntry
    target: FileEntry
    source: str
    source_sha256: str
    target_source: str | None = None
    region: tuple[int, int, int, int] | None = None  # x0, y0, x1, y1 within the source (keyframes)


class StyleEntry(_Model):
    """An unpaired style image (adversarial training)."""

    id: str
    image: FileEntry
    source: str
    source_sha256: str


class DatasetManifest(_Model):
    """Everything a later stage needs to trust and read the dataset."""

    format_version: int = FORMAT_VERSION
    cache_key: str
    config_hash: str
    config: dict[str, Any]
    teacher: str
    teacher_version: str
    source: str
    images: list[ImageEntry]
    style: list[StyleEntry] = []
    skipped: int = 0
    notes: list[str] = []

    def ids(self, split: Literal["train", "val"]) -> list[str]:
        return [entry.id for entry in self.images if entry.split == split]

    def counts(self) -> dict[str, int]:
        return {
            "train": len(self.ids("train")),
            "val": len(self.ids("val")),
            "style": len(self.style),
            "skipped": self.skipped,
        }

    def files(self) -> list[FileEntry]:
        out: list[FileEntry] = []
        for entry in self.images:
            out += [entry.photo, entry.target]
        out += [entry.image for entry in self.style]
        return out


def read_manifest(root: Path) -> DatasetManifest:
    """Parse ``<root>/manifest.json``; a missing or invalid one is a :class:`DataError`."""
    path = Path(root) / MANIFEST_NAME
    if not path.is_file():
        raise DataError(f"{root} is not a dataset (no {MANIFEST_NAME}); build one with `mobile-pipeline data --out {root}`")
    try:
        return DatasetManifest.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, ValidationError) as err:
        raise DataError(f"{path} is not a valid dataset manifest ({err}); rebuild with `mobile-pipeline data`") from None


def verify_files(root: Path, manifest: DatasetManifest, check_hashes: bool = True) -> list[str]:
    """Problems with the dataset's files (empty list = all present and matching)."""
    from mobile_pipeline.utils.atomic import sha256_file

    problems: list[str] = []
    for entry in manifest.files():
        path = Path(root) / entry.file
        if not path.is_file():
            problems.append(f"{entry.file}: missing")
        elif path.stat().st_size != entry.bytes:
            problems.append(f"{entry.file}: size {path.stat().st_size} != {entry.bytes} in the manifest")
        elif check_hashes and sha256_file(path) != entry.sha256:
            problems.append(f"{entry.file}: sha256 differs from the manifest")
    return problems


class Dataset:
    """A built dataset: ids per split, (photo, target) pairs and style images as uint8 RGB."""

    def __init__(self, root: Path, manifest: DatasetManifest) -> None:
        self.root = Path(root)
        self.manifest = manifest
        self._by_id = {entry.id: entry for entry in manifest.images}

    def ids(self, split: Literal["train", "val"]) -> list[str]:
        """Image ids of a split, in manifest order."""
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        return self.manifest.ids(split)

    def pair(self, image_id: str) -> tuple[np.ndarray, np.ndarray]:
        """``(photo, target)`` of one image, uint8 ``H x W x 3`` RGB of equal size."""
        entry = self._by_id[image_id]
        return read_png_fast(self.root / entry.photo.file), read_png_fast(self.root / entry.target.file)

    def pairs(self, split: Literal["train", "val"]) -> list[tuple[np.ndarray, np.ndarray]]:
        """All ``(photo, target)`` pairs of a split."""
        return [self.pair(image_id) for image_id in self.ids(split)]

    def heldout_pairs(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The pairs quality is measured on: the val split, or the train split when nothing is held out."""
        return self.pairs("val") or self.pairs("train")

    def style_images(self) -> list[np.ndarray]:
        """The unpaired style images (empty when no ``data.style_dir`` was given)."""
        return [read_png_fast(self.root / entry.image.file) for entry in self.manifest.style]

    def __repr__(self) -> str:
        return f"Dataset({self.root}, {self.manifest.counts()})"


def load_dataset(out_dir: str | Path, verify: bool = True) -> Dataset:
    """Open a dataset written by ``build_dataset``.

    Args:
        out_dir: the dataset directory (holds ``manifest.json``).
        verify: re-hash every file against the manifest (fast: PNGs of a few hundred KB).

    Raises:
        DataError: no/invalid manifest, or files missing or changed since the build.
    """
    root = Path(out_dir)
    manifest = read_manifest(root)
    if manifest.format_version != FORMAT_VERSION:
        raise DataError(f"{root}: dataset format {manifest.format_version} != {FORMAT_VERSION}; rebuild with `mobile-pipeline data`")
    problems = verify_files(root, manifest, check_hashes=verify)
    if problems:
        listed = "; ".join(problems[:5]) + (f"; ... ({len(problems)} problems)" if len(problems) > 5 else "")
        raise DataError(f"dataset {root} does not match its manifest: {listed}. Rebuild with `mobile-pipeline data`.")
    return Dataset(root, manifest)
