"""read_image: normalisation of every pixel format to uint8 RGB, and each bad-input reason."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from mobile_pipeline.data.images import ImageRejected, read_image, resize_max_side, resize_to


def _photo(seed: int, height: int = 40, width: int = 56) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(4, 5, 3), dtype=np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


@pytest.mark.parametrize("ext", ["png", "jpg", "webp", "JPEG"])
def test_rgb_formats_load_as_uint8_rgb(tmp_path: Path, ext: str) -> None:
    rgb = _photo(0)
    path = tmp_path / f"a.{ext}"
    Image.fromarray(rgb).save(path, format={"jpg": "JPEG", "JPEG": "JPEG"}.get(ext, ext.upper()), quality=95)
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == (40, 56, 3) and out.flags.c_contiguous
    # lossy formats are close, png is exact; channel order must be RGB (not BGR)
    assert np.abs(out.astype(int) - rgb.astype(int)).mean() < (0.01 if ext == "png" else 6)


def test_rgba_is_composited_over_white(tmp_path: Path) -> None:
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[..., 0] = 200  # red everywhere
    rgba[:, :16, 3] = 255  # left half opaque, right half fully transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    assert out.shape == (32, 32, 3)
    assert (out[:, :16] == [200, 0, 0]).all()
    assert (out[:, 16:] == 255).all()


def test_grayscale_becomes_three_equal_channels(tmp_path: Path) -> None:
    gray = np.arange(32 * 32, dtype=np.uint16).reshape(32, 32).astype(np.uint8)
    Image.fromarray(gray, "L").save(tmp_path / "g.png")
    out = read_image(tmp_path / "g.png")
    assert out.shape == (32, 32, 3)
    assert (out[..., 0] == gray).all() and (out[..., 1] == gray).all() and (out[..., 2] == gray).all()


def test_16bit_gray_is_scaled_from_full_range(tmp_path: Path) -> None:
    gray16 = np.full((32, 32), 257 * 100, np.uint16)
    gray16[0, 0] = 65535
    gray16[0, 1] = 0
    cv2.imwrite(str(tmp_path / "g16.png"), gray16)
    out = read_image(tmp_path / "g16.png")
    assert out.dtype == np.uint8 and out.shape == (32, 32, 3)
    assert tuple(out[5, 5]) == (100, 100, 100)
    assert tuple(out[0, 0]) == (255, 255, 255) and tuple(out[0, 1]) == (0, 0, 0)


def test_16bit_rgb_is_scaled(tmp_path: Path) -> None:
    rgb16 = np.zeros((32, 32, 3), np.uint16)
    rgb16[..., 0] = 65535  # red in RGB order
    rgb16[..., 2] = 257 * 10
    cv2.imwrite(str(tmp_path / "c16.png"), rgb16[:, :, ::-1])  # OpenCV writes BGR
    out = read_image(tmp_path / "c16.png")
    assert out.dtype == np.uint8
    assert tuple(out[3, 3]) == (255, 0, 10)


def test_palette_with_and_without_transparency(tmp_path: Path) -> None:
    rgb = _photo(1, 32, 32)
    pal = Image.fromarray(rgb).quantize(16)
    pal.save(tmp_path / "p.png")
    out = read_image(tmp_path / "p.png")
    assert out.shape == (32, 32, 3)
    assert np.array_equal(out, np.asarray(pal.convert("RGB")))

    indices = np.zeros((32, 32), np.uint8)
    indices[:, 16:] = 1
    transparent = Image.fromarray(indices, "P")
    transparent.putpalette([0, 0, 255, 0, 255, 0] + [0] * 762)
    transparent.info["transparency"] = 1  # index 1 is fully transparent
    transparent.save(tmp_path / "pt.png", transparency=1)
    out = read_image(tmp_path / "pt.png")
    assert tuple(out[0, 0]) == (0, 0, 255) and tuple(out[0, 20]) == (255, 255, 255)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    image = Image.fromarray(_photo(2, 30, 60))
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    image.save(tmp_path / "rot.jpg", exif=exif)
    assert read_image(tmp_path / "rot.jpg").shape == (60, 30, 3)


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("zero.jpg", b"", "zero-byte"),
        ("notes.jpg", b"shopping list: eggs, milk\n" * 10, "not an image"),
        ("corrupt.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "image"),
    ],
)
def test_bad_files_are_rejected_with_reason(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageRejected) as info:
        read_image(path)
    assert reason in info.value.reason
    assert info.value.path == path and name in str(info.value)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_files_are_rejected(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"t.{fmt.lower()}"
    Image.fromarray(_photo(3, 64, 64)).save(path, format=fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageRejected) as info:
        read_image(path)
    assert "truncated" in info.value.reason or "corrupt" in info.value.reason


def test_missing_file_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ImageRejected, match="cannot read"):
        read_image(tmp_path / "nope.png")


def test_resize_keeps_aspect_and_never_enlarges() -> None:
    image = np.zeros((100, 300, 3), np.uint8)
    assert resize_max_side(image, 150).shape == (50, 150, 3)
    assert resize_max_side(image, 600) is image
    assert resize_to(image, 20, 60).shape == (20, 60, 3)
