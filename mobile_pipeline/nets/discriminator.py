"""Multi-scale PatchGAN discriminator on a frozen, pretrained feature backbone.

No weights can be downloaded here, so "pretrained" means: the encoder of a generator from a
user-given local checkpoint (``train.disc_checkpoint``) when configured, otherwise the
encoder of the generator trained in the paired stage (deep-copied, frozen). Its features
already separate photo structure from colour, so the small trainable PatchGAN heads learn
"cartoon or not" quickly — important with a few hundred adversarial steps on a CPU.

The backbone's parameters never receive gradients and it stays in eval mode (its BatchNorm
statistics are not disturbed by fake images), but gradients do flow *through* it to the
generator's output, which is what the generator's adversarial loss needs.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mobile_pipeline.nets.generator import Generator, build_generator
from mobile_pipeline.nets.spec import ArchSpec, SpecError


class CheckpointError(ValueError):
    """A backbone checkpoint that cannot be read or does not fit; the message names the file."""


class FrozenEncoder(nn.Module):
    """Stem + encoder stages of a generator, deep-copied and frozen.

    Args:
        generator: the source; it is copied, so training it further does not move the
            discriminator's features.
    """

    def __init__(self, generator: Generator) -> None:
        super().__init__()
        source = copy.deepcopy(generator)
        self.spec = source.spec
        self.stem = source.stem
        self.encoder = source.encoder
        self.widths = [source.spec.stem_width, *source.spec.encoder_widths]
        for param in self.parameters():
            param.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> "FrozenEncoder":
        """Always stays in eval mode: frozen BatchNorm statistics, whatever the parent does."""
        return super().train(False)

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = [self.stem(x)]
        for stage in self.encoder:
            feats.append(stage(feats[-1]))
        return feats


def _maybe_sn(module: nn.Module, spectral_norm: bool) -> nn.Module:
    return nn.utils.parametrizations.spectral_norm(module) if spectral_norm else module


class PatchHead(nn.Module):
    """A few strided convs down to one logit per patch.

    Args:
        in_channels: channels of the backbone feature it reads.
        base_channels: width of the first conv (doubles per strided conv, capped at 256).
        num_strided: stride-2 convs (each halves the logit map and widens the patch).
        spectral_norm: wrap convs in spectral norm (stabilises the hinge/LSGAN game).
    """

    def __init__(self, in_channels: int, base_channels: int = 32, num_strided: int = 2,
                 spectral_norm: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_channels
        for i in range(num_strided):
            out = min(base_channels * 2**i, 256)
            layers += [_maybe_sn(nn.Conv2d(width, out, 3, stride=2, padding=1), spectral_norm),
                       nn.LeakyReLU(0.2, inplace=True)]
            width = out
        layers.append(_maybe_sn(nn.Conv2d(width, 1, 3, padding=1), spectral_norm))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class MultiScaleDiscriminator(nn.Module):
    """PatchGAN heads on frozen backbone features of the image at several scales.

    Scale 0 is the input, scale s the input average-pooled by 2^s. Each scale has its own
    head reading backbone feature ``feature_level`` (0 = stem, full res; 1 = first stride-2
    stage, ...).

    Args:
        backbone: frozen feature extractor (:class:`FrozenEncoder`).
        num_scales: number of image scales (2: input and 2x downsampled).
        feature_level: which backbone feature the heads read (clamped to the deepest).
        base_channels: first-conv width of each head.
        num_strided: stride-2 convs per head.
        spectral_norm: spectral norm on the head convs.
    """

    def __init__(self, backbone: FrozenEncoder, num_scales: int = 2, feature_level: int = 1,
                 base_channels: int = 32, num_strided: int = 2, spectral_norm: bool = True) -> None:
        super().__init__()
        if num_scales < 1:
            raise ValueError(f"num_scales must be >= 1, got {num_scales}")
        self.backbone = backbone
        self.num_scales = num_scales
        self.feature_level = max(0, min(feature_level, len(backbone.widths) - 1))
        in_channels = backbone.widths[self.feature_level]
        self.heads = nn.ModuleList(
            PatchHead(in_channels, base_channels, num_strided, spectral_norm) for _ in range(num_scales)
        )

    def forward(self, x: Tensor) -> list[Tensor]:
        """Patch logit maps, one per scale (finest first), each N,1,h,w."""
        logits = []
        for scale, head in enumerate(self.heads):
            if scale:
                x = F.avg_pool2d(x, 2, ceil_mode=True)
            logits.append(head(self.backbone(x)[self.feature_level]))
        return logits


# ---------------------------------------------------------------- checkpoints
def load_backbone_checkpoint(path: str | Path, spec: ArchSpec | str | None = None) -> Generator:
    """Load a generator from a local torch file, to serve as a discriminator backbone.

    Accepted: the lean generator file ``{"arch": str, "state_dict": ...}``; a Lightning
    checkpoint whose ``state_dict`` keys start with ``generator.`` (arch from ``spec`` or
    ``hyper_parameters``); or a plain state_dict of a generator of ``spec``.

    Args:
        path: the file.
        spec: architecture for files that do not carry one.

    Raises:
        CheckpointError: missing or unreadable file, no architecture, or weights that do not
            fit the architecture (the message lists missing/unexpected/mismatched keys).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: discriminator backbone checkpoint not found (train.disc_checkpoint)")
    try:
        data: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle/zip errors come in many types
        if path.suffix != ".ckpt":
            raise CheckpointError(f"{path}: cannot read as a torch checkpoint ({type(err).__name__}: {err})") from None
        # Lightning checkpoints pickle loop/callback state beyond tensors; this is a local file
        # the user configured, read the way Lightning itself reads it.
        try:
            data = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err2:
            raise CheckpointError(f"{path}: cannot read as a torch checkpoint ({type(err2).__name__}: {err2})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a dict (state_dict or {{'arch', 'state_dict'}}), got {type(data).__name__}")
    arch: Any = None
    state = data
    if "state_dict" in data and isinstance(data["state_dict"], dict):
        state = data["state_dict"]
        arch = data.get("arch") or (data.get("hyper_parameters") or {}).get("arch")
        if any(k.startswith("generator.") for k in state):
            state = {k[len("generator."):]: v for k, v in state.items() if k.startswith("generator.")}
    if arch is None:
        arch = spec
    if arch is None:
        raise CheckpointError(
            f"{path}: a plain state_dict carries no architecture; pass spec= (the generator's arch)"
        )
    try:
        generator = build_generator(arch)
    except SpecError as err:
        raise CheckpointError(f"{path}: invalid architecture {arch!r}: {err}") from None
    _load_strict(generator, state, path)
    return generator.eval()


