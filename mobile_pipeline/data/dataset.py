"""Build a dataset directory: validated photos, teacher targets, split, manifest, report.

Layout of ``out_dir``::

    manifest.json        files with sha256, byte and pixel sizes, split; config + cache key
    report.json          every skipped input with its reason; counts
    photos/<id>.png      photos, normalised to RGB and shrunk to data.max_side
    targets/<id>.png     teacher targets, same size as the photo
    style/<id>.png       unpaired style images (only with data.style_dir)

The directory is built under a temporary name and renamed into place
(``atomic_output(is_dir=True)``), so a killed run leaves the previous dataset or nothing,
never a half-written one. The cache key hashes the data config (minus folder paths) and the
*content* of every input file; a rerun with the same key reuses the existing directory after
checking its files against the manifest.

The user's folders are only read.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mobile_pipeline.config import DataConfig, config_hash
from mobile_pipeline.data.images import (
    ImageRejected,
    check_min_side,
    read_image,
    resize_max_side,
    resize_to,
    write_png,
)
from mobile_pipeline.data.manifest import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    REPORT_NAME,
    Dataset,
    DatasetManifest,
    FileEntry,
    ImageEntry,
    StyleEntry,
    load_dataset,
    read_manifest,
    verify_files,
)
from mobile_pipeline.data.sources import (
    DataError,
    KeyframePair,
    Skip,
    check_folder,
    keyframe_pairs,
    list_images,
    partner_index,
    photo_listing,
    safe_id,
)
from mobile_pipeline.data.split import SplitError, region_split, split_ids
from mobile_pipeline.data.teachers import TEACHER_VERSION, cartoon_filter
from mobile_pipeline.utils.atomic import atomic_output, atomic_write_json, sha256_file

__all__ = ["DataError", "Dataset", "DatasetManifest", "build_dataset", "load_dataset"]

# A paired target whose aspect ratio differs by more than this is a different picture or a
# crop, not a resized copy: resizing it would misalign every pixel, so it is skipped.
_ASPECT_TOLERANCE = 0.02


@dataclass
class _Inputs:
    """Everything the build reads, listed before any decoding (for the cache key)."""

    photos: list[Path] = field(default_factory=list)
    partners: dict[str, Path] = field(default_factory=dict)
    keyframes: list[KeyframePair] = field(default_factory=list)
    style: list[Path] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    source_label: str = ""
    hashes: dict[Path, str] = field(default_factory=dict)

    def all_files(self) -> list[tuple[str, Path]]:
        files = [("photo", p) for p in self.photos]
        files += [("target", p) for _, p in sorted(self.partners.items())]
        for pair in self.keyframes:
            files += [("keyframe", pair.frame), ("keyframe_styled", pair.styled)]
        files += [("style", p) for p in self.style]
        return files

    def discard(self, path: Path, role: str, reason: str) -> None:
        """Drop an input that cannot be used (with its partner, if it has one) and report it."""
        self.photos = [p for p in self.photos if p != path]
        self.partners = {stem: p for stem, p in self.partners.items() if p != path and stem != path.stem}
        self.keyframes = [k for k in self.keyframes if path not in (k.frame, k.styled)]
        self.style = [p for p in self.style if p != path]
        self.skipped.append(Skip(str(path), role, reason))


def _collect_inputs(cfg: DataConfig) -> _Inputs:
    inputs = _Inputs()
    if cfg.teacher == "keyframes":
        folder = check_folder(cfg.keyframes_dir, "data.keyframes_dir")
        inputs.keyframes, skipped = keyframe_pairs(folder)
        inputs.skipped += skipped
        inputs.source_label = str(folder)
        if not inputs.keyframes:
            raise DataError(
                f"data.keyframes_dir: no keyframe pairs in {folder}; expected NAME.png next to NAME_styled.png "
                f"(jpg/png/webp){_skip_hint(inputs.skipped)}"
            )
    else:
        listing = photo_listing(cfg.source)
        inputs.photos, inputs.skipped = listing.images, list(listing.skipped)
        inputs.source_label = str(listing.folder) if cfg.source is not None else f"scikit-image bundled photos ({listing.folder})"
        if not inputs.photos:
            raise DataError(
                f"data.source: no images in {listing.folder} (expected .jpg/.jpeg/.png/.webp files){_skip_hint(inputs.skipped)}"
            )
        if cfg.teacher == "paired":
            folder = check_folder(cfg.paired_dir, "data.paired_dir")
            index, skipped = partner_index(folder, "target")
            inputs.skipped += skipped
            photo_stems = {p.stem for p in inputs.photos}
            for stem, path in index.items():
                if stem in photo_stems:
                    inputs.partners[stem] = path
                else:
                    inputs.skipped.append(Skip(str(path), "target", "no photo with this file stem in data.source"))
    if cfg.style_dir is not None:
        listing = list_images(check_folder(cfg.style_dir, "data.style_dir"), "style")
        inputs.style = listing.images
        inputs.skipped += listing.skipped
        if not inputs.style:
            raise DataError(f"data.style_dir: no images in {listing.folder} (expected .jpg/.jpeg/.png/.webp files)")
    return inputs


def _skip_hint(skipped: list[Skip], limit: int = 5) -> str:
    if not skipped:
        return ""
    lines = [f"\n  skipped {Path(s.file).name}: {s.reason}" for s in skipped[:limit]]
    more = f"\n  ... and {len(skipped) - limit} more" if len(skipped) > limit else ""
    return "".join(lines) + more


def _cache_key(cfg: DataConfig, inputs: _Inputs) -> str:
    """Config without folder paths + role/name/content hash of every input + code versions."""
    settings = cfg.model_dump(mode="json", exclude={"source", "paired_dir", "style_dir", "keyframes_dir"})
    settings["bundled_source"] = cfg.source is None
    files = []
    for role, path in inputs.all_files():
        try:
            digest = sha256_file(path)
        except OSError as err:
            # Unreadable (permissions, vanished): skipped and reported like a corrupt image,
            # and keyed by the error so the cache notices when it becomes readable.
            reason = f"cannot read file ({err.strerror or type(err).__name__})"
            inputs.discard(path, role, reason)
            files.append([role, path.name, reason])
            continue
        inputs.hashes[path] = digest
        files.append([role, path.name, digest])
    payload = {"format": FORMAT_VERSION, "teacher_version": TEACHER_VERSION, "config": settings, "files": files,
               "pre_skipped": sorted((Path(s.file).name, s.role, s.reason) for s in inputs.skipped)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", disable=not enabled, file=sys.stderr, leave=False)


def _prepare(path: Path, cfg: DataConfig, what: str) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode, check the minimum size, shrink to max_side, check again (extreme aspect).

    Returns the image and its original ``(height, width)`` (paired targets are checked
    against the original aspect ratio).
    """
    rgb = read_image(path)
    check_min_side(rgb, cfg.min_side, what)
    original_hw = (int(rgb.shape[0]), int(rgb.shape[1]))
    rgb = resize_max_side(rgb, cfg.max_side)
    height, width = rgb.shape[:2]
    if min(height, width) < cfg.min_side:
        raise ImageRejected(
            f"too thin after shrinking to data.max_side={cfg.max_side}: {width}x{height}, shorter side < min_side={cfg.min_side}"
        )
    return rgb, original_hw


