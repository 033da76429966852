"""Skip fusion chosen by name: ``sta`` (gated), ``add`` or ``concat`` — the ablation axis.

All three take ``(skip, deep)`` of equal spatial size and return ``out_channels`` maps, so
the decoder does not care which one the spec picked.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mobile_pipeline.layers.conv import ConvNormAct
from mobile_pipeline.layers.sta import STA

FUSION_KINDS: tuple[str, ...] = ("sta", "add", "concat")


class AddFusion(nn.Module):
    """``proj(skip) + proj(deep)``: the classic U-Net/ResNet-baseline fusion.

    Args:
        skip_channels: channels of the skip input.
        deep_channels: channels of the deep input.
        out_channels: output channels; an input of another width gets a 1x1 ConvNormAct.
        act: activation of the projections.
        norm: BatchNorm in the projections.
    """

    def __init__(self, skip_channels: int, deep_channels: int, out_channels: int,
                 act: str = "relu", norm: bool = True) -> None:
        super().__init__()
        self.skip_proj = (nn.Identity() if skip_channels == out_channels
                          else ConvNormAct(skip_channels, out_channels, 1, norm=norm, act=act))
        self.deep_proj = (nn.Identity() if deep_channels == out_channels
                          else ConvNormAct(deep_channels, out_channels, 1, norm=norm, act=act))
        self.out_channels = out_channels

    def forward(self, skip: Tensor, deep: Tensor) -> Tensor:
        return self.skip_proj(skip) + self.deep_proj(deep)


class ConcatFusion(nn.Module):
    """``ConvNormAct1x1([skip, deep])``: lets a conv learn the mix, at the cost of both widths.

    Args:
        skip_channels: channels of the skip input.
        deep_channels: channels of the deep input.
        out_channels: output channels of the 1x1 fusion conv.
        act: activation after the fusion conv.
        norm: BatchNorm after the fusion conv.
    """

    def __init__(self, skip_channels: int, deep_channels: int, out_channels: int,
                 act: str = "relu", norm: bool = True) -> None:
        super().__init__()
        self.fuse = ConvNormAct(skip_channels + deep_channels, out_channels, 1, norm=norm, act=act)
        self.out_channels = out_channels

    def forward(self, skip: Tensor, deep: Tensor) -> Tensor:
        return self.fuse(torch.cat([skip, deep], dim=1))


def make_fusion(kind: str, skip_channels: int, deep_channels: int, out_channels: int,
                act: str = "relu", norm: bool = True) -> nn.Module:
    """Build a fusion module by name.

    Args:
        kind: one of :data:`FUSION_KINDS`.
        skip_channels: channels of the shallow features.
        deep_channels: channels of the upsampled deep features.
        out_channels: channels of the result.
        act: activation name.
        norm: BatchNorm in the convs.

    Raises:
        ValueError: unknown ``kind``.
    """
    if kind == "sta":
        return STA(skip_channels, deep_channels, out_channels, act=act, norm=norm)
    if kind == "add":
        return AddFusion(skip_channels, deep_channels, out_channels, act=act, norm=norm)
    if kind == "concat":
        return ConcatFusion(skip_channels, deep_channels, out_channels, act=act, norm=norm)
    raise ValueError(f"fusion: {kind!r} is not one of {list(FUSION_KINDS)}")
