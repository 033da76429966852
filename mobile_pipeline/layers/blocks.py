"""Body blocks: the FS (multi-branch feature) block and the ResNet baseline block.

The FS block mixes receptive fields cheaply: depthwise branches see 3x3, 5x5 or a dilated
5x5 footprint for ~9-25 MACs per pixel and channel, one branch does a real (reduced-width)
3x3 conv for channel mixing, and a 1x1 conv fuses them. A ResNet block (two full 3x3 convs)
costs about 18 C^2 MACs per pixel; an FS block with the default branches about 5 C^2. Whether
the FS block is also *better at equal MACs* is measured by the ablation benchmark.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mobile_pipeline.layers.conv import ConvNormAct

#: Branch names (same vocabulary as ``ArchSpec.fs_branches``).
#: dw3: depthwise 3x3; dil3: depthwise 3x3 with dilation 2 (5x5 footprint); dw5: depthwise
#: 5x5; conv2: 1x1 reduce then a full 3x3 conv (the "two-conv" branch).
BRANCH_KINDS: tuple[str, ...] = ("dw3", "dil3", "conv2", "dw5")


def make_branch(kind: str, channels: int, branch_channels: int, act: str = "relu",
                norm: bool = True, dilation: int = 2) -> nn.Sequential:
    """Build one FS branch mapping ``channels`` -> ``branch_channels`` at the same size.

    Args:
        kind: one of :data:`BRANCH_KINDS`.
        channels: input channels.
        branch_channels: output channels of the branch.
        act: activation name.
        norm: BatchNorm after each conv.
        dilation: dilation of the ``dil3`` branch.

    Raises:
        ValueError: unknown ``kind``.
    """
    if kind in ("dw3", "dil3", "dw5"):
        kernel = 5 if kind == "dw5" else 3
        dil = dilation if kind == "dil3" else 1
        # Depthwise for the spatial footprint, then a pointwise to the branch width: a
        # depthwise-separable conv, which every mobile delegate runs well.
        return nn.Sequential(
            ConvNormAct(channels, channels, kernel, dilation=dil, groups=channels, norm=norm, act=act),
            ConvNormAct(channels, branch_channels, 1, norm=norm, act=act),
        )
    if kind == "conv2":
        return nn.Sequential(
            ConvNormAct(channels, branch_channels, 1, norm=norm, act=act),
            ConvNormAct(branch_channels, branch_channels, 3, norm=norm, act=act),
        )
    raise ValueError(f"fs_branches: {kind!r} is not one of {list(BRANCH_KINDS)}")


class FSBlock(nn.Module):
    """Multi-branch block: ``x + BN(Conv1x1(concat(branch_i(x))))``.

    The fusion conv is linear (no activation) so the residual stream stays an identity path,
    as in MobileNetV2's linear bottleneck; this also keeps a freshly initialised block close
    to identity, which helps the short CPU training runs.

    Args:
        channels: input and output channels.
        branches: branch names (see :data:`BRANCH_KINDS`), at least one, no duplicates.
        branch_channels: output channels of each branch; default ``max(channels // 2, 4)``.
        act: activation name inside the branches.
        norm: BatchNorm after each conv.
        dilation: dilation of the ``dil3`` branch.
    """

    def __init__(self, channels: int, branches: tuple[str, ...] | list[str] = ("dw3", "dil3", "conv2"),
                 branch_channels: int | None = None, act: str = "relu", norm: bool = True,
                 dilation: int = 2) -> None:
        super().__init__()
        branches = tuple(branches)
        if not branches:
            raise ValueError("fs_branches must name at least one branch")
        if len(set(branches)) != len(branches):
            raise ValueError(f"fs_branches has duplicates: {branches}")
        if branch_channels is None:
            branch_channels = max(channels // 2, 4)
        self.branch_names = branches
        self.branches = nn.ModuleList(
            make_branch(kind, channels, branch_channels, act=act, norm=norm, dilation=dilation)
            for kind in branches
        )
        self.fuse = ConvNormAct(branch_channels * len(branches), channels, 1, norm=norm, act=None)

    def forward(self, x: Tensor) -> Tensor:
        outs = [branch(x) for branch in self.branches]
        mixed = outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)
        return x + self.fuse(mixed)


class ResNetBlock(nn.Module):
    """Baseline block: ``x + BN(Conv3x3(act(BN(Conv3x3(x)))))``.

    Same residual convention as :class:`FSBlock` (no activation after the add) so the
    ablation compares the blocks, not the residual style.

    Args:
        channels: input and output channels.
        act: activation name between the convs.
        norm: BatchNorm after each conv.
        kernel_size: kernel side of both convs.
    """

    def __init__(self, channels: int, act: str = "relu", norm: bool = True, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(channels, channels, kernel_size, norm=norm, act=act)
        self.conv2 = ConvNormAct(channels, channels, kernel_size, norm=norm, act=None)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.conv1(x))


def make_block(kind: str, channels: int, branches: tuple[str, ...] = ("dw3", "dil3", "conv2"),
               act: str = "relu", norm: bool = True) -> nn.Module:
    """Build a body block by name (``fs`` or ``resnet``).

    Args:
        kind: ``fs`` or ``resnet``.
        channels: block width.
        branches: FS branches (ignored for ``resnet``).
        act: activation name.
        norm: BatchNorm after each conv.
    """
    if kind == "fs":
        return FSBlock(channels, branches, act=act, norm=norm)
    if kind == "resnet":
        return ResNetBlock(channels, act=act, norm=norm)
    raise ValueError(f"block: {kind!r} is not one of ['fs', 'resnet']")
