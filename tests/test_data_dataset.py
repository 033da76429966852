"""build_dataset / load_dataset: validation report, manifest, split, reuse, atomicity."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from mobile_pipeline.config import DataConfig, config_hash
from mobile_pipeline.data import dataset as dataset_module
from mobile_pipeline.data.dataset import DataError, build_dataset, load_dataset, read_report
from mobile_pipeline.utils.atomic import sha256_file


def _photo(seed: int, height: int = 48, width: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(3, 4, 3), dtype=np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def _save(path: Path, rgb: np.ndarray) -> Path:
    Image.fromarray(rgb).save(path)
    return path


def _tree_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(str(path.relative_to(folder)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
            digest.update(str(path.stat().st_mtime_ns).encode())
    return digest.hexdigest()


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    """Five usable photos in assorted formats plus every kind of bad file."""
    folder = tmp_path / "photos"
    folder.mkdir()
    _save(folder / "a.png", _photo(0))
    _save(folder / "b.jpg", _photo(1, 64, 48))
    _save(folder / "c.webp", _photo(2, 40, 80))  # longer than max_side=64 below
    rgba = np.dstack([_photo(3), np.full((48, 64), 255, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(folder / "d_rgba.png")
    cv2.imwrite(str(folder / "e_gray16.png"), (_photo(4)[..., 0].astype(np.uint16) * 257))
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("not a picture\n" * 20)
    truncated = (folder / "a.png").read_bytes()
    (folder / "trunc.png").write_bytes(truncated[: len(truncated) // 2])
    _save(folder / "tiny.png", _photo(5, 12, 12))
    (folder / "README.txt").write_text("my holiday photos")
    return folder


def _cfg(**kw) -> DataConfig:
    return DataConfig(**{"max_side": 64, "min_side": 32, "val_fraction": 0.4, **kw})


def test_build_report_manifest_and_untouched_source(tmp_path: Path, photo_dir: Path) -> None:
    before = _tree_hash(photo_dir)
    out = tmp_path / "ds"
    manifest = build_dataset(_cfg(source=photo_dir), out, progress=False)
    assert _tree_hash(photo_dir) == before  # the user's folder is never modified

    assert manifest.counts() == {"train": 3, "val": 2, "style": 0, "skipped": 5}
    reasons = {Path(s["file"]).name: s["reason"] for s in read_report(out)["skipped"]}
    assert reasons.keys() == {"zero.jpg", "notes.jpg", "trunc.png", "tiny.png", "README.txt"}
    assert "zero-byte" in reasons["zero.jpg"]
    assert "not an image" in reasons["notes.jpg"]
    assert "truncated" in reasons["trunc.png"] or "corrupt" in reasons["trunc.png"]
    assert "tiny" in reasons["tiny.png"] and "min_side=32" in reasons["tiny.png"]
    assert "not an image file name" in reasons["README.txt"]

    raw = json.loads((out / "manifest.json").read_text())
    assert raw["config_hash"] == config_hash(_cfg(source=photo_dir)) and raw["teacher"] == "cartoon"
    assert sorted(e["id"] for e in raw["images"]) == ["a", "b", "c", "d_rgba", "e_gray16"]
    for entry in raw["images"]:
        for kind in ("photo", "target"):
            f = entry[kind]
            assert sha256_file(out / f["file"]) == f["sha256"]
            assert (out / f["file"]).stat().st_size == f["bytes"]
            assert max(f["width"], f["height"]) <= 64
        assert (entry["photo"]["width"], entry["photo"]["height"]) == (entry["target"]["width"], entry["target"]["height"])
        assert entry["split"] in ("train", "val")
    c = next(e for e in raw["images"] if e["id"] == "c")
    assert (c["photo"]["width"], c["photo"]["height"]) == (64, 32)  # 80x40 shrunk, aspect kept

    data = load_dataset(out)
    assert set(data.ids("train")).isdisjoint(data.ids("val"))
    assert len(data.ids("train")) == 3 and len(data.ids("val")) == 2
    for photo, target in data.pairs("train") + data.pairs("val"):
        assert photo.dtype == np.uint8 and photo.ndim == 3 and photo.shape == target.shape
    # Quality is measured on the held-out split (the val pairs, in manifest order).
    assert [p.tobytes() for p, _ in data.heldout_pairs()] == [p.tobytes() for p, _ in data.pairs("val")]
    gray = data.pair("e_gray16")[0]
    assert (gray[..., 0] == gray[..., 1]).all()
    assert data.style_images() == []


def test_rerun_reuses_and_changes_rebuild(tmp_path: Path, photo_dir: Path) -> None:
    out = tmp_path / "ds"
    first = build_dataset(_cfg(source=photo_dir), out, progress=False)
    mtime = (out / "manifest.json").stat().st_mtime_ns
    logs: list[str] = []
    again = build_dataset(_cfg(source=photo_dir), out, progress=False, log=logs.append)
    assert again == first and (out / "manifest.json").stat().st_mtime_ns == mtime
    assert logs and "reusing" in logs[0]

    changed = build_dataset(_cfg(source=photo_dir, seed=5), out, progress=False)
    assert changed.cache_key != first.cache_key
    _save(photo_dir / "f.png", _photo(9))
    grown = build_dataset(_cfg(source=photo_dir), out, progress=False)
    assert len(grown.images) == 6


def test_tampered_dataset_is_refused_and_rebuilt(tmp_path: Path, photo_dir: Path) -> None:
    out = tmp_path / "ds"
    manifest = build_dataset(_cfg(source=photo_dir), out, progress=False)
    victim = out / manifest.images[0].target.file
    _save(victim, _photo(42, manifest.images[0].target.height, manifest.images[0].target.width))
    with pytest.raises(DataError, match="does not match its manifest"):
        load_dataset(out)
    build_dataset(_cfg(source=photo_dir), out, progress=False)  # rebuilds instead of reusing
    load_dataset(out)


def test_killed_build_leaves_previous_dataset(tmp_path: Path, photo_dir: Path, monkeypatch) -> None:
    out = tmp_path / "ds"
    build_dataset(_cfg(source=photo_dir), out, progress=False)
    before = _tree_hash(out)
    calls = {"n": 0}

    def dying_filter(rgb):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # like Ctrl-C halfway through
        return rgb

    monkeypatch.setattr(dataset_module, "cartoon_filter", dying_filter)
    with pytest.raises(KeyboardInterrupt):
        build_dataset(_cfg(source=photo_dir, seed=1), out, progress=False)
    assert _tree_hash(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "photos"]  # no temp leftovers
    fresh = tmp_path / "fresh"
    with pytest.raises(KeyboardInterrupt):
        calls["n"] = 0
        build_dataset(_cfg(source=photo_dir), fresh, progress=False)
    assert not fresh.exists()


def test_empty_and_invalid_sources_are_clear_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=rf"data.source: no images in {empty}"):
        build_dataset(_cfg(source=empty), tmp_path / "out", progress=False)
    (empty / "x.jpg").write_bytes(b"")
    with pytest.raises(DataError, match=r"no valid image in .*empty(.|\n)*x.jpg: zero-byte"):
        build_dataset(_cfg(source=empty), tmp_path / "out", progress=False)
    with pytest.raises(DataError, match="does not exist"):
        build_dataset(_cfg(source=tmp_path / "missing"), tmp_path / "out", progress=False)
    _save(empty / "only.png", _photo(0))
    with pytest.raises(DataError, match="only 1 valid photos; need at least 2"):
        build_dataset(_cfg(source=empty), tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_output_must_not_clobber_inputs_or_other_folders(tmp_path: Path, photo_dir: Path) -> None:
    with pytest.raises(DataError, match="overlaps the input folder"):
        build_dataset(_cfg(source=photo_dir), photo_dir / "ds", progress=False)
    with pytest.raises(DataError, match="overlaps the input folder"):
        build_dataset(_cfg(source=photo_dir), tmp_path, progress=False)
    other = tmp_path / "notes"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    with pytest.raises(DataError, match="not a dataset"):
        build_dataset(_cfg(source=photo_dir), other, progress=False)
    assert (other / "thesis.tex").read_text() == "precious"


def test_duplicates_are_skipped(tmp_path: Path, photo_dir: Path) -> None:
    (photo_dir / "a_copy.png").write_bytes((photo_dir / "a.png").read_bytes())
    _save(photo_dir / "b.png", _photo(7))  # same stem as b.jpg
    build_dataset(_cfg(source=photo_dir), tmp_path / "ds", progress=False)
    reasons = {Path(s["file"]).name: s["reason"] for s in read_report(tmp_path / "ds")["skipped"]}
    assert "duplicate content of a.png" in reasons["a_copy.png"]
    assert "duplicate name" in reasons["b.png"]


def test_paired_teacher(tmp_path: Path, photo_dir: Path) -> None:
    paired = tmp_path / "paired"
    paired.mkdir()
    _save(paired / "a.png", _photo(10))  # same size
    _save(paired / "b.png", _photo(11, 128, 96))  # 2x the photo: resized down to it
    _save(paired / "c.png", _photo(12, 48, 48))  # 80x40 photo, square target: misaligned
    _save(paired / "d_rgba.jpg", _photo(13))
    _save(paired / "zz.png", _photo(14))  # no photo
    manifest = build_dataset(_cfg(source=photo_dir, teacher="paired", paired_dir=paired), tmp_path / "ds", progress=False)
    assert sorted(e.id for e in manifest.images) == ["a", "b", "d_rgba"]
    reasons = {(Path(s["file"]).name, s["role"]): s["reason"] for s in read_report(tmp_path / "ds")["skipped"]}
    assert "no target with this file stem" in reasons[("e_gray16.png", "photo")]
    assert "aspect ratio" in reasons[("c.png", "target")] and "c.png was rejected" in reasons[("c.webp", "photo")]
    assert "no photo with this file stem" in reasons[("zz.png", "target")]
    data = load_dataset(tmp_path / "ds")
    photo, target = data.pair("b")
    assert photo.shape == target.shape == (64, 48, 3)
    photo_a, target_a = data.pair("a")
    assert np.array_equal(target_a, _photo(10))  # targets are the user's pixels, not the filter's


def test_style_folder(tmp_path: Path, photo_dir: Path) -> None:
    style = tmp_path / "style"
    style.mkdir()
    _save(style / "s1.png", _photo(20, 80, 80))
    _save(style / "s2.jpg", _photo(21))
    (style / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    before = _tree_hash(style)
    manifest = build_dataset(_cfg(source=photo_dir, style_dir=style), tmp_path / "ds", progress=False)
    assert _tree_hash(style) == before
    assert [e.id for e in manifest.style] == ["s1", "s2"]
    images = load_dataset(tmp_path / "ds").style_images()
    assert [im.shape for im in images] == [(64, 64, 3), (48, 64, 3)]
    assert any(Path(s["file"]).name == "broken.png" and s["role"] == "style" for s in read_report(tmp_path / "ds")["skipped"])

    empty = tmp_path / "style_empty"
    empty.mkdir()
    (empty / "x.png").write_bytes(b"")
    with pytest.raises(DataError, match="data.style_dir: no valid style image"):
        build_dataset(_cfg(source=photo_dir, style_dir=empty), tmp_path / "ds2", progress=False)


def test_keyframes_single_pair_region_split(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    _save(keys / "shot.png", _photo(30, 48, 64))
    _save(keys / "shot_styled.png", _photo(31, 48, 64))
    _save(keys / "lonely.png", _photo(32))
    _save(keys / "orphan_styled.png", _photo(33))
    cfg = _cfg(teacher="keyframes", keyframes_dir=keys, min_side=16, val_fraction=0.25)
    manifest = build_dataset(cfg, tmp_path / "ds", progress=False)
    assert {e.id: e.split for e in manifest.images} == {"shot__train": "train", "shot__val": "val"}
    regions = {e.split: e.region for e in manifest.images}
    assert regions == {"train": (0, 0, 48, 48), "val": (48, 0, 64, 48)}
    data = load_dataset(tmp_path / "ds")
    (train_photo, train_target), = data.pairs("train")
    (val_photo, _), = data.pairs("val")
    assert np.array_equal(np.concatenate([train_photo, val_photo], axis=1), _photo(30, 48, 64))
    assert np.array_equal(train_target, _photo(31, 48, 64)[:, :48])
    reasons = {Path(s["file"]).name: s["reason"] for s in read_report(tmp_path / "ds")["skipped"]}
    assert "no stylized partner lonely_styled" in reasons["lonely.png"]
    assert "no matching keyframe orphan" in reasons["orphan_styled.png"]
    assert manifest.notes and "validation strip" in manifest.notes[0]


def test_keyframes_folder_without_pairs(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    _save(keys / "alone.png", _photo(0))
    with pytest.raises(DataError, match=rf"data.keyframes_dir: no keyframe pairs in {keys}"):
        build_dataset(_cfg(teacher="keyframes", keyframes_dir=keys), tmp_path / "ds", progress=False)


def test_bundled_photos_are_colour_and_offline(tmp_path: Path) -> None:
    manifest = build_dataset(_cfg(max_side=48, val_fraction=0.25), tmp_path / "ds", progress=False)
    assert sorted(e.id for e in manifest.images) == ["astronaut", "chelsea", "coffee", "motorcycle_left", "rocket"]
    assert manifest.skipped == 0 and manifest.counts()["val"] == 1
    data = load_dataset(tmp_path / "ds")
    for photo, _ in data.pairs("train") + data.pairs("val"):
        spread = np.abs(photo.astype(int) - photo.mean(axis=2, keepdims=True)).mean()
        assert spread > 8  # a colour photo, not grey


def test_keyframes_bad_styled_partner_is_reported(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    for name in ("one", "two"):
        _save(keys / f"{name}.png", _photo(40, 48, 64))
    _save(keys / "one_styled.png", _photo(41, 48, 64))
    (keys / "two_styled.png").write_bytes(b"")
    manifest = build_dataset(_cfg(teacher="keyframes", keyframes_dir=keys, min_side=16), tmp_path / "ds", progress=False)
    assert sorted(e.id for e in manifest.images) == ["one__train", "one__val"]
    skipped = read_report(tmp_path / "ds")["skipped"]
    assert skipped == [{"file": str(keys / "two_styled.png"), "role": "keyframe_styled", "reason": "zero-byte file"}]


def test_unreadable_photo_is_skipped_and_reported(tmp_path: Path, photo_dir: Path, monkeypatch) -> None:
    # Root ignores chmod, so the permission error is injected where the build first reads bytes.
    real_sha = dataset_module.sha256_file

    def deny_b(path):
        if Path(path).name == "b.jpg":
            raise PermissionError(13, "Permission denied", str(path))
        return real_sha(path)

    monkeypatch.setattr(dataset_module, "sha256_file", deny_b)
    manifest = build_dataset(_cfg(source=photo_dir), tmp_path / "ds", progress=False)
    reasons = {Path(s["file"]).name: s["reason"] for s in read_report(tmp_path / "ds")["skipped"]}
    assert reasons["b.jpg"] == "cannot read file (Permission denied)"
    assert "b" not in {e.id for e in manifest.images}
    assert manifest.counts()["train"] + manifest.counts()["val"] == 4
