"""Working scale (size kept, detail kept, default size per model), video round trip, audio check, few-shot."""

from __future__ import annotations

import json
import struct

import cv2
import numpy as np
import pytest
import torch

from mobile_pipeline.exporters.runtimes import TorchRunner
from mobile_pipeline.exporters.stylize import stylize_array
from mobile_pipeline.exporters.video import audio_track, probe
from mobile_pipeline.exporters.working_scale import (
    DEFAULT_WORKING_SIZE,
    default_working_size,
    guided_upsample,
    stylize_at_working_scale,
    working_hw,
)
from mobile_pipeline.nets.generator import build_generator


@pytest.fixture(scope="module")
def generator():
    torch.set_num_threads(1)
    torch.manual_seed(1)
    gen = build_generator("stylizer-tiny").eval()
    with torch.no_grad():
        for param in gen.heads[-1].parameters():
            param.normal_(0.0, 0.3)
    return gen


@pytest.fixture(scope="module")
def photo():
    import skimage.data

    return skimage.data.astronaut()


def test_working_hw_keeps_aspect_and_never_upscales():
    assert working_hw(3000, 4000, 256) == (192, 256)
    assert working_hw(100, 80, 256) == (100, 80)


@pytest.mark.parametrize("size", [(301, 203), (97, 410)])
def test_working_scale_output_has_the_input_size(generator, photo, size):
    rgb = cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
    out = stylize_array(TorchRunner(module=generator), rgb, working_size=64)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - rgb).mean() > 1  # the model did run


def test_working_scale_runs_the_model_at_the_working_size(photo):
    seen = []

    def run(image):
        seen.append(image.shape)
        return image

    out = stylize_at_working_scale(run, photo.astype(np.float32) / 255.0, 128)
    assert seen == [(128, 128, 3)] and out.shape == photo.shape


def test_guided_upsampling_keeps_detail_and_flat_stays_flat(photo):
    image = photo.astype(np.float32) / 255.0
    low = cv2.resize(image, (128, 128), interpolation=cv2.INTER_AREA)
    # A model that keeps the photo: guided upsampling brings back the full-size edges.
    guided = guided_upsample(low, low, image)
    bilinear = cv2.resize(low, (512, 512), interpolation=cv2.INTER_LINEAR)
    assert np.abs(guided - image).mean() < 0.8 * np.abs(bilinear - image).mean()
    # A model that paints one flat colour: the result is that colour, no texture leaks back.
    flat = np.full_like(low, 0.25)
    np.testing.assert_allclose(guided_upsample(low, flat, image), 0.25, atol=1e-3)


def test_default_working_size(tmp_path):
    from mobile_pipeline.train.checkpoint import save_generator

    gen = build_generator("stylizer-tiny")
    plain = save_generator(gen, tmp_path / "generator.pt")
    assert default_working_size(plain).side == DEFAULT_WORKING_SIZE
    tier_ckpt = save_generator(gen, tmp_path / "gpu.pt")  # search/<tier>.pt of a release
    assert default_working_size(tier_ckpt).side == 320  # device_tiers/tiers.yaml gpu resolution
    assert default_working_size(tmp_path / "m.onnx", input_hw=(96, 96)).side == 96
    manifest = {"models": [{"file": "npu/m.tflite", "tier": "npu",
                            "input": {"shape": [1, 384, 384, 3], "layout": "NHWC"}}]}
    (tmp_path / "npu").mkdir()
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    found = default_working_size(tmp_path / "npu" / "m.tflite", input_hw=(64, 64))
    assert found.side == 384 and "npu" in found.source


def _write_clip(path, frames=7, fps=12.0, size=(96, 64)):
    import skimage.data

    base = cv2.cvtColor(cv2.resize(skimage.data.chelsea(), (size[0] + 40, size[1])), cv2.COLOR_RGB2BGR)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for k in range(frames):
        writer.write(np.ascontiguousarray(base[:, 4 * k:4 * k + size[0]]))
    writer.release()
    return path


