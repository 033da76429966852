"""HD vs preview: does a 2048 px photo get the same look as its 512 px preview?

For each model and each bundled photo, an "HD photo" (the photo Lanczos-upscaled to a
2048 px longer side plus sigma-2 sensor noise: no real HD photos ship offline) and its
"preview" (the HD photo area-downsized to 512 px) are stylized two ways:

* ``working scale``: ``stylize``'s default, the model at its working size (its tier's
  resolution) and guided upsampling back to full size (``bilinear`` too, for the detail column);
* ``full res``: ``stylize --full-res``, the model over the full-resolution image in tiles (the old default).

Every result is then area-downsized to the working scale and compared there with the
cartoon teacher applied at the working scale (the look the phone shows):

* PSNR dB against that teacher image;
* ink %: pixels at least 25 grey levels darker than their neighbourhood (Gaussian sigma 2
  px) — outlines;
* flat %: pixels whose luma gradient (Sobel) is below 6 grey levels per px — flat regions;
* detail (at full size): mean luma gradient of the result on the photo's strongest 10% edges,
  divided by the photo's own there (1 = as sharp as the photo; upsampling blur lowers it).

The ink and flat measures are local definitions of this script until
``mobile_pipeline/quality/look.py`` lands; the numbers compare rows of this table only.

    .venv/bin/python benchmarks/bench_hd.py --model runs/train/generator.pt
    .venv/bin/python benchmarks/bench_hd.py --model export/<id>/cpu/cpu_fp32.onnx --model export/<id>/npu/npu_fp32.onnx
    .venv/bin/python benchmarks/bench_hd.py --model gen.pt --working-size 256 --hd 4000

Seconds are wall-clock per image on this machine (inflated when it is shared).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from mobile_pipeline.utils.text_table import text_table

INK_LEVELS = 25.0
FLAT_LEVELS = 6.0
EDGE_QUANTILE = 0.9


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _gradient(luma: np.ndarray) -> np.ndarray:
    import cv2

    gx = cv2.Sobel(luma, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(luma, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    return np.hypot(gx, gy)


def look(rgb: np.ndarray) -> tuple[float, float]:
    """(ink %, flat %) of a uint8 image (local definitions, see the module docstring)."""
    import cv2

    luma = _luma(rgb)
    ink = (cv2.GaussianBlur(luma, (0, 0), 2.0) - luma) > INK_LEVELS
    flat = _gradient(luma) < FLAT_LEVELS
    return float(ink.mean() * 100), float(flat.mean() * 100)


def detail(result: np.ndarray, photo: np.ndarray) -> float:
    """Result gradient / photo gradient on the photo's strongest edges (full size)."""
    g_photo, g_result = _gradient(_luma(photo)), _gradient(_luma(result))
    edges = g_photo >= np.quantile(g_photo, EDGE_QUANTILE)
    return float(g_result[edges].mean() / max(g_photo[edges].mean(), 1e-6))


def hd_photos(hd: int, preview: int, seed: int = 0) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, HD photo, preview) per bundled photo."""
    import cv2

    from mobile_pipeline.data.images import read_image
    from mobile_pipeline.data.sources import BUNDLED_PHOTOS, bundled_photo_dir
    from mobile_pipeline.exporters.working_scale import working_hw

    rng = np.random.default_rng(seed)
    out = []
    for name in BUNDLED_PHOTOS:
        photo = read_image(bundled_photo_dir() / name)
        scale = hd / max(photo.shape[:2])
        size = (round(photo.shape[1] * scale), round(photo.shape[0] * scale))
        big = cv2.resize(photo, size, interpolation=cv2.INTER_LANCZOS4).astype(np.float32)
        big = np.clip(np.round(big + rng.normal(0.0, 2.0, big.shape)), 0, 255).astype(np.uint8)
        ph, pw = working_hw(big.shape[0], big.shape[1], preview)
        out.append((Path(name).stem, big, cv2.resize(big, (pw, ph), interpolation=cv2.INTER_AREA)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, action="append", required=True, help="artifact or checkpoint (repeatable)")
    parser.add_argument("--working-size", type=int, default=None, help="default: each model's tier resolution")
    parser.add_argument("--hd", type=int, default=2048, help="longer side of the HD photos (default 2048)")
    parser.add_argument("--preview", type=int, default=512, help="longer side of the previews (default 512)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-full-res-hd", action="store_true", help="skip the slow full-res run at HD size")
    args = parser.parse_args(argv)

    import cv2
    import torch

    from mobile_pipeline.data.teachers import cartoon_filter
    from mobile_pipeline.exporters.runtimes import load_runner
    from mobile_pipeline.exporters.stylize import stylize_array
    from mobile_pipeline.exporters.working_scale import default_working_size, working_hw
    from mobile_pipeline.train.metrics import psnr

    torch.set_num_threads(args.threads)
    photos = hd_photos(args.hd, args.preview)
    for model in args.model:
        runner = load_runner(model, num_threads=args.threads)
        working = default_working_size(model, runner.input_hw)
        side = args.working_size or working.side
        source = "--working-size" if args.working_size else working.source
        methods = [("working scale, guided", side, "guided"), ("working scale, bilinear", side, "bilinear"),
                   ("full res (tiles)", None, "guided")]
        sums: dict[tuple[str, str], list[list[float]]] = {}
        teacher_looks, teacher_full_looks = [], []
        for name, big, small in photos:
            wh = working_hw(big.shape[0], big.shape[1], side)
            at_working = lambda img: cv2.resize(img, (wh[1], wh[0]), interpolation=cv2.INTER_AREA)  # noqa: E731
            teacher = cartoon_filter(at_working(big))
            teacher_looks.append(look(teacher))
            teacher_full_looks.append(look(at_working(cartoon_filter(small))))
            for label, work_side, upsample in methods:
                for size_name, image in ((f"preview {args.preview}", small), (f"HD {args.hd}", big)):
                    if work_side is None and image is big and args.skip_full_res_hd:
                        continue
                    started = time.perf_counter()
                    result = stylize_array(runner, image, working_size=work_side, upsample=upsample)
                    seconds = time.perf_counter() - started
                    down = at_working(result)
                    ink, flat = look(down)
                    sums.setdefault((label, size_name), []).append(
                        [psnr(down / 255.0, teacher / 255.0), ink, flat, detail(result, image), seconds])
        rows = []
        for (label, size_name), values in sums.items():
            m = np.mean(np.array(values), axis=0)
            rows.append([label, size_name, f"{m[0]:.2f}", f"{m[1]:.2f}", f"{m[2]:.1f}", f"{m[3]:.2f}", f"{m[4]:.2f}"])
        t_ink, t_flat = np.mean(teacher_looks, axis=0)
        tp_ink, tp_flat = np.mean(teacher_full_looks, axis=0)
        rows.append(["teacher at the working scale", "-", "-", f"{t_ink:.2f}", f"{t_flat:.1f}", "-", "-"])
        rows.append([f"teacher at preview {args.preview} (full res)", "-", "-", f"{tp_ink:.2f}", f"{tp_flat:.1f}", "-", "-"])
        print(f"\n== {model} — working size {side} px (longer side; from {source}); {len(photos)} photos, "
              f"metrics at the working scale")
        print(text_table(["method", "input", "PSNR vs teacher dB", "ink %", "flat %", "detail", "s/image"], rows))
    print("\nink/flat: this script's local definitions (see the docstring), simpler than quality/look.py's; s/image is wall-clock "
          "on this machine (inflated when it is shared)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
