"""Where the data stage's inputs come from: photo folders, the bundled photos, teacher folders.

This module only *lists* inputs and pairs them up by name; decoding and validation of the
pixels happen in the dataset builder (one place that records every skip with its reason).
Folders are opened read-only; nothing here writes anywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from mobile_pipeline.data.images import IMAGE_EXTENSIONS, list_folder

# Colour photographs that ship inside the scikit-image wheel (no pooch download needed).
# Grey images (camera, coins, moon, ...) are not colour photos; motorcycle_right is the
# stereo twin of motorcycle_left and would leak across the split; retina and the
# immunohistochemistry slide are microscopy, not scenes a phone camera sees; the Hubble deep
# field is ~90% black sky (mean value 19/255) and teaches nothing about a cartoon look.
BUNDLED_PHOTOS: tuple[str, ...] = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
)

STYLED_SUFFIX = "_styled"

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class DataError(ValueError):
    """A data-stage input problem the user must fix; the message names the folder or field."""


@dataclass(frozen=True)
class Skip:
    """One input file that was left out, and why (a line of ``report.json``)."""

    file: str
    role: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"file": self.file, "role": self.role, "reason": self.reason}


@dataclass
class Listing:
    """Image files of one folder plus the non-image files reported as skipped."""

    folder: Path
    images: list[Path] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)


def bundled_photo_dir() -> Path:
    """The folder of scikit-image's bundled sample images."""
    import skimage.data

    return Path(skimage.data.__file__).resolve().parent


def safe_id(stem: str) -> str:
    """A file-system-safe dataset id from a file stem (``"My photo (2)"`` -> ``"My_photo_2_"``)."""
    cleaned = _UNSAFE.sub("_", stem).strip(".") or "image"
    return cleaned[:120]


def check_folder(folder: Path | None, field_name: str) -> Path:
    """Resolve a configured folder; a missing or non-directory path is a clear error."""
    if folder is None:
        raise DataError(f"{field_name} is not set")
    path = Path(folder).expanduser()
    if not path.exists():
        raise DataError(f"{field_name}: folder {path} does not exist")
    if not path.is_dir():
        raise DataError(f"{field_name}: {path} is not a folder")
    return path.resolve()


def list_images(folder: Path, role: str) -> Listing:
    """Image files (by extension) in ``folder``; other files become ``Skip`` entries."""
    images, others = list_folder(folder)
    exts = "/".join(IMAGE_EXTENSIONS)
    skipped = [Skip(str(p), role, f"not an image file name (expected {exts})") for p in others]
    return Listing(folder=folder, images=images, skipped=skipped)


def photo_listing(source: Path | None) -> Listing:
    """The photos to use: ``source`` or, when it is ``None``, the bundled colour photos."""
    if source is None:
        folder = bundled_photo_dir()
        listing = Listing(folder=folder)
        for name in BUNDLED_PHOTOS:
            path = folder / name
            if path.is_file():
                listing.images.append(path)
            else:
                listing.skipped.append(Skip(str(path), "photo", "bundled photo missing from this scikit-image install"))
        return listing
    return list_images(check_folder(source, "data.source"), "photo")


def partner_index(folder: Path, role: str) -> tuple[dict[str, Path], list[Skip]]:
    """Map stem -> image file for a paired-target folder; ambiguous stems are skipped."""
    listing = list_images(folder, role)
    index: dict[str, Path] = {}
    skipped = list(listing.skipped)
    for path in listing.images:
        if path.stem in index:
            skipped.append(Skip(str(path), role, f"ambiguous: {index[path.stem].name} has the same stem"))
            continue
        index[path.stem] = path
    return index, skipped


@dataclass(frozen=True)
class KeyframePair:
    """A keyframe ``NAME.ext`` and its stylized version ``NAME_styled.ext``."""

    name: str
    frame: Path
    styled: Path


def keyframe_pairs(folder: Path) -> tuple[list[KeyframePair], list[Skip]]:
    """Pair ``NAME.*`` with ``NAME_styled.*`` in a keyframes folder."""
    index, skipped = partner_index(folder, "keyframe")
    pairs: list[KeyframePair] = []
    for stem, path in sorted(index.items()):
        if stem.endswith(STYLED_SUFFIX):
            if stem[: -len(STYLED_SUFFIX)] not in index:
                skipped.append(Skip(str(path), "keyframe", f"no matching keyframe {stem[: -len(STYLED_SUFFIX)]}.*"))
            continue
        styled = index.get(stem + STYLED_SUFFIX)
        if styled is None:
            skipped.append(Skip(str(path), "keyframe", f"no stylized partner {stem}{STYLED_SUFFIX}.*"))
            continue
        pairs.append(KeyframePair(name=stem, frame=path, styled=styled))
    return pairs, skipped
