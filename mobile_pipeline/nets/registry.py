"""Named architecture specs (timm-style registry) and name-or-string lookup.

The config's ``train.arch`` and every CLI ``--arch`` accept either a registered name or an
architecture string (see :mod:`mobile_pipeline.nets.spec`), so a searched architecture can
be trained without registering it.

Cost at 256x256 (``nets.complexity``; the issue caps tiny at 0.4 and large at 4 GMACs, i.e.
20x and 2x below White-box cartoonization's 8.2 GMACs):

=====================  ======  =========  ====================
name                   GMACs   params     peak activations
=====================  ======  =========  ====================
stylizer-tiny          0.190   69,299     8.1 MB (fp32)
stylizer-small         0.585   307,635    10.2 MB
stylizer-medium        1.587   873,011    (the default grid's largest)
stylizer-large         3.400   2,395,639  19.7 MB
baseline-resnet-tiny   0.266   153,184    7.1 MB
=====================  ======  =========  ====================
"""

from __future__ import annotations

import difflib

from mobile_pipeline.nets.spec import ArchSpec, SpecError

_REGISTRY: dict[str, ArchSpec] = {}


def register_spec(name: str, spec: ArchSpec, *, overwrite: bool = False) -> ArchSpec:
    """Register ``spec`` under ``name``.

    Args:
        name: lookup name, e.g. ``stylizer-tiny``; must not contain ``_``:
            ``_`` is reserved for architecture strings.
        spec: the architecture.
        overwrite: replace an existing entry instead of raising.

    Raises:
        ValueError: the name is taken (and not ``overwrite``) or contains ``_``.
    """
    if not name or "_" in name:
        raise ValueError(f"spec name must be non-empty and contain no '_' (reserved for arch strings): {name!r}")
    if not isinstance(spec, ArchSpec):
        raise TypeError(f"register_spec needs an ArchSpec, got {type(spec).__name__}")
    if name in _REGISTRY and not overwrite and _REGISTRY[name] != spec:
        raise ValueError(f"spec name {name!r} is already registered; pass overwrite=True to replace it")
    _REGISTRY[name] = spec
    return spec


def list_specs() -> list[str]:
    """Registered names, sorted."""
    return sorted(_REGISTRY)


def get_spec(name_or_arch: str | ArchSpec) -> ArchSpec:
    """Look up a registered name or parse an architecture string.

    Raises:
        SpecError: unknown name (lists the known ones, with a "did you mean") or an invalid
            architecture string (names the field).
    """
    if isinstance(name_or_arch, ArchSpec):
        return name_or_arch
    key = str(name_or_arch).strip()
    if key in _REGISTRY:
        return _REGISTRY[key]
    if "_" in key:  # arch strings always have several '_'-separated tokens
        return ArchSpec.from_string(key)
    close = difflib.get_close_matches(key, list(_REGISTRY), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise SpecError(
        f"arch: unknown spec name {key!r}.{hint} Known names: {', '.join(list_specs())}; "
        "or pass an architecture string such as "
        f"{_REGISTRY['stylizer-tiny'].to_string()!r}."
    )


# ----------------------------------------------------------------- registered specs
register_spec("stylizer-tiny", ArchSpec(
    stem_width=12, encoder_widths=(16, 32, 48), num_blocks=3, block="fs",
    fs_branches=("dw3", "dil3", "conv2"), fusion=("sta", "sta", "sta"), upsample="nearest", act="relu",
))
register_spec("stylizer-small", ArchSpec(
    stem_width=16, encoder_widths=(32, 64, 96), num_blocks=4, block="fs",
    fs_branches=("dw3", "dil3", "conv2"), fusion=("sta", "sta", "sta"), upsample="nearest", act="relu",
))
#: The default search grid's largest network (search.space.SpaceChoices): the demo's reference
#: model, so the supernet can start from it (once-for-all) and every tier inherits its training.
register_spec("stylizer-medium", ArchSpec(
    stem_width=32, encoder_widths=(48, 96, 128), num_blocks=6, block="fs",
    fs_branches=("dw3", "dil3", "conv2", "dw5"), fusion=("sta", "sta", "sta"), upsample="nearest", act="relu",
))
register_spec("stylizer-large", ArchSpec(
    stem_width=32, encoder_widths=(64, 128, 224), num_blocks=6, block="fs",
    fs_branches=("dw3", "dil3", "conv2", "dw5"), fusion=("sta", "sta", "sta"), upsample="bilinear", act="relu",
))
#: The ablation baseline: ResNet blocks + add fusion, tiny-sized (equalise MACs with
#: :func:`mobile_pipeline.nets.complexity.scale_to_macs` before comparing).
register_spec("baseline-resnet-tiny", ArchSpec(
    stem_width=12, encoder_widths=(16, 32, 48), num_blocks=3, block="resnet",
    fs_branches=("dw3", "dil3", "conv2"), fusion=("add", "add", "add"), upsample="nearest", act="relu",
))
