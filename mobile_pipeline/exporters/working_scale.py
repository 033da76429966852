"""Working scale: run the stylizer at the resolution its look is defined at, then upsample.

The model's look is defined in pixels: its smoothing radius and line width are a few pixels
at the scale it was trained and exported for (the tier's resolution, 256-384 px on a phone).
Run over a 12 MP photo in tiles, the same model smooths and outlines a tenth of the area, so
the HD result is close to the photo and looks unlike the phone's preview of the same scene.

So ``stylize`` runs the model on the image resized to a *working size* (its longer side; the
tier's resolution by default) and brings the result back to full resolution with a **fast
guided filter** (He & Sun 2015, as used for learned image operators by Wu et al. 2018):

1. at the working scale, fit per pixel a local linear model ``out_c ~ a_c * luma + b_c``
   between the downsized input's luma and each stylized channel (box windows of
   ``radius``, regularised by ``eps``), then average the coefficients over the same window;
2. upsample ``a_c`` and ``b_c`` bilinearly to full resolution and apply them to the
   full-resolution luma.

Where the stylized colours follow the photo's edges (outlines, band borders) the full-size
edges come back sharp; where the style flattened texture, the fit's slope is ~0 and the
region stays flat (``eps`` keeps weak texture from leaking back). The colours, bands and
line widths are those of the working-scale result, so an HD photo and its preview look the
same. ``bilinear`` (plain upsampling of the stylized image) is kept for comparison.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Working size of a checkpoint whose tier is unknown: the demo preset's data.max_side, i.e.
#: the scale the demo models learned the look at (and the largest tier resolution, npu's).
DEFAULT_WORKING_SIZE = 384
#: Guided upsampling defaults (window radius in working-scale pixels; eps in [0, 1]^2 units).
GUIDED_RADIUS = 1
GUIDED_EPS = 1e-3
UPSAMPLERS: tuple[str, ...] = ("guided", "bilinear")

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)

#: float32 H x W x 3 [0, 1] image in, the stylized image of the same size out.
ImageFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class WorkingSize:
    """The working size (longer side, px; None = full resolution) and where it came from."""

    side: int | None
    source: str


def working_hw(height: int, width: int, side: int) -> tuple[int, int]:
    """(H, W) with the longer side ``side`` (never larger than the image itself)."""
    longer = max(height, width)
    if longer <= side:
        return height, width
    scale = side / longer
    return max(1, round(height * scale)), max(1, round(width * scale))


def _box(image: np.ndarray, radius: int) -> np.ndarray:
    import cv2

    size = 2 * radius + 1
    return cv2.blur(image, (size, size), borderType=cv2.BORDER_REFLECT)


def guided_upsample(low_input: np.ndarray, low_output: np.ndarray, high_input: np.ndarray, *,
                    radius: int = GUIDED_RADIUS, eps: float = GUIDED_EPS) -> np.ndarray:
    """Upsample ``low_output`` to ``high_input``'s size, guided by the full-resolution luma.

    Args:
        low_input: the working-scale input, h x w x 3 float32 [0, 1].
        low_output: the stylized working-scale image, h x w x 3 float32 [0, 1].
        high_input: the full-resolution input, H x W x 3 float32 [0, 1] (or uint8).
        radius: box window radius at the working scale.
        eps: regularisation; larger = flatter (closer to bilinear upsampling of the output).

    Returns:
        H x W x 3 float32 in [0, 1].
    """
    import cv2

    if low_input.shape != low_output.shape:
        raise ValueError(f"low_input {low_input.shape} and low_output {low_output.shape} differ")
    height, width = high_input.shape[:2]
    guide_low = low_input.astype(np.float32) @ _LUMA
    scale = 1.0 / 255.0 if high_input.dtype == np.uint8 else 1.0
    guide_high = (high_input.astype(np.float32) @ _LUMA) * scale
    mean_i = _box(guide_low, radius)
    var_i = _box(guide_low * guide_low, radius) - mean_i * mean_i
    out = np.empty((height, width, 3), dtype=np.float32)
    for c in range(3):  # one channel at a time: a 12 MP frame needs ~4 full-size float planes at most
        p = np.ascontiguousarray(low_output[..., c], dtype=np.float32)
        mean_p = _box(p, radius)
        cov = _box(guide_low * p, radius) - mean_i * mean_p
        a = cov / (np.maximum(var_i, 0.0) + eps)
        b = mean_p - a * mean_i
        a_high = cv2.resize(_box(a, radius), (width, height), interpolation=cv2.INTER_LINEAR)
        b_high = cv2.resize(_box(b, radius), (width, height), interpolation=cv2.INTER_LINEAR)
        np.clip(a_high * guide_high + b_high, 0.0, 1.0, out=out[..., c])
    return out


def stylize_at_working_scale(run: ImageFn, image: np.ndarray, side: int, *, upsample: str = "guided",
                             radius: int = GUIDED_RADIUS, eps: float = GUIDED_EPS) -> np.ndarray:
    """Stylize ``image`` (H x W x 3 float32 [0, 1]) at working size ``side``; returns the full size.

    Args:
        run: stylizes a working-scale image (whole, or in tiles for a fixed-size model).
        side: longer side of the working image; images no larger are run as they are.
        upsample: ``guided`` (detail from the full-resolution image) or ``bilinear``.
    """
    import cv2

    if upsample not in UPSAMPLERS:
        raise ValueError(f"upsample must be one of {list(UPSAMPLERS)}, got {upsample!r}")
    if side < 8:
        raise ValueError(f"working size must be at least 8 px, got {side}")
    height, width = image.shape[:2]
    low_h, low_w = working_hw(height, width, side)
    if (low_h, low_w) == (height, width):
        return run(image)
    low = cv2.resize(image, (low_w, low_h), interpolation=cv2.INTER_AREA)
    styled = run(low)
    if upsample == "bilinear":
        return np.clip(cv2.resize(styled, (width, height), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
    return guided_upsample(low, styled, image, radius=radius, eps=eps)


# ----------------------------------------------------------------------------- default size
def default_working_size(model: str | Path, input_hw: tuple[int, int] | None = None) -> WorkingSize:
    """The working size a model's look is defined at.

    In order: the artifact's ``<artifact>.report.json`` (its tier and input side), a
    ``manifest.json`` in its release folder that lists it, the artifact's own fixed input
    side, a checkpoint named after a tier (``search/<tier>.pt``) or with a ``<stem>.json``
    naming its tier (the tier table's resolution), else :data:`DEFAULT_WORKING_SIZE`.
    """
    path = Path(model)
    found = _from_report(path) or _from_manifest(path)
    if found:
        return found
    if input_hw:
        return WorkingSize(max(input_hw), f"the model's input size ({input_hw[0]}x{input_hw[1]})")
    tier = _checkpoint_tier(path)
    if tier:
        resolution = _tier_resolution(tier)
        if resolution:
            return WorkingSize(resolution, f"tier {tier}'s resolution (device_tiers/tiers.yaml)")
    return WorkingSize(DEFAULT_WORKING_SIZE, "default for a checkpoint of unknown tier (the demo preset's "
                                             "data.max_side); set --working-size to change it")


def _side_of(shape: list[int], layout: str) -> int:
    return max(shape[1], shape[2]) if layout == "NHWC" else max(shape[2], shape[3])


def _from_report(path: Path) -> WorkingSize | None:
    from mobile_pipeline.exporters.report import load_report, report_path_for

    report_path = report_path_for(path)
    if not report_path.is_file():
        return None
    try:
        report = load_report(report_path)
    except (ValueError, OSError):
        return None
    side = _side_of(report.input.shape, report.input.layout)
    tier = f"tier {report.tier}'s resolution" if report.tier else "the exported resolution"
    return WorkingSize(side, f"{tier} ({report_path.name})")


def _from_manifest(path: Path) -> WorkingSize | None:
    for folder in list(path.resolve().parents)[:3]:
        manifest = folder / "manifest.json"
        if not manifest.is_file():
            continue
        try:
            models = json.loads(manifest.read_text(encoding="utf-8")).get("models", [])
            relative = path.resolve().relative_to(folder).as_posix()
        except (ValueError, OSError, AttributeError):
            continue
        for entry in models:
            if entry.get("file") == relative and isinstance(entry.get("input"), dict):
                spec = entry["input"]
                side = _side_of(spec["shape"], spec.get("layout", "NCHW"))
                return WorkingSize(side, f"tier {entry.get('tier')}'s resolution ({manifest})")
    return None


def _checkpoint_tier(path: Path) -> str | None:
    from mobile_pipeline.config import TIER_NAMES

    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        try:
            tier = json.loads(sidecar.read_text(encoding="utf-8")).get("tier")
        except (ValueError, OSError, AttributeError):
            tier = None
        if isinstance(tier, str):
            return tier
    return path.stem if path.stem in TIER_NAMES else None


def _tier_resolution(tier: str) -> int | None:
    from mobile_pipeline.tiers.table import load_tier_table

    try:
        spec = load_tier_table().get(tier)
    except (ValueError, OSError):
        return None
    return int(spec.resolution) if spec else None

