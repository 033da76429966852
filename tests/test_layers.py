"""Layers: shapes, the STA gate's range and limits, FS branch structure and cost, upsampling."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mobile_pipeline.layers import (
    STA, AddFusion, ConcatFusion, ConvNormAct, FSBlock, ResNetBlock, Upsample, make_act, make_block,
    make_fusion,
)

torch.manual_seed(0)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("kernel, stride, dilation, groups", [(3, 1, 1, 1), (3, 2, 1, 1), (3, 1, 2, 8), (5, 1, 1, 8), (1, 1, 1, 1)])
def test_conv_norm_act_same_padding(kernel: int, stride: int, dilation: int, groups: int) -> None:
    layer = ConvNormAct(8, 16 if groups == 1 else 8, kernel, stride=stride, dilation=dilation, groups=groups)
    out = layer(torch.rand(2, 8, 15, 20))
    assert out.shape[-2:] == (-(-15 // stride), -(-20 // stride))
    assert layer.conv.bias is None  # BN carries the bias; it folds at export
    assert (out >= 0).all()  # ReLU at the end


def test_conv_norm_act_linear_and_errors() -> None:
    layer = ConvNormAct(4, 4, 3, norm=False, act=None)
    assert len(layer) == 1 and layer.conv.bias is not None
    with pytest.raises(ValueError, match="kernel_size"):
        ConvNormAct(4, 4, 2)
    with pytest.raises(ValueError, match="groups"):
        ConvNormAct(4, 6, 3, groups=4)
    with pytest.raises(ValueError, match="act: 'gelu'"):
        make_act("gelu")
    assert isinstance(make_act("relu6"), nn.ReLU6) and isinstance(make_act(None), nn.Identity)


def test_sta_gate_in_unit_interval_and_shapes() -> None:
    sta = STA(skip_channels=8, deep_channels=12, out_channels=10)
    skip, deep = torch.randn(2, 8, 9, 11) * 5, torch.randn(2, 12, 9, 11) * 5
    gate = sta.gate_map(skip, deep)
    assert gate.shape == (2, 1, 9, 11)
    assert gate.min() >= 0 and gate.max() <= 1
    assert sta(skip, deep).shape == (2, 10, 9, 11)
    per_channel = STA(8, 8, 8, gate_channels=8, hidden_channels=0)
    assert per_channel.gate_map(skip, skip).shape == (2, 8, 9, 11)
    with pytest.raises(ValueError, match="gate_channels"):
        STA(8, 8, 8, gate_channels=3)


@pytest.mark.parametrize("bias, expect", [(50.0, "skip"), (-50.0, "deep")])
def test_sta_saturated_gate_selects_one_input(bias: float, expect: str) -> None:
    # Equal widths: no projections, so a saturated gate must return an input unchanged.
    sta = STA(6, 6, 6).eval()
    last = sta.gate[-2]
    nn.init.zeros_(last.weight)
    nn.init.constant_(last.bias, bias)
    skip, deep = torch.rand(1, 6, 5, 7), torch.rand(1, 6, 5, 7)
    out = sta(skip, deep)
    torch.testing.assert_close(out, skip if expect == "skip" else deep, atol=1e-6, rtol=0)


def test_fusions_shapes_and_add_is_sum() -> None:
    skip, deep = torch.rand(2, 8, 6, 6), torch.rand(2, 8, 6, 6)
    for kind in ("sta", "add", "concat"):
        assert make_fusion(kind, 8, 8, 8)(skip, deep).shape == (2, 8, 6, 6)
    torch.testing.assert_close(AddFusion(8, 8, 8)(skip, deep), skip + deep)
    assert isinstance(make_fusion("concat", 8, 4, 5), ConcatFusion)
    assert make_fusion("concat", 8, 4, 5)(skip, torch.rand(2, 4, 6, 6)).shape == (2, 5, 6, 6)
    with pytest.raises(ValueError, match="fusion: 'mul'"):
        make_fusion("mul", 8, 8, 8)


def _fs_expected_params(c: int, b: int, branches: tuple[str, ...]) -> int:
    """Hand count: convs without bias (BN follows), each BN has 2 params per channel."""
    total = 0
    for kind in branches:
        if kind in ("dw3", "dil3"):
            total += c * 9 + 2 * c + c * b + 2 * b
        elif kind == "dw5":
            total += c * 25 + 2 * c + c * b + 2 * b
        else:  # conv2: 1x1 reduce + 3x3
            total += c * b + 2 * b + b * b * 9 + 2 * b
    return total + len(branches) * b * c + 2 * c  # fusion 1x1 + BN


@pytest.mark.parametrize("branches", [("dw3",), ("dw3", "dil3", "conv2"), ("dil3", "dw5"), ("dw3", "dil3", "conv2", "dw5")])
def test_fs_block_branches_params_and_gradients(branches: tuple[str, ...]) -> None:
    block = FSBlock(16, branches)
    assert len(block.branches) == len(branches) and block.branch_names == branches
    assert n_params(block) == _fs_expected_params(16, 8, branches)
    x = torch.rand(2, 16, 12, 12, requires_grad=True)
    out = block(x)
    assert out.shape == x.shape
    out.square().mean().backward()
    for name, branch in zip(branches, block.branches):
        grads = [p.grad for p in branch.parameters()]
        assert all(g is not None and g.abs().sum() > 0 for g in grads), f"no gradient in branch {name}"


def test_fs_dilated_branch_has_dilation_and_errors() -> None:
    block = FSBlock(8, ("dil3",), dilation=3)
    conv = block.branches[0][0].conv
    assert conv.dilation == (3, 3) and conv.groups == 8
    with pytest.raises(ValueError, match="fs_branches: 'dw7'"):
        FSBlock(8, ("dw7",))
    with pytest.raises(ValueError, match="duplicates"):
        FSBlock(8, ("dw3", "dw3"))
    with pytest.raises(ValueError, match="at least one"):
        FSBlock(8, ())


def test_resnet_block_and_factory() -> None:
    block = ResNetBlock(8)
    assert n_params(block) == 2 * (8 * 8 * 9 + 2 * 8)
    x = torch.rand(1, 8, 7, 7)
    assert block(x).shape == x.shape
    assert isinstance(make_block("fs", 8), FSBlock) and isinstance(make_block("resnet", 8), ResNetBlock)
    with pytest.raises(ValueError, match="block: 'dense'"):
        make_block("dense", 8)


@pytest.mark.parametrize("mode", ["nearest", "bilinear", "deconv"])
def test_upsample_doubles_and_changes_width(mode: str) -> None:
    up = Upsample(12, 6, mode)
    assert up(torch.rand(2, 12, 5, 7)).shape == (2, 6, 10, 14)
    with pytest.raises(ValueError, match="upsample"):
        Upsample(4, 4, "pixelshuffle")


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_upsample_conv_first_equals_resize_first(mode: str) -> None:
    """The 1x1 conv+BN runs before the resize (4x cheaper); it must equal resize-then-conv."""
    up = Upsample(5, 3, mode).eval()
    bn = up.conv[1]
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    x = torch.randn(1, 5, 6, 4)
    kwargs = {"align_corners": False} if mode == "bilinear" else {}
    reference = F.relu(up.conv(F.interpolate(x, scale_factor=2.0, mode=mode, **kwargs)))
    torch.testing.assert_close(up(x), reference, atol=1e-5, rtol=1e-5)