def _matched_target(target: np.ndarray, photo: np.ndarray, original_hw: tuple[int, int]) -> np.ndarray:
    """Resize a paired target to its photo; refuse a different aspect ratio (misaligned)."""
    photo_aspect = original_hw[1] / original_hw[0]
    target_aspect = target.shape[1] / target.shape[0]
    if abs(target_aspect / photo_aspect - 1.0) > _ASPECT_TOLERANCE:
        raise ImageRejected(
            f"target is {target.shape[1]}x{target.shape[0]} but the photo is {original_hw[1]}x{original_hw[0]}: "
            "different aspect ratio, so it cannot be aligned by resizing"
        )
    return resize_to(target, photo.shape[0], photo.shape[1])


def _save(root: Path, folder: str, image_id: str, rgb: np.ndarray) -> FileEntry:
    relative = f"{folder}/{image_id}.png"
    path = root / relative
    write_png(path, rgb)
    return FileEntry(file=relative, sha256=sha256_file(path), bytes=path.stat().st_size,
                     width=int(rgb.shape[1]), height=int(rgb.shape[0]))


@dataclass
class _Candidate:
    image_id: str
    photo: np.ndarray
    target: np.ndarray
    source: Path
    target_source: Path | None = None
    region: tuple[int, int, int, int] | None = None


