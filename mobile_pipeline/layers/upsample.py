"""2x decoder upsampling: resize + conv, or a transposed conv.

``nearest``/``bilinear`` (align_corners=False: the one resize convention ONNX Resize, TFLite
RESIZE_* and Core ML ``upsample_*`` all agree on) followed by a conv that also changes width;
``deconv`` is one ConvTranspose2d (k=2, s=2: no overlap, no checkerboard), which some NPU
delegates forbid — the tier tables say which, and the search avoids it there.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from mobile_pipeline.layers.conv import make_act

UPSAMPLE_MODES: tuple[str, ...] = ("nearest", "bilinear", "deconv")


class Upsample(nn.Module):
    """Double the spatial size and map ``in_channels`` -> ``out_channels``.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        mode: ``nearest``, ``bilinear`` or ``deconv``.
        kernel_size: kernel of the conv after the resize (1 is cheapest at fine scales;
            ignored for ``deconv``, which always uses k=2, s=2).
        act: activation after the conv.
        norm: BatchNorm after the conv.
    """

    def __init__(self, in_channels: int, out_channels: int, mode: str = "nearest",
                 kernel_size: int = 1, act: str = "relu", norm: bool = True) -> None:
        super().__init__()
        if mode not in UPSAMPLE_MODES:
            raise ValueError(f"upsample: {mode!r} is not one of {list(UPSAMPLE_MODES)}")
        self.mode = mode
        if mode == "deconv":
            conv: nn.Module = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2, bias=not norm)
        else:
            conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=not norm)
        # A 1x1 conv and BatchNorm are per-pixel affine maps, and both resizes take convex
        # combinations of pixels, so "resize then 1x1 conv+BN" equals "1x1 conv+BN then
        # resize" exactly: run them at the low resolution for a quarter of the MACs. Nearest
        # resize only copies pixels, so the activation commutes too and fuses into the conv
        # (one CONV_2D instead of CONV_2D + RELU on the 4x larger map); bilinear mixes pixels,
        # so its activation stays after the resize.
        self.conv_first = mode == "deconv" or kernel_size == 1
        self.act_first = self.conv_first and mode != "bilinear"
        self.conv = nn.Sequential(conv, nn.BatchNorm2d(out_channels)) if norm else conv
        self.act = make_act(act)

    def forward(self, x: Tensor) -> Tensor:
        if self.conv_first:
            x = self.conv(x)
        if self.act_first:
            x = self.act(x)
        if self.mode == "nearest":
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        elif self.mode == "bilinear":
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        if not self.conv_first:
            x = self.conv(x)
        if not self.act_first:
            x = self.act(x)
        return x
