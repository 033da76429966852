"""Draw docs/teacher_before_after.png: bundled photos next to the default cartoon teacher.

The teacher defines the look the whole product learns, so the README shows it. The photos
are processed at the data stage's demo size (longer side 384, as ``--preset demo``) and the
figure is downscaled afterwards, exactly as a user would see a dataset target.

    .venv/bin/python scripts/make_teacher_figure.py [--out docs/teacher_before_after.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from mobile_pipeline.data.images import read_image, resize_max_side
from mobile_pipeline.data.sources import bundled_photo_dir
from mobile_pipeline.data.teachers import cartoon_filter
from mobile_pipeline.utils.atomic import atomic_output

PHOTOS = ("chelsea.png", "coffee.png", "motorcycle_left.png")
PROCESS_SIDE = 384  # the demo preset's data.max_side
ROW_HEIGHT = 164
MAX_BYTES = 400 * 1024  # commit-worthy: the figure lives in git
GAP = 6


def figure(photos: tuple[str, ...] = PHOTOS) -> np.ndarray:
    """Rows of ``photo | cartoon teacher`` on a white background (uint8 RGB)."""
    rows = []
    for name in photos:
        photo = resize_max_side(read_image(bundled_photo_dir() / name), PROCESS_SIDE)
        cartoon = cartoon_filter(photo)
        width = round(photo.shape[1] * ROW_HEIGHT / photo.shape[0])
        small = [cv2.resize(im, (width, ROW_HEIGHT), interpolation=cv2.INTER_AREA) for im in (photo, cartoon)]
        gap = np.full((ROW_HEIGHT, GAP, 3), 255, np.uint8)
        rows.append(np.concatenate([small[0], gap, small[1]], axis=1))
    full_width = max(row.shape[1] for row in rows)
    padded = []
    for row in rows:
        padded.append(np.pad(row, ((0, GAP), (0, full_width - row.shape[1]), (0, 0)), constant_values=255))
    return np.concatenate(padded, axis=0)[:-GAP]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "teacher_before_after.png")
    args = parser.parse_args()
    image = figure()
    # Full colour (a 256-colour palette visibly bands the photos), maximum PNG compression.
    ok, data = cv2.imencode(".png", np.ascontiguousarray(image[:, :, ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok or len(data) > MAX_BYTES:
        raise SystemExit(f"figure is {len(data) // 1024} KB > {MAX_BYTES // 1024} KB; lower ROW_HEIGHT")
    with atomic_output(args.out) as tmp:
        tmp.write_bytes(data.tobytes())
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB, {image.shape[1]}x{image.shape[0]})")


if __name__ == "__main__":
    main()