def _unique_ids(paths: list[Path], inputs: _Inputs, role: str) -> Iterator[tuple[str, Path]]:
    """(id, path) with sanitised, unique ids and without byte-identical duplicates."""
    seen_ids: dict[str, Path] = {}
    seen_content: dict[str, Path] = {}
    for path in paths:
        image_id = safe_id(path.stem)
        digest = inputs.hashes.get(path) or sha256_file(path)
        if image_id in seen_ids:
            inputs.skipped.append(Skip(str(path), role, f"duplicate name: {seen_ids[image_id].name} gives the same id {image_id!r}"))
            continue
        if digest in seen_content and path.stat().st_size > 0:
            inputs.skipped.append(Skip(str(path), role, f"duplicate content of {seen_content[digest].name}"))
            continue
        seen_ids[image_id] = path
        seen_content[digest] = path
        yield image_id, path


def _photo_candidates(cfg: DataConfig, inputs: _Inputs, progress: bool) -> list[_Candidate]:
    candidates: list[_Candidate] = []
    unique = list(_unique_ids(inputs.photos, inputs, "photo"))
    with _progress(len(unique), f"data: {cfg.teacher} teacher", progress) as bar:
        for image_id, path in unique:
            bar.update(1)
            try:
                if cfg.teacher == "paired" and path.stem not in inputs.partners:
                    raise ImageRejected("no target with this file stem in data.paired_dir")
                photo, original_hw = _prepare(path, cfg, "photo")
            except ImageRejected as err:
                inputs.skipped.append(Skip(str(path), "photo", err.reason))
                continue
            partner = inputs.partners.get(path.stem)
            if cfg.teacher == "paired":
                assert partner is not None
                try:
                    target = _matched_target(read_image(partner), photo, original_hw)
                except ImageRejected as err:
                    inputs.skipped.append(Skip(str(path), "photo", f"its paired target {partner.name} was rejected: {err.reason}"))
                    inputs.skipped.append(Skip(str(partner), "target", err.reason))
                    continue
            else:
                target = cartoon_filter(photo)
            candidates.append(_Candidate(image_id, photo, target, path, partner))
    return candidates


def _keyframe_candidates(cfg: DataConfig, inputs: _Inputs, progress: bool) -> list[_Candidate]:
    """Each keyframe pair gives a train region and a val strip (see split.region_split)."""
    candidates: list[_Candidate] = []
    with _progress(len(inputs.keyframes), "data: keyframes", progress) as bar:
        for pair in inputs.keyframes:
            bar.update(1)
            image_id = safe_id(pair.name)
            try:
                frame, original_hw = _prepare(pair.frame, cfg, "keyframe")
                train_box, val_box = region_split(frame.shape[0], frame.shape[1], cfg.val_fraction, cfg.min_side)
            except (ImageRejected, SplitError) as err:
                inputs.skipped.append(Skip(str(pair.frame), "keyframe", str(getattr(err, "reason", err))))
                continue
            try:
                styled = _matched_target(read_image(pair.styled), frame, original_hw)
            except ImageRejected as err:
                inputs.skipped.append(Skip(str(pair.styled), "keyframe_styled", err.reason))
                continue
            for suffix, (x0, y0, x1, y1) in (("train", train_box), ("val", val_box)):
                candidates.append(_Candidate(
                    f"{image_id}__{suffix}", np.ascontiguousarray(frame[y0:y1, x0:x1]),
                    np.ascontiguousarray(styled[y0:y1, x0:x1]), pair.frame, pair.styled, (x0, y0, x1, y1)))
    return candidates


def _style_entries(cfg: DataConfig, inputs: _Inputs, root: Path, progress: bool) -> list[StyleEntry]:
    entries: list[StyleEntry] = []
    (root / "style").mkdir()
    unique = list(_unique_ids(inputs.style, inputs, "style"))
    with _progress(len(unique), "data: style", progress) as bar:
        for image_id, path in unique:
            bar.update(1)
            try:
                rgb, _ = _prepare(path, cfg, "style image")
            except ImageRejected as err:
                inputs.skipped.append(Skip(str(path), "style", err.reason))
                continue
            entries.append(StyleEntry(id=image_id, image=_save(root, "style", image_id, rgb),
                                      source=str(path), source_sha256=inputs.hashes[path]))
    if not entries:
        raise DataError(f"data.style_dir: no valid style image in {cfg.style_dir}{_skip_hint([s for s in inputs.skipped if s.role == 'style'])}")
    return entries


def _reusable(out_dir: Path, key: str) -> DatasetManifest | None:
    if not (out_dir / MANIFEST_NAME).is_file():
        return None
    try:
        manifest = read_manifest(out_dir)
    except DataError:
        return None
    if manifest.cache_key != key or manifest.format_version != FORMAT_VERSION:
        return None
    return None if verify_files(out_dir, manifest) else manifest