def test_video_round_trip_keeps_frames_fps_and_size(generator, tmp_path, capsys):
    from mobile_pipeline.cli import main
    from mobile_pipeline.train.checkpoint import save_generator

    clip = _write_clip(tmp_path / "clip.mp4")
    ckpt = save_generator(generator, tmp_path / "g.pt")
    capsys.readouterr()
    assert main(["stylize", str(clip), "--model", str(ckpt), "--working-size", "48", "--no-progress"]) == 0
    text = capsys.readouterr().out
    info = probe(tmp_path / "clip_stylized.mp4")
    assert (info.frames, info.fps, info.width, info.height) == (7, 12.0, 96, 64)
    assert "7 frame(s)" in text and "frames/s" in text and "kept 96x64 at 12 frames/s" in text
    assert "longer side 48 px" in text
    assert audio_track(clip) is False  # OpenCV writes no audio: nothing was dropped
    assert "audio" not in text


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def test_audio_track_detection(tmp_path):
    hdlr = lambda handler: _box(b"hdlr", b"\0" * 8 + handler + b"\0" * 12)  # noqa: E731
    video_trak = _box(b"trak", _box(b"mdia", hdlr(b"vide")))
    sound_trak = _box(b"trak", _box(b"mdia", hdlr(b"soun")))
    ftyp = _box(b"ftyp", b"isom\0\0\0\0")
    (tmp_path / "a.mp4").write_bytes(ftyp + _box(b"moov", video_trak + sound_trak) + _box(b"mdat", b"x" * 32))
    (tmp_path / "v.mov").write_bytes(ftyp + _box(b"moov", video_trak))
    assert audio_track(tmp_path / "a.mp4") is True
    assert audio_track(tmp_path / "v.mov") is False
    avi = b"RIFF\0\0\0\0AVI LIST\0\0\0\0hdrlstrh\x38\0\0\0auds"
    (tmp_path / "s.avi").write_bytes(avi)
    assert audio_track(tmp_path / "s.avi") is True
    (tmp_path / "x.mkv").write_bytes(b"\x1a\x45\xdf\xa3")
    assert audio_track(tmp_path / "x.mkv") is None


def test_audio_drop_is_reported(generator, tmp_path, capsys, monkeypatch):
    from mobile_pipeline.cli import main
    from mobile_pipeline.exporters import video
    from mobile_pipeline.train.checkpoint import save_generator

    clip = _write_clip(tmp_path / "clip.mp4", frames=2)
    ckpt = save_generator(generator, tmp_path / "g.pt")
    monkeypatch.setattr(video, "audio_track", lambda path: True)
    assert main(["stylize", str(clip), "--model", str(ckpt), "--no-progress"]) == 0
    assert "has an audio track; it was NOT copied" in capsys.readouterr().out


def test_few_shot_from_keyframes_in_one_command(tmp_path, capsys):
    from mobile_pipeline.cli import main
    from mobile_pipeline.data.teachers import cartoon_filter
    from mobile_pipeline.exporters.video import read_frames

    clip = _write_clip(tmp_path / "clip.mp4", frames=6)
    keys = tmp_path / "keys"
    assert main(["stylize", str(clip), "--extract", "0,3", "--out", str(keys)]) == 0
    assert sorted(p.name for p in keys.iterdir()) == ["0000.png", "0003.png"]
    (keys / "0003.png").unlink()  # the artist hands back only the painted frame; 3 is read from the clip
    for index, frame in read_frames(clip, {0, 3}).items():
        cv2.imwrite(str(keys / f"{index:04d}_styled.png"), cv2.cvtColor(cartoon_filter(frame), cv2.COLOR_RGB2BGR))
    capsys.readouterr()
    assert main(["stylize", str(clip), "--keyframes", str(keys), "--steps", "2", "--preset", "tiny",
                 "--arch", "s8_e8-8_b1xfs_br-dw3.dil3_f-sta.add_u-nearest_a-relu", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "trained on 2 keyframe(s) for 2 steps" in text
    info = probe(tmp_path / "clip_stylized.mp4")
    assert (info.frames, info.width, info.height) == (6, 96, 64)
    assert (tmp_path / "clip_stylized_fewshot" / "train" / "generator.pt").is_file()


def test_usage_errors(tmp_path, capsys):
    from mobile_pipeline.cli import main

    clip = _write_clip(tmp_path / "clip.mp4", frames=2)
    assert main(["stylize", str(clip)]) == 2
    assert "--model is required" in capsys.readouterr().err
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "cat_styled.png").write_bytes(cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1])
    assert main(["stylize", str(clip), "--keyframes", str(tmp_path / "keys"), "--no-progress"]) == 2
    assert "has no original frame" in capsys.readouterr().err
    assert main(["stylize", str(clip), "--extract", "0,9"]) == 2
    assert "do not exist" in capsys.readouterr().err
    assert main(["stylize", str(clip), "--model", str(clip), "--working-size", "64", "--full-res"]) == 2
    assert "contradict" in capsys.readouterr().err
