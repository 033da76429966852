"""Architecture as data: the generator's spec, its string form, and validation.

The search writes specs, the registry names them, training and export build modules from
them. A spec string reads like timm's block strings::

    s16_e24-32-48_b2xfs_br-dw3.dil3.conv2_f-sta.sta.add_u-nearest_a-relu

``s`` stem width, ``e`` encoder widths (one stride-2 stage each), ``b`` number x kind of
body blocks at the deepest scale, ``br`` FS branch set, ``f`` fusion per skip (deepest skip
first, the order the decoder visits them), ``u`` upsampling mode, ``a`` activation.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

BLOCK_KINDS: tuple[str, ...] = ("fs", "resnet")
FS_BRANCHES: tuple[str, ...] = ("dw3", "dil3", "conv2", "dw5")
FUSIONS: tuple[str, ...] = ("sta", "add", "concat")
UPSAMPLE_MODES: tuple[str, ...] = ("nearest", "bilinear", "deconv")
ACTIVATIONS: tuple[str, ...] = ("relu", "relu6")


class SpecError(ValueError):
    """An architecture spec that cannot be built; the message names the field."""


@dataclass(frozen=True)
class ArchSpec:
    """Generator architecture.

    Args:
        stem_width: channels of the full-resolution stem conv.
        encoder_widths: channels of each stride-2 encoder stage, shallow to deep.
        num_blocks: body blocks at the deepest scale.
        block: ``fs`` (multi-branch feature block) or ``resnet`` (two 3x3 convs), for ablations.
        fs_branches: branches of each FS block (ignored for ``resnet``).
        fusion: how each skip joins the decoder, deepest skip first; one per encoder stage.
        upsample: decoder upsampling: ``nearest``/``bilinear`` (+ conv) or ``deconv``.
        act: activation; ``relu6`` clamps, which int8 quantizers like.
    """

    stem_width: int = 16
    encoder_widths: tuple[int, ...] = (24, 32)
    num_blocks: int = 2
    block: str = "fs"
    fs_branches: tuple[str, ...] = ("dw3", "dil3", "conv2")
    fusion: tuple[str, ...] = ("sta", "sta")
    upsample: str = "nearest"
    act: str = "relu"

    def __post_init__(self) -> None:
        # Accept lists (from JSON) but store tuples so specs hash and compare by value. A bare
        # string or number is a mistake (tuple("sta") would be ('s', 't', 'a')): name the field.
        for name in ("encoder_widths", "fs_branches", "fusion"):
            value = getattr(self, name)
            if not isinstance(value, (list, tuple)):
                raise SpecError(f"{name} must be a list, e.g. {list(getattr(ArchSpec, name))}, got {value!r}")
            object.__setattr__(self, name, tuple(value))
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise :class:`SpecError` naming the first invalid field."""
        if not isinstance(self.stem_width, int) or not 4 <= self.stem_width <= 512:
            raise SpecError(f"stem_width must be an int in [4, 512], got {self.stem_width!r}")
        if not 1 <= len(self.encoder_widths) <= 5:
            raise SpecError(f"encoder_widths needs 1 to 5 stages, got {len(self.encoder_widths)}")
        for width in self.encoder_widths:
            if not isinstance(width, int) or not 4 <= width <= 1024:
                raise SpecError(f"encoder_widths entries must be ints in [4, 1024], got {width!r}")
        if not isinstance(self.num_blocks, int) or not 0 <= self.num_blocks <= 16:
            raise SpecError(f"num_blocks must be an int in [0, 16], got {self.num_blocks!r}")
        _check_choice("block", self.block, BLOCK_KINDS)
        if self.block == "fs":
            if not self.fs_branches:
                raise SpecError("fs_branches must name at least one branch for block 'fs'")
            for branch in self.fs_branches:
                _check_choice("fs_branches", branch, FS_BRANCHES)
            if len(set(self.fs_branches)) != len(self.fs_branches):
                raise SpecError(f"fs_branches has duplicates: {self.fs_branches}")
        if len(self.fusion) != len(self.encoder_widths):
            raise SpecError(
                f"fusion needs one entry per encoder stage ({len(self.encoder_widths)}), got {len(self.fusion)}"
            )
        for fusion in self.fusion:
            _check_choice("fusion", fusion, FUSIONS)
        _check_choice("upsample", self.upsample, UPSAMPLE_MODES)
        _check_choice("act", self.act, ACTIVATIONS)

    @property
    def num_scales(self) -> int:
        """Output scales of the decoder pyramid (deepest + one per skip)."""
        return len(self.encoder_widths) + 1

    @property
    def downsample_factor(self) -> int:
        """Input sides must be multiples of this."""
        return 2 ** len(self.encoder_widths)

    # ---------------------------------------------------------- conversions
    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ArchSpec":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpecError(f"unknown spec field(s) {unknown}; known: {sorted(known)}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ArchSpec":
        """Inverse of :meth:`to_json` (e.g. the ``spec`` object of a search result)."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise SpecError(f"architecture JSON is not valid JSON: {err}") from None
        if not isinstance(data, dict):
            raise SpecError(f"architecture JSON must be an object with the spec fields, got {type(data).__name__}")
        return cls.from_dict(data)

    def to_string(self) -> str:
        parts = [
            f"s{self.stem_width}",
            "e" + "-".join(str(w) for w in self.encoder_widths),
            f"b{self.num_blocks}x{self.block}",
        ]
        if self.block == "fs":
            parts.append("br-" + ".".join(self.fs_branches))
        parts += ["f-" + ".".join(self.fusion), f"u-{self.upsample}", f"a-{self.act}"]
        return "_".join(parts)

    @classmethod
    def from_string(cls, text: str) -> "ArchSpec":
        fields: dict[str, Any] = {}
        try:
            for token in text.strip().split("_"):
                if token.startswith("br-"):
                    fields["fs_branches"] = tuple(token[3:].split("."))
                elif token.startswith("f-"):
                    fields["fusion"] = tuple(token[2:].split("."))
                elif token.startswith("u-"):
                    fields["upsample"] = token[2:]
                elif token.startswith("a-"):
                    fields["act"] = token[2:]
                elif token.startswith("s"):
                    fields["stem_width"] = int(token[1:])
                elif token.startswith("e"):
                    fields["encoder_widths"] = tuple(int(w) for w in token[1:].split("-"))
                elif token.startswith("b"):
                    count, _, kind = token[1:].partition("x")
                    fields["num_blocks"], fields["block"] = int(count), kind
                else:
                    raise SpecError(f"unknown token {token!r}")
        except ValueError as err:
            raise SpecError(f"cannot parse architecture string {text!r}: {err}") from None
        return cls(**fields)


def _check_choice(field: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise SpecError(f"{field}: {value!r} is not one of {list(choices)}")
