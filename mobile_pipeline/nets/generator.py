"""The stylizer generator, built from an :class:`~mobile_pipeline.nets.spec.ArchSpec`.

Layout (``n = len(spec.encoder_widths)``)::

    x ─ stem (full res, stem_width) ─ enc1 (/2) ─ ... ─ enc_n (/2^n) ─ body blocks
          │skip_0                      │skip_1          (deepest)         │
          └──────────── fuse ◄─ up ◄─ ... ◄──── fuse ◄─ up ◄────────────┘
    decoder scale k (coarse -> fine) = upsample, fuse the skip (spec.fusion, deepest
    first), refine (depthwise-separable 3x3), RGB head.

Every decoder scale has an RGB head (multi-scale supervision); only the finest one runs in
:meth:`Generator.forward`, which is what gets exported. Each head predicts a *residual* on the
input image at its scale and the result is clamped to [0, 1]: at initialisation the
generator is (almost) the identity, which is a good start for photo -> cartoon and makes the
5-minute CPU training budget enough.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mobile_pipeline.layers import ConvNormAct, Upsample, make_block, make_fusion
from mobile_pipeline.nets.spec import ArchSpec

#: Std of the RGB head initialisation: small, so the initial output is the input image.
HEAD_INIT_STD = 1e-3


class Generator(nn.Module):
    """Encoder / FS-body / gated-fusion decoder with one RGB head per decoder scale.

    Inputs are N,3,H,W floats in [0, 1]. H and W should be multiples of
    ``spec.downsample_factor`` (then no padding op appears in the exported graph); other sizes
    are padded (replicate) up to the next multiple internally and cropped back.

    Args:
        spec: the architecture.
    """

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        self.spec = spec
        act = spec.act
        # Feature width at scale s (s = 0 full resolution, s = n deepest).
        widths = [spec.stem_width, *spec.encoder_widths]
        n = len(spec.encoder_widths)
        self.stem = ConvNormAct(3, widths[0], 3, act=act)
        self.encoder = nn.ModuleList(
            ConvNormAct(widths[s], widths[s + 1], 3, stride=2, act=act) for s in range(n)
        )
        self.body = nn.Sequential(
            *(make_block(spec.block, widths[n], spec.fs_branches, act=act) for _ in range(spec.num_blocks))
        )
        self.ups = nn.ModuleList()
        self.fusions = nn.ModuleList()
        self.refines = nn.ModuleList()
        for j in range(n):  # deepest skip first
            deep_w, skip_w = widths[n - j], widths[n - 1 - j]
            self.ups.append(Upsample(deep_w, skip_w, spec.upsample, act=act))
            self.fusions.append(make_fusion(spec.fusion[j], skip_w, skip_w, skip_w, act=act))
            self.refines.append(nn.Sequential(
                ConvNormAct(skip_w, skip_w, 3, groups=skip_w, act=act),
                ConvNormAct(skip_w, skip_w, 1, act=act),
            ))
        # heads[k] serves decoder scale k, coarse -> fine (k = 0 is the body output).
        self.heads = nn.ModuleList(nn.Conv2d(widths[n - k], 3, 3, padding=1) for k in range(n + 1))
        self._init_weights()

    def _init_weights(self) -> None:
        for head in self.heads:
            nn.init.normal_(head.weight, std=HEAD_INIT_STD)
            nn.init.zeros_(head.bias)
        # Zero the last BatchNorm of every residual block: each block starts as the identity
        # (Goyal et al. 2017), so depth does not slow the first steps.
        for block in self.body:
            last = block.fuse if hasattr(block, "fuse") else block.conv2
            if len(last) > 1 and isinstance(last[1], nn.BatchNorm2d):
                nn.init.zeros_(last[1].weight)

    # ------------------------------------------------------------------ helpers
    @property
    def num_scales(self) -> int:
        return self.spec.num_scales

    def _pad(self, x: Tensor) -> tuple[Tensor, int, int]:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"generator input must be N,3,H,W, got shape {tuple(x.shape)}")
        height, width = x.shape[-2], x.shape[-1]
        f = self.spec.downsample_factor
        pad_h, pad_w = (-height) % f, (-width) % f
        if pad_h or pad_w:  # a Python branch: absent from graphs exported at valid sizes
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        return x, height, width

    def _features(self, x: Tensor) -> list[Tensor]:
        feats = [self.stem(x)]
        for stage in self.encoder:
            feats.append(stage(feats[-1]))
        return feats

    def _decode(self, feats: list[Tensor], all_scales: bool) -> list[Tensor]:
        """Decoder features coarse -> fine (only the finest unless ``all_scales``)."""
        deep = self.body(feats[-1])
        out = [deep] if all_scales else []
        n = len(self.encoder)
        for j in range(n):
            deep = self.ups[j](deep)
            deep = self.refines[j](self.fusions[j](feats[n - 1 - j], deep))
            if all_scales or j == n - 1:
                out.append(deep)
        return out

    # ------------------------------------------------------------------ API
    def forward(self, x: Tensor) -> Tensor:
        """Finest output only: N,3,H,W in [0, 1]. This is the exported graph."""
        x_pad, height, width = self._pad(x)
        finest = self._decode(self._features(x_pad), all_scales=False)[-1]
        out = torch.clamp(x_pad + self.heads[-1](finest), 0.0, 1.0)
        if out.shape[-2] != height or out.shape[-1] != width:
            out = out[..., :height, :width]
        return out

    def forward_pyramid(self, x: Tensor) -> list[Tensor]:
        """All RGB outputs, coarse -> fine; scale k has side ``ceil(H / 2**(num_scales-1-k))``.

        Targets for multi-scale supervision must be downsampled the same way: use
        :func:`image_pyramid` (average pooling), which is what the residual base uses here.
        """
        x_pad, height, width = self._pad(x)
        decoded = self._decode(self._features(x_pad), all_scales=True)
        bases = _pool_pyramid(x_pad, self.num_scales)
        outs = []
        for k, (feat, base) in enumerate(zip(decoded, bases)):
            out = torch.clamp(base + self.heads[k](feat), 0.0, 1.0)
            outs.append(_crop_to_scale(out, height, width, self.num_scales - 1 - k))
        return outs

    def encode(self, x: Tensor) -> list[Tensor]:
        """Encoder features shallow -> deep: ``[stem, stage_1, ..., stage_n]`` (before the body).

        The discriminator uses them as a frozen feature backbone.
        """
        x_pad, height, width = self._pad(x)
        feats = self._features(x_pad)
        return [_crop_to_scale(f, height, width, s) for s, f in enumerate(feats)]

    def image_pyramid(self, x: Tensor) -> list[Tensor]:
        """Downsample images (e.g. targets) exactly like :meth:`forward_pyramid` does."""
        return image_pyramid(x, self.num_scales, self.spec.downsample_factor)


def _pool_pyramid(x: Tensor, num_scales: int) -> list[Tensor]:
    """Average-pool pyramid coarse -> fine of an already padded image."""
    levels = [x]
    for _ in range(num_scales - 1):
        levels.append(F.avg_pool2d(levels[-1], 2))
    return levels[::-1]


def _crop_to_scale(t: Tensor, height: int, width: int, level: int) -> Tensor:
    h, w = -(-height // 2**level), -(-width // 2**level)
    if t.shape[-2] != h or t.shape[-1] != w:
        t = t[..., :h, :w]
    return t


def image_pyramid(x: Tensor, num_scales: int, downsample_factor: int | None = None) -> list[Tensor]:
    """Targets for multi-scale supervision, coarse -> fine, matching ``forward_pyramid``.

    Level m (from the finest) is the 2^m x 2^m average of the image, so a model that outputs
    its input (the identity at initialisation) has zero loss at every scale.

    Args:
        x: N,C,H,W images.
        num_scales: ``spec.num_scales``.
        downsample_factor: pad (replicate) H and W to a multiple of this first, as the
            generator does; default ``2 ** (num_scales - 1)``.
    """
    f = downsample_factor or 2 ** (num_scales - 1)
    height, width = x.shape[-2], x.shape[-1]
    pad_h, pad_w = (-height) % f, (-width) % f
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    levels = _pool_pyramid(x, num_scales)
    return [_crop_to_scale(t, height, width, num_scales - 1 - k) for k, t in enumerate(levels)]


def build_generator(spec: ArchSpec | str) -> Generator:
    """Build a generator from a spec, a registered name (``stylizer-tiny``) or an arch string.

    Raises:
        SpecError: the string is neither a known name nor a valid architecture string.
    """
    if isinstance(spec, str):
        from mobile_pipeline.nets.registry import get_spec

        spec = get_spec(spec)
    if not isinstance(spec, ArchSpec):
        raise TypeError(f"build_generator needs an ArchSpec or a string, got {type(spec).__name__}")
    return Generator(spec)


@torch.no_grad()
def trained_like(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give a freshly built model the weight statistics of a trained one, in place.

    A fresh generator starts as the identity (zeroed last BatchNorm per residual block, tiny
    heads). Converters constant-fold a conv whose folded weights are all zero, so timing or
    converting a fresh model measures a smaller graph than any trained one runs (a 0.88
    GMACs ResNet-block generator timed 3x faster than the sum of its convs). Benchmarks and
    export tests call this before converting: BatchNorm gets non-trivial affine parameters and
    running statistics, every conv weight a normal draw at its fan-in scale.
    """
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.weight.copy_(0.5 + torch.rand(module.weight.shape, generator=gen))
            module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=gen))
            module.running_mean.copy_(0.1 * torch.randn(module.running_mean.shape, generator=gen))
            module.running_var.copy_(0.5 + 1.5 * torch.rand(module.running_var.shape, generator=gen))
        elif isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            fan_in = module.weight[0].numel()
            module.weight.copy_(torch.randn(module.weight.shape, generator=gen) / fan_in ** 0.5)
            if module.bias is not None:
                module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=gen))
    return model.eval()
