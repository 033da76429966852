"""Nets: generator shapes from every registered and many random specs, registry lookup,
complexity counters against hand counts, width scaling to a MAC target, the frozen
discriminator backbone and its checkpoints, and ONNX exportability of the op set."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from mobile_pipeline.nets.complexity import count_macs, count_params, peak_activation_bytes, scale_to_macs
from mobile_pipeline.nets.discriminator import CheckpointError, build_discriminator, load_backbone_checkpoint
from mobile_pipeline.nets.generator import Generator, build_generator, image_pyramid
from mobile_pipeline.nets.registry import get_spec, list_specs, register_spec
from mobile_pipeline.nets.spec import (
    ACTIVATIONS, BLOCK_KINDS, FS_BRANCHES, FUSIONS, UPSAMPLE_MODES, ArchSpec, SpecError,
)


def random_spec(seed: int) -> ArchSpec:
    rng = random.Random(seed)
    stages = rng.randint(1, 3)
    return ArchSpec(
        stem_width=rng.randint(4, 12),
        encoder_widths=tuple(rng.randint(4, 16) for _ in range(stages)),
        num_blocks=rng.randint(0, 2),
        block=rng.choice(BLOCK_KINDS),
        fs_branches=tuple(rng.sample(FS_BRANCHES, rng.randint(1, len(FS_BRANCHES)))),
        fusion=tuple(rng.choice(FUSIONS) for _ in range(stages)),
        upsample=rng.choice(UPSAMPLE_MODES),
        act=rng.choice(ACTIVATIONS),
    )


def check_shapes(gen: Generator, x: torch.Tensor) -> None:
    n, _, h, w = x.shape
    out = gen(x)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    pyramid = gen.forward_pyramid(x)
    assert len(pyramid) == gen.spec.num_scales
    for k, level in enumerate(pyramid):
        m = gen.spec.num_scales - 1 - k
        assert level.shape == (n, 3, -(-h // 2**m), -(-w // 2**m))
    assert [t.shape for t in image_pyramid(x, gen.spec.num_scales)] == [t.shape for t in pyramid]
    feats = gen.encode(x)
    widths = [gen.spec.stem_width, *gen.spec.encoder_widths]
    assert [f.shape[1] for f in feats] == widths


# ---------------------------------------------------------------- generator
@pytest.mark.parametrize("name", list_specs())
def test_registered_specs_shapes(name: str) -> None:
    gen = build_generator(name).eval()
    f = gen.spec.downsample_factor
    with torch.no_grad():
        check_shapes(gen, torch.rand(1, 3, 4 * f, 2 * f))
        check_shapes(gen, torch.rand(1, 3, 37, 50))  # odd sizes: padded inside, cropped back


@pytest.mark.parametrize("seed", range(16))
def test_random_specs_shapes_and_gradients(seed: int) -> None:
    spec = random_spec(seed)
    gen = build_generator(spec)
    assert gen.spec == spec
    x = torch.rand(2, 3, 2 * spec.downsample_factor, 3 * spec.downsample_factor)
    check_shapes(gen, x)
    sum(level.mean() for level in gen.forward_pyramid(x)).backward()
    dead = [name for name, p in gen.named_parameters() if p.grad is None]
    assert not dead, f"{spec.to_string()}: parameters without gradient: {dead[:5]}"
    # At init the zeroed residual BatchNorms block the gradient into every branch (exactly 0);
    # with trained-like weights each branch of each block must receive a non-zero gradient.
    from mobile_pipeline.nets.generator import trained_like

    trained_like(gen, seed=seed).train()
    gen.zero_grad(set_to_none=True)
    sum(level.mean() for level in gen.forward_pyramid(x)).backward()
    silent = [name for name, p in gen.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert not silent, f"{spec.to_string()}: parameters with zero gradient: {silent[:5]}"


def test_generator_starts_near_identity_and_pyramid_matches_targets() -> None:
    gen = build_generator("stylizer-tiny").eval()
    x = torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        assert (gen(x) - x).abs().max() < 0.05
        for out, target in zip(gen.forward_pyramid(x), gen.image_pyramid(x)):
            assert (out - target).abs().max() < 0.05
    assert gen(x).shape == x.shape
    with pytest.raises(ValueError, match="N,3,H,W"):
        gen(torch.rand(1, 1, 32, 32))


def test_baseline_is_expressible_in_the_spec() -> None:
    spec = ArchSpec.from_string("s8_e8-16_b2xresnet_f-add.add_u-nearest_a-relu")
    gen = build_generator(spec)
    assert type(gen.body[0]).__name__ == "ResNetBlock"
    assert all(type(f).__name__ == "AddFusion" for f in gen.fusions)
    assert all(type(f).__name__ == "STA" for f in build_generator("stylizer-tiny").fusions)


# ----------------------------------------------------------------- registry
def test_registry_lookup_and_errors() -> None:
    assert {"stylizer-tiny", "stylizer-small", "stylizer-large"} <= set(list_specs())
    tiny = get_spec("stylizer-tiny")
    assert get_spec(tiny.to_string()) == tiny
    assert build_generator(tiny.to_string()).spec == tiny
    with pytest.raises(SpecError, match=r"Did you mean 'stylizer-tiny'\?.*stylizer-large"):
        get_spec("stylizer-tiyn")
    with pytest.raises(ValueError, match="already registered"):
        register_spec("stylizer-tiny", get_spec("stylizer-small"))
    with pytest.raises(ValueError, match="'_'"):
        register_spec("my_spec", tiny)


@pytest.mark.parametrize("text, field", [
    ("s16_e24-32_b2xdense_f-sta.sta_u-nearest_a-relu", "block"),
    ("s16_e24-32_b2xfs_br-dw3_f-sta_u-nearest_a-relu", "fusion"),
    ("s16_e24-32_b2xfs_br-dw3_f-sta.sta_u-cubic_a-relu", "upsample"),
    ("s2_e24-32_b2xfs_br-dw3_f-sta.sta_u-nearest_a-relu", "stem_width"),
    ("s16_e24-32_b2xfs_br-dw9_f-sta.sta_u-nearest_a-relu", "fs_branches"),
])
def test_spec_errors_name_the_field(text: str, field: str) -> None:
    with pytest.raises(SpecError, match=field):
        get_spec(text)


def test_registered_spec_budgets() -> None:
    tiny, small, large = (count_macs(n, (256, 256)) for n in ("stylizer-tiny", "stylizer-small", "stylizer-large"))
    assert 0.1e9 <= tiny <= 0.3e9  # issue cap: tiny <= 0.4 GMACs
    assert 0.5e9 <= small <= 1e9
    assert 3e9 <= large <= 4e9  # issue cap: large <= 4 GMACs
    assert count_macs("stylizer-tiny", (512, 512)) == 4 * tiny


# --------------------------------------------------------------- complexity
def test_count_macs_matches_hand_count() -> None:
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),              # 16*16 * 8 * 27
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8),    # 16*16 * 8 * 9
        nn.Conv2d(8, 4, 1, stride=2),               # 8*8 * 4 * 8
        nn.ConvTranspose2d(4, 2, 2, stride=2),      # 8*8*4 inputs * 2*2*2
        nn.Flatten(), nn.Linear(2 * 16 * 16, 10),   # 512 * 10
    )
    expected = 256 * 8 * 27 + 256 * 8 * 9 + 64 * 4 * 8 + 256 * 8 + 512 * 10
    assert count_macs(net, (16, 16)) == expected
    assert count_params(net) == sum(p.numel() for p in net.parameters())


def test_count_macs_spec_equals_model_and_scales() -> None:
    spec = get_spec("stylizer-tiny")
    gen = build_generator(spec)
    assert count_macs(spec, (64, 96)) == count_macs(gen, (64, 96))
    assert count_macs(spec, (128, 192)) == 4 * count_macs(spec, (64, 96))
    assert count_macs(spec, (60, 90)) == count_macs(spec, (64, 96))  # padded to multiples of 8
    assert count_params(spec) == sum(p.numel() for p in gen.parameters())


def test_peak_activation_bytes_hand_count_and_scaling() -> None:
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1))
    # At 4x4: conv2 holds its 8-ch input and 8-ch output (256 elements) + the 3-ch input (48).
    assert peak_activation_bytes(net, (4, 4)) == (128 + 128 + 48) * 4
    assert peak_activation_bytes(net, (4, 4), bytes_per_element=2) == (128 + 128 + 48) * 2
    tiny = peak_activation_bytes("stylizer-tiny", (128, 128))
    assert peak_activation_bytes("stylizer-tiny", (256, 256)) == 4 * tiny
    # At least the stem output and the finest skip must be live together.
    assert tiny >= 2 * get_spec("stylizer-tiny").stem_width * 128 * 128 * 4


@pytest.mark.parametrize("arch", [
    "s12_e16-32-48_b3xresnet_f-add.add.add_u-nearest_a-relu",
    "s12_e16-32-48_b3xfs_br-dw3.dil3.conv2_f-add.add.add_u-nearest_a-relu",
    "s12_e16-32-48_b3xresnet_f-sta.sta.sta_u-nearest_a-relu",
])
def test_scale_to_macs_lands_within_tolerance(arch: str) -> None:
    target = count_macs("stylizer-tiny")
    scaled = scale_to_macs(ArchSpec.from_string(arch), target, (256, 256), tolerance=0.05)
    assert abs(count_macs(scaled) - target) <= 0.05 * target
    original = ArchSpec.from_string(arch)
    assert (scaled.block, scaled.fusion, scaled.num_blocks, len(scaled.encoder_widths)) == (
        original.block, original.fusion, original.num_blocks, len(original.encoder_widths))


def test_scale_to_macs_unreachable_target_says_how_close() -> None:
    with pytest.raises(SpecError, match="closest is"):
        scale_to_macs(get_spec("stylizer-tiny"), 1000, (256, 256))


# ------------------------------------------------------------ discriminator
def test_discriminator_backbone_is_frozen_and_copied() -> None:
    gen = build_generator("s8_e8-16_b1xfs_br-dw3_f-sta.sta_u-nearest_a-relu")
    disc = build_discriminator(gen, spectral_norm=True)
    disc.train()
    assert not disc.backbone.training
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    logits = disc(x)
    assert [t.shape for t in logits] == [(2, 1, 4, 4), (2, 1, 2, 2)]
    sum(t.mean() for t in logits).backward()
    assert all(p.grad is None and not p.requires_grad for p in disc.backbone.parameters())
    assert all(p.grad is not None for p in disc.heads.parameters())
    assert x.grad is not None and x.grad.abs().sum() > 0  # the generator gets a signal through it
    before = disc.backbone.stem.conv.weight.clone()
    with torch.no_grad():
        gen.stem.conv.weight.add_(1.0)
    torch.testing.assert_close(disc.backbone.stem.conv.weight, before)


def test_discriminator_loads_checkpoints_and_rejects_mismatch(tmp_path: Path) -> None:
    spec = get_spec("s8_e8-16_b1xfs_br-dw3_f-sta.sta_u-nearest_a-relu")
    gen = build_generator(spec)
    lean, plain = tmp_path / "generator.pt", tmp_path / "plain.pt"
    torch.save({"arch": spec.to_string(), "state_dict": gen.state_dict()}, lean)
    torch.save(gen.state_dict(), plain)
    lightning = tmp_path / "last.ckpt"  # StylizerModule layout: prefixed keys, arch in hparams
    torch.save({"state_dict": {f"generator.{k}": v for k, v in gen.state_dict().items()},
                "hyper_parameters": {"arch": spec.to_string()}}, lightning)
    for disc in (build_discriminator(lean), build_discriminator(plain, spec=spec), build_discriminator(lightning)):
        torch.testing.assert_close(disc.backbone.stem.conv.weight, gen.stem.conv.weight)
    other = "s8_e8-24_b1xfs_br-dw3_f-sta.sta_u-nearest_a-relu"
    with pytest.raises(CheckpointError, match=r"plain\.pt: weights do not fit .*shape mismatch"):
        build_discriminator(plain, spec=other)
    with pytest.raises(CheckpointError, match="no architecture; pass spec="):
        load_backbone_checkpoint(plain)
    with pytest.raises(CheckpointError, match="not found"):
        build_discriminator(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"junk\.pt: cannot read"):
        build_discriminator(tmp_path / "junk.pt")
    with pytest.raises(ValueError, match="needs spec="):
        build_discriminator(None)


# ------------------------------------------------------------------- export
def test_onnx_export_parity() -> None:
    """The op set exports (dynamo) and runs in onnxruntime with the same numbers."""
    ort = pytest.importorskip("onnxruntime")
    # One stage keeps the graph (and the ~10 s dynamo export) small while covering the op set:
    # depthwise, dilated, 5x5, full convs, STA (concat, sigmoid, sub, mul, add), resize, clip.
    spec = ArchSpec.from_string("s8_e8_b1xfs_br-dw3.dil3.conv2.dw5_f-sta_u-bilinear_a-relu6")
    gen = build_generator(spec).eval()
    x = torch.rand(1, 3, 32, 32)
    program = torch.onnx.export(gen, (x,), dynamo=True, verbose=False)
    ops = {node.op_type for node in program.model_proto.graph.node}
    allowed = {"Conv", "ConvTranspose", "Relu", "Clip", "Sigmoid", "Add", "Sub", "Mul", "Concat", "Resize"}
    assert ops <= allowed, f"non export-friendly ops: {ops - allowed}"
    session = ort.InferenceSession(program.model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        want = gen(x).numpy()
    assert np.abs(got - want).max() < 1e-4


def test_whitebox_peer_matches_its_published_cost() -> None:
    """The rebuilt White-box generator is the cost baseline: it must count the paper's 8.2 GMACs."""
    from mobile_pipeline.nets.complexity import count_macs
    from mobile_pipeline.nets.peers import WhiteBoxGenerator

    peer = WhiteBoxGenerator().eval()
    assert abs(count_macs(peer, (256, 256)) / 1e9 - 8.2) < 0.1
    with torch.no_grad():
        out = peer(torch.rand(1, 3, 64, 96))
    assert out.shape == (1, 3, 64, 96) and float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_trained_like_keeps_every_conv_in_the_converted_graph() -> None:
    """A fresh generator's zeroed residual BatchNorms fold to all-zero convs that the converter
    drops; benchmarks time `trained_like` models so they see the graph a trained one runs."""
    from collections import Counter

    from mobile_pipeline.exporters.torch2tflite import export_float, list_ops
    from mobile_pipeline.nets.generator import trained_like

    spec = "s8_e8-8_b2xresnet_f-add.add_u-nearest_a-relu"
    fresh = Counter(list_ops(export_float(build_generator(spec).eval(), (32, 32), channel_last_io=False))[0])
    model = trained_like(build_generator(spec), seed=1)
    assert all(float(m.weight.abs().min()) > 0 for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    trained = Counter(list_ops(export_float(model, (32, 32), channel_last_io=False))[0])
    # Each zeroed block loses both convs (the first one's output becomes dead code).
    assert trained["CONV_2D"] == fresh["CONV_2D"] + 2 * 2