def _load_strict(model: nn.Module, state: dict[str, Any], path: Path) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if isinstance(state[k], Tensor) and state[k].shape != own[k].shape
    )
    if missing or unexpected or mismatched:
        arch = getattr(getattr(model, "spec", None), "to_string", lambda: "?")()
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)):
            if keys:
                parts.append(f"{len(keys)} {label} (e.g. {', '.join(keys[:3])})")
        raise CheckpointError(
            f"{path}: weights do not fit architecture {arch}: {'; '.join(parts)}. "
            "Is it a checkpoint of a different spec?"
        )
    model.load_state_dict(state, strict=True)


def build_discriminator(
    generator_or_checkpoint: nn.Module | str | Path | None,
    *,
    spec: ArchSpec | str | None = None,
    num_scales: int = 2,
    feature_level: int = 1,
    base_channels: int = 32,
    num_strided: int = 2,
    spectral_norm: bool = True,
) -> MultiScaleDiscriminator:
    """Build the discriminator with a frozen backbone.

    Args:
        generator_or_checkpoint: a trained generator (its encoder is deep-copied and frozen);
            a path to a local checkpoint (see :func:`load_backbone_checkpoint`); or ``None``
            for a freshly initialised generator of ``spec`` (random frozen features — a
            fallback for tests and ablations, not the recommended setting).
        spec: architecture for plain state_dicts and for ``None``.
        num_scales: image scales (input, 2x down, ...).
        feature_level: backbone feature the heads read.
        base_channels: head width.
        num_strided: stride-2 convs per head.
        spectral_norm: spectral norm on head convs.

    Raises:
        CheckpointError: a checkpoint that cannot be loaded.
        ValueError: ``None`` without ``spec``, or an unsupported object.
    """
    if isinstance(generator_or_checkpoint, (str, Path)):
        generator = load_backbone_checkpoint(generator_or_checkpoint, spec)
    elif isinstance(generator_or_checkpoint, Generator):
        generator = generator_or_checkpoint
    elif generator_or_checkpoint is None:
        if spec is None:
            raise ValueError("build_discriminator(None) needs spec= to build a backbone")
        generator = build_generator(spec)
    else:
        raise ValueError(
            "build_discriminator needs a Generator, a checkpoint path or None, "
            f"got {type(generator_or_checkpoint).__name__}"
        )
    return MultiScaleDiscriminator(FrozenEncoder(generator), num_scales=num_scales, feature_level=feature_level,
                                   base_channels=base_channels, num_strided=num_strided,
                                   spectral_norm=spectral_norm)
