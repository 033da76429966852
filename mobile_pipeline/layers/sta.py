"""STA: a per-pixel attention gate that fuses shallow skip features with deep decoder features.

Plain add gives every pixel the same mix of detail (skip) and semantics (deep); concat makes
the next conv pay for both widths. The gate lets the network choose, per pixel, how much
shallow detail to pass through (edges, texture) versus deep, already-stylized features, for
the price of one or two 1x1 convs and a sigmoid — all ops that ONNX, TFLite and Core ML run
natively (Conv, Sigmoid, Mul, Sub, Add, Concat).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mobile_pipeline.layers.conv import ConvNormAct


class STA(nn.Module):
    """Skip-to-deep attention fusion: ``out = gate * skip + (1 - gate) * deep``.

    Both inputs are first projected to ``out_channels`` by a 1x1 conv (skipped when the width
    already matches); then ``gate = sigmoid(W2 act(W1 [skip, deep]))`` (or a single 1x1 conv
    when ``hidden_channels`` is 0). The gate has ``gate_channels`` maps: 1 gives one weight per
    pixel broadcast over channels (cheapest), ``out_channels`` gives one per pixel and channel.

    Args:
        skip_channels: channels of the shallow (encoder) features.
        deep_channels: channels of the deep (upsampled decoder) features, same spatial size.
        out_channels: channels of the fused output.
        hidden_channels: width of the hidden 1x1 conv of the gate; 0 for a single 1x1 conv.
            Default: ``max(out_channels // 4, 4)``.
        gate_channels: 1 (per-pixel gate) or ``out_channels`` (per-pixel, per-channel).
        act: activation after the projections and the hidden gate conv.
        norm: BatchNorm after the projections and the hidden conv.
    """

    def __init__(
        self,
        skip_channels: int,
        deep_channels: int,
        out_channels: int,
        hidden_channels: int | None = None,
        gate_channels: int = 1,
        act: str = "relu",
        norm: bool = True,
    ) -> None:
        super().__init__()
        if gate_channels not in (1, out_channels):
            raise ValueError(f"gate_channels must be 1 or out_channels={out_channels}, got {gate_channels}")
        if hidden_channels is None:
            hidden_channels = max(out_channels // 4, 4)
        self.skip_proj = (nn.Identity() if skip_channels == out_channels
                          else ConvNormAct(skip_channels, out_channels, 1, norm=norm, act=act))
        self.deep_proj = (nn.Identity() if deep_channels == out_channels
                          else ConvNormAct(deep_channels, out_channels, 1, norm=norm, act=act))
        gate_in = 2 * out_channels
        if hidden_channels > 0:
            self.gate = nn.Sequential(
                ConvNormAct(gate_in, hidden_channels, 1, norm=norm, act=act),
                nn.Conv2d(hidden_channels, gate_channels, 1),
                nn.Sigmoid(),
            )
        else:
            self.gate = nn.Sequential(nn.Conv2d(gate_in, gate_channels, 1), nn.Sigmoid())
        self.out_channels = out_channels

    def gate_map(self, skip: Tensor, deep: Tensor) -> Tensor:
        """The gate in [0, 1] (N, gate_channels, H, W); exposed for tests and visualisation."""
        return self.gate(torch.cat([self.skip_proj(skip), self.deep_proj(deep)], dim=1))

    def forward(self, skip: Tensor, deep: Tensor) -> Tensor:
        skip = self.skip_proj(skip)
        deep = self.deep_proj(deep)
        gate = self.gate(torch.cat([skip, deep], dim=1))
        # deep + g * (skip - deep) == g * skip + (1 - g) * deep with one mul instead of two.
        return deep + gate * (skip - deep)
