"""Conv + norm + activation, and activations chosen by name.

Every conv in the generator goes through :class:`ConvNormAct` so that the op set stays the
export-friendly one (Conv2d, BatchNorm that folds into the conv, ReLU/ReLU6) and so that the
complexity counters and the search see one uniform building block.
"""

from __future__ import annotations

from torch import nn

#: Activations a layer may ask for by name. ``leaky_relu`` is for the discriminator only,
#: which is never exported; the generator is restricted to ``ArchSpec.act`` (relu/relu6).
ACT_NAMES: tuple[str, ...] = ("relu", "relu6", "leaky_relu", "sigmoid", "none")


def make_act(name: str | None) -> nn.Module:
    """Build an activation module by name.

    Args:
        name: one of :data:`ACT_NAMES`; ``None`` or ``"none"`` gives an identity.

    Raises:
        ValueError: for an unknown name (the message lists the known ones).
    """
    if name is None or name == "none":
        return nn.Identity()
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "relu6":
        return nn.ReLU6(inplace=True)
    if name == "leaky_relu":
        return nn.LeakyReLU(0.2, inplace=True)
    if name == "sigmoid":
        return nn.Sigmoid()
    raise ValueError(f"act: {name!r} is not one of {list(ACT_NAMES)}")


class ConvNormAct(nn.Sequential):
    """Conv2d -> optional BatchNorm -> optional activation, with 'same' padding.

    A Sequential (not a custom forward) so that BatchNorm folding and per-op latency tables
    can walk the three children by index.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel side (odd).
        stride: 1, or 2 for a downsampling stage.
        dilation: kernel dilation; padding grows with it so the output side is
            ``ceil(input / stride)``.
        groups: conv groups; ``groups == in_channels == out_channels`` is a depthwise conv.
        norm: add a BatchNorm2d (the conv then has no bias; BN folds into it at export).
        act: activation name (see :func:`make_act`); ``None`` for a linear output.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        norm: bool = True,
        act: str | None = "relu",
    ) -> None:
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd for 'same' padding, got {kernel_size}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}"
            )
        padding = dilation * (kernel_size - 1) // 2
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                      dilation=dilation, groups=groups, bias=not norm)
        ]
        if norm:
            layers.append(nn.BatchNorm2d(out_channels))
        if act is not None and act != "none":
            layers.append(make_act(act))
        super().__init__(*layers)
        self.in_channels = in_channels
        self.out_channels = out_channels

    @property
    def conv(self) -> nn.Conv2d:
        """The conv (first child)."""
        return self[0]  # type: ignore[return-value]
