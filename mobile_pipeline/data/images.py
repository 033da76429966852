"""Reading, validating and normalising user images.

Every image that enters a dataset goes through :func:`read_image`, so the rest of the
pipeline can assume one format: ``uint8`` RGB, ``H x W x 3``, C-contiguous. Pillow is used
for decoding (not OpenCV) because it *raises* on truncated files instead of silently
returning a half-grey picture, and because it applies EXIF orientation cheaply.

Bad inputs raise :class:`ImageRejected` with a short human reason; the dataset builder
lists those reasons in ``report.json`` instead of failing the whole run.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # Pillow is imported lazily at run time
    from PIL import Image

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp")

# Refuse decompression bombs before Pillow allocates them (~ 16k x 16k).
_MAX_PIXELS = 268_000_000


class ImageRejected(ValueError):
    """An input file that cannot be used as an image; ``reason`` says why in a few words."""

    def __init__(self, reason: str, path: Path | str | None = None) -> None:
        self.reason = reason
        self.path = Path(path) if path is not None else None
        super().__init__(f"{path}: {reason}" if path is not None else reason)


def is_image_name(path: Path) -> bool:
    """True for the extensions the data stage reads (case-insensitive)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS


def list_folder(folder: Path) -> tuple[list[Path], list[Path]]:
    """Top-level files of ``folder`` sorted by name: ``(images, others)``.

    Hidden files (``.DS_Store``, editor swap files) are ignored; sub-folders are not searched
    (one folder = one set, so stems stay unique for pairing).
    """
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    images = [p for p in files if is_image_name(p)]
    others = [p for p in files if not is_image_name(p)]
    return images, others


def to_rgb_uint8(image: "Image.Image") -> np.ndarray:
    """Any Pillow image (RGB, RGBA, L, LA, 1, P, I;16, I, CMYK, ...) as uint8 RGB.

    Transparency is composited over white, the usual look of a transparent picture in a
    viewer (the RGB under fully transparent pixels is often garbage). 16-bit and 32-bit
    integer grey images are scaled from their full range (0..65535) to 0..255.
    """
    from PIL import Image

    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        values = np.asarray(image).astype(np.float64)
        gray = np.clip(np.round(values / 257.0), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode == "F":
        raise ImageRejected("floating-point image mode 'F' is not supported; save it as 8- or 16-bit")
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return np.ascontiguousarray(rgb)


def read_image(path: str | Path) -> np.ndarray:
    """Decode ``path`` into uint8 RGB ``H x W x 3`` with EXIF orientation applied.

    Raises:
        ImageRejected: zero-byte, unreadable, not an image, truncated or corrupt data, or an
            unsupported pixel format. The reason is short enough for a report line.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        raise ImageRejected(f"cannot read file ({err.strerror or err})", path) from None
    if size == 0:
        raise ImageRejected("zero-byte file", path)
    Image.MAX_IMAGE_PIXELS = _MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()  # forces a full decode: truncated data raises here
                image = ImageOps.exif_transpose(image) or image
                return to_rgb_uint8(image)
    except ImageRejected as err:
        raise ImageRejected(err.reason, path) from None
    except UnidentifiedImageError:
        raise ImageRejected("not an image (unrecognised file content)", path) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRejected(f"too many pixels (> {_MAX_PIXELS}); downscale it first", path) from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        text = str(err).lower()
        if "truncated" in text or isinstance(err, EOFError):
            raise ImageRejected("truncated image data", path) from None
        raise ImageRejected(f"corrupt image data ({err})", path) from None


def resize_max_side(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """Shrink so the longer side is at most ``max_side``, keeping the aspect ratio.

    Never enlarges (upscaling would only invent detail for the teacher to cartoonise).
    INTER_AREA is the alias-free choice for downscaling.
    """
    import cv2

    height, width = rgb.shape[:2]
    longer = max(height, width)
    if longer <= max_side:
        return rgb
    scale = max_side / longer
    new_w = max(1, round(width * scale))
    new_h = max(1, round(height * scale))
    return np.ascontiguousarray(cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_AREA))


def resize_to(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize to an exact size (area filter when shrinking, bicubic when enlarging)."""
    import cv2

    if rgb.shape[:2] == (height, width):
        return rgb
    shrinking = height * width < rgb.shape[0] * rgb.shape[1]
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return np.ascontiguousarray(cv2.resize(rgb, (width, height), interpolation=interp))


def check_min_side(rgb: np.ndarray, min_side: int, what: str = "image") -> None:
    """Reject images whose shorter side is below ``min_side``."""
    height, width = rgb.shape[:2]
    if min(height, width) < min_side:
        raise ImageRejected(f"tiny {what}: {width}x{height}, shorter side < min_side={min_side}")


def write_png(path: Path, rgb: np.ndarray) -> None:
    """Write uint8 RGB as PNG (lossless, byte-identical for identical pixels)."""
    import cv2

    ok, buffer = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise OSError(f"could not encode PNG for {path}")
    path.write_bytes(buffer.tobytes())


def read_png_fast(path: Path) -> np.ndarray:
    """Read a PNG that this stage wrote itself (trusted, already RGB) with OpenCV."""
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageRejected("dataset file unreadable; rebuild with `mobile-pipeline data`", path)
    return np.ascontiguousarray(bgr[:, :, ::-1])