def _check_out_dir(out_dir: Path, inputs: _Inputs) -> None:
    """Refuse an output that would replace a non-dataset folder or sit inside/around an input."""
    resolved = out_dir.resolve()
    folders = {p.parent.resolve() for _, p in inputs.all_files()}
    for folder in folders:
        if resolved == folder or resolved in folder.parents or folder in resolved.parents:
            raise DataError(f"--out {out_dir} overlaps the input folder {folder}; choose an output folder outside your data")
    if out_dir.exists() and (not out_dir.is_dir() or (any(out_dir.iterdir()) and not (out_dir / MANIFEST_NAME).exists())):
        raise DataError(f"--out {out_dir} exists and is not a dataset built by this stage; choose another folder or remove it")


def build_dataset(cfg: DataConfig, out_dir: str | Path, progress: bool = True,
                  log: Callable[[str], None] | None = None) -> DatasetManifest:
    """Validate inputs, run the teacher, split, and write the dataset directory atomically.

    Args:
        cfg: the ``data`` section of the release config.
        out_dir: dataset directory to create (replaced atomically when inputs changed).
        progress: show a tqdm bar on stderr.
        log: optional callback for one-line status messages (e.g. "reusing ...").

    Returns:
        The manifest (also written to ``<out_dir>/manifest.json``).

    Raises:
        DataError: missing/empty folders, no valid image, too few images to split, or an
            output folder that would clobber something else. The message names the field.
    """
    out_dir = Path(out_dir)
    inputs = _collect_inputs(cfg)
    _check_out_dir(out_dir, inputs)
    key = _cache_key(cfg, inputs)
    reused = _reusable(out_dir, key)
    if reused is not None:
        if log:
            log(f"inputs and config unchanged: reusing {out_dir}")
        return reused

    with atomic_output(out_dir, is_dir=True) as tmp:
        tmp.chmod(0o755)  # mkdtemp makes it owner-only; a dataset is meant to be shared
        for folder in ("photos", "targets"):
            (tmp / folder).mkdir()
        if cfg.teacher == "keyframes":
            candidates = _keyframe_candidates(cfg, inputs, progress)
            if not candidates:
                raise DataError(f"data.keyframes_dir: no valid keyframe pair in {cfg.keyframes_dir}{_skip_hint(inputs.skipped)}")
            splits = {c.image_id: ("val" if c.image_id.endswith("__val") else "train") for c in candidates}
            notes = ["keyframes: each pair is cut into a training region and a held-out validation strip "
                     f"(last {cfg.val_fraction:.0%} of its longer side); data.source is not used"]
        else:
            candidates = _photo_candidates(cfg, inputs, progress)
            if not candidates:
                where = cfg.source if cfg.source is not None else inputs.source_label
                raise DataError(f"data.source: no valid image in {where}{_skip_hint(inputs.skipped)}")
            try:
                splits = split_ids([c.image_id for c in candidates], cfg.val_fraction, cfg.min_val_images, cfg.seed)
            except SplitError as err:
                raise DataError(f"data.source ({inputs.source_label}): {err}{_skip_hint(inputs.skipped)}") from None
            notes = []
        images = []
        for c in candidates:
            images.append(ImageEntry(
                id=c.image_id, split=splits[c.image_id], photo=_save(tmp, "photos", c.image_id, c.photo),
                target=_save(tmp, "targets", c.image_id, c.target), source=str(c.source),
                source_sha256=inputs.hashes[c.source], region=c.region,
                target_source=str(c.target_source) if c.target_source else None))
        style = _style_entries(cfg, inputs, tmp, progress) if inputs.style else []
        manifest = DatasetManifest(
            cache_key=key, config_hash=config_hash(cfg), config=cfg.model_dump(mode="json"), teacher=cfg.teacher,
            teacher_version=TEACHER_VERSION if cfg.teacher == "cartoon" else cfg.teacher, source=inputs.source_label,
            images=images, style=style, skipped=len(inputs.skipped), notes=notes)
        atomic_write_json(tmp / REPORT_NAME, {"counts": manifest.counts(), "skipped": [s.to_dict() for s in inputs.skipped],
                                              "source": inputs.source_label, "notes": notes})
        atomic_write_json(tmp / MANIFEST_NAME, manifest.model_dump(mode="json"))
    return manifest


def read_report(out_dir: str | Path) -> dict:
    """The ``report.json`` of a built dataset (skipped inputs with reasons, counts)."""
    return json.loads((Path(out_dir) / REPORT_NAME).read_text(encoding="utf-8"))
