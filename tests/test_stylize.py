"""HD tiling (no seams, matches a whole-image run) and the stylize command on image/folder/video."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from mobile_pipeline.exporters.runtimes import TorchRunner
from mobile_pipeline.exporters.tiling import seam_ratio, stylize_tiled, tile_starts
from mobile_pipeline.nets.generator import build_generator


@pytest.fixture(scope="module")
def generator():
    torch.set_num_threads(1)
    torch.manual_seed(1)
    gen = build_generator("stylizer-tiny").eval()
    with torch.no_grad():  # a non-identity look (the RGB head starts at zero)
        for param in gen.heads[-1].parameters():
            param.normal_(0.0, 0.3)
    return gen


@pytest.fixture(scope="module")
def photo():
    import skimage.data

    return cv2.resize(skimage.data.astronaut(), (1000, 700), interpolation=cv2.INTER_AREA)


def test_tile_starts_cover_with_overlap():
    starts = tile_starts(1000, 128, 32)
    assert starts[0] == 0 and starts[-1] == 1000 - 128
    assert all(b - a <= 128 - 32 for a, b in zip(starts, starts[1:]))
    assert tile_starts(100, 128, 32) == [0]


def test_tiled_matches_whole_image_away_from_borders(generator, photo):
    image = photo.astype(np.float32) / 255.0
    runner = TorchRunner(module=generator)
    whole = runner.run(image.transpose(2, 0, 1)[None])[0].transpose(1, 2, 0)
    tiled = stylize_tiled(runner.run, image, tile=128, overlap=32, batch=8)
    assert tiled.shape == image.shape
    assert np.abs(whole - image).mean() > 0.02  # the model really changes the photo
    margin = 32
    diff = np.abs(tiled - whole)[margin:-margin, margin:-margin]
    assert diff.mean() < 2e-3 and np.percentile(diff, 99) < 2e-2
    for axis, length in ((1, 1000), (0, 700)):
        ratio = seam_ratio(tiled, tile_starts(length, 128, 32), 128, axis=axis)
        reference = seam_ratio(whole, tile_starts(length, 128, 32), 128, axis=axis)
        assert ratio < reference + 0.05, (axis, ratio, reference)


def test_blending_removes_seams_of_a_context_sensitive_model(photo):
    """A model whose output depends on the whole tile (brightness normalised per tile)
    shows hard steps with naive tiling; raised-cosine blending removes them."""
    image = photo.astype(np.float32) / 255.0

    def per_tile_contrast(batch: np.ndarray) -> np.ndarray:
        mean = batch.mean(axis=(1, 2, 3), keepdims=True)
        return np.clip(0.5 + (batch - mean) * 1.5, 0, 1)

    for axis, length in ((1, 1000), (0, 700)):
        starts = tile_starts(length, 128, 32)
        natural = seam_ratio(image, starts, 128, axis=axis)  # the photo's own edges on those lines
        hard = seam_ratio(stylize_tiled(per_tile_contrast, image, 128, 32, blend="none"), starts, 128, axis=axis)
        smooth = seam_ratio(stylize_tiled(per_tile_contrast, image, 128, 32, blend="cosine"), starts, 128, axis=axis)
        assert hard > 3 * natural  # the measure sees seams when they exist
        assert smooth < 1.15 * natural, (axis, smooth, natural)


def test_small_image_is_padded(generator):
    runner = TorchRunner(module=generator)
    image = np.random.default_rng(0).random((20, 40, 3), dtype=np.float32)
    out = stylize_tiled(runner.run, image, tile=32, overlap=8)
    assert out.shape == image.shape and np.isfinite(out).all()


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    """A 32 px ONNX artifact of the generator test_export.py uses (same seed and weights),
    so when both files run in one session the exporter's float cache makes this free."""
    from mobile_pipeline.exporters.api import export_variant

    torch.manual_seed(0)
    gen = build_generator("stylizer-tiny").eval()
    with torch.no_grad():
        for param in gen.heads[-1].parameters():
            param.normal_(0.0, 0.1)
    out = tmp_path_factory.mktemp("stylize_model")
    report = export_variant(gen, "onnx", "fp32", out, input_hw=(32, 32), stem="s")
    assert report.passed, report.reasons
    return out / report.artifact, gen


def test_cli_stylize_image_folder_video(onnx_model, photo, tmp_path, capsys):
    from mobile_pipeline.cli import main
    from mobile_pipeline.train.checkpoint import save_generator

    onnx_model, generator = onnx_model
    small = cv2.cvtColor(cv2.resize(photo, (200, 140)), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(tmp_path / "a.png"), small)
    assert main(["stylize", str(tmp_path / "a.png"), "--model", str(onnx_model), "--full-res"]) == 0
    out = cv2.imread(str(tmp_path / "a_stylized.png"))
    assert out.shape == small.shape and np.abs(out.astype(int) - small).mean() > 1

    # At full resolution, the checkpoint on the whole image agrees with the tiled ONNX artifact.
    ckpt = save_generator(generator, tmp_path / "g.pt")
    assert main(["stylize", str(tmp_path / "a.png"), "--model", str(ckpt), "--out", str(tmp_path / "b.png"),
                 "--full-res"]) == 0
    whole = cv2.imread(str(tmp_path / "b.png")).astype(int)
    assert np.abs(whole - out)[16:-16, 16:-16].mean() < 3

    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("x.jpg", "y.png"):
        cv2.imwrite(str(folder / name), small)
    assert main(["stylize", str(folder), "--model", str(onnx_model), "--out", str(tmp_path / "outdir")]) == 0
    assert sorted(p.name for p in (tmp_path / "outdir").iterdir()) == ["x.png", "y.png"]

    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (96, 64))
    for k in range(6):
        writer.write(np.roll(cv2.resize(small, (96, 64)), 4 * k, axis=1))
    writer.release()
    capsys.readouterr()
    assert main(["stylize", str(video), "--model", str(onnx_model)]) == 0
    text = capsys.readouterr().out
    assert "6 frame(s)" in text and "frames/s" in text
    capture = cv2.VideoCapture(str(tmp_path / "clip_stylized.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    capture.release()
    leftovers = [p.name for p in tmp_path.iterdir() if ".tmp" in p.name]
    assert leftovers == []


def test_cli_stylize_errors(onnx_model, tmp_path, capsys):
    from mobile_pipeline.cli import main

    onnx_model, _ = onnx_model
    assert main(["stylize", str(tmp_path / "missing.png"), "--model", str(onnx_model)]) == 2
    assert "input not found" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("hi")
    assert main(["stylize", str(tmp_path / "notes.txt"), "--model", str(onnx_model)]) == 2
    assert "unknown input type" in capsys.readouterr().err
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((80, 80, 3), np.uint8))
    assert main(["stylize", str(tmp_path / "a.png"), "--model", str(onnx_model), "--tile", "64"]) == 2
    assert "takes 32 px tiles" in capsys.readouterr().err
