"""Published cartoonization generators, rebuilt layer for layer as cost baselines.

Only the architecture matters here (MACs, parameters, and the latency of an export on this
machine): no weights are downloaded, a fresh initialisation runs exactly as fast. The peer is
the White-box cartoonization generator (Wang & Yu, CVPR 2020, ``network.unet_generator`` of
the authors' code with ``channel=32, num_blocks=4``): a 7x7 stem, two stride-2 stages, four
residual blocks at 1/4 resolution, a bilinear-resize decoder with additive skips. At 256x256
it counts 8.2 GMACs, the figure the project's targets are measured against.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def _conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)


class _ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1, self.conv2 = _conv(channels, channels, 3), _conv(channels, channels, 3)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.leaky_relu(self.conv1(x), 0.2))


class WhiteBoxGenerator(nn.Module):
    """White-box cartoonization's U-Net generator (N,3,H,W in [0,1] -> same; H, W % 4 == 0).

    Args:
        channel: base width (32 in the paper).
        num_blocks: residual blocks at the bottleneck (4 in the paper).
    """

    def __init__(self, channel: int = 32, num_blocks: int = 4) -> None:
        super().__init__()
        c = channel
        self.stem = _conv(3, c, 7)
        self.down1, self.conv1 = _conv(c, c, 3, 2), _conv(c, 2 * c, 3)
        self.down2, self.conv2 = _conv(2 * c, 2 * c, 3, 2), _conv(2 * c, 4 * c, 3)
        self.blocks = nn.Sequential(*[_ResBlock(4 * c) for _ in range(num_blocks)])
        self.reduce = _conv(4 * c, 2 * c, 3)
        self.up1a, self.up1b = _conv(2 * c, 2 * c, 3), _conv(2 * c, c, 3)
        self.up2a, self.head = _conv(c, c, 3), _conv(c, 3, 7)

    def forward(self, x: Tensor) -> Tensor:
        act = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731
        x0 = act(self.stem(x))
        x1 = act(self.conv1(act(self.down1(x0))))
        x2 = act(self.conv2(act(self.down2(x1))))
        x2 = act(self.reduce(self.blocks(x2)))
        x3 = F.interpolate(x2, scale_factor=2.0, mode="bilinear", align_corners=False)
        x3 = act(self.up1b(act(self.up1a(x3 + x1))))
        x4 = F.interpolate(x3, scale_factor=2.0, mode="bilinear", align_corners=False)
        out = self.head(act(self.up2a(x4 + x0)))
        # The authors add a guided filter at inference; its cost is a few box filters, not counted.
        return out.clamp(0.0, 1.0)
