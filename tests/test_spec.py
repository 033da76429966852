"""Architecture as data: string and dict round trips, errors naming the field."""

from __future__ import annotations

import pytest

from mobile_pipeline.nets.spec import ArchSpec, SpecError


def test_string_round_trip() -> None:
    spec = ArchSpec(stem_width=8, encoder_widths=(16, 24, 32), num_blocks=3, block="fs",
                    fs_branches=("dw3", "conv2"), fusion=("sta", "add", "concat"), upsample="bilinear", act="relu6")
    assert ArchSpec.from_string(spec.to_string()) == spec
    assert ArchSpec.from_dict(spec.to_dict()) == spec
    assert ArchSpec.from_json(spec.to_json()) == spec


def test_resnet_baseline_expressible() -> None:
    spec = ArchSpec(block="resnet", fusion=("add", "add"))
    assert "fs" not in spec.to_string().split("_")[2]
    assert ArchSpec.from_string(spec.to_string()) == spec


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"fusion": ("sta",)}, "fusion"),
        ({"upsample": "pixelshuffle"}, "upsample"),
        ({"fs_branches": ("dw7",)}, "fs_branches"),
        ({"stem_width": 2}, "stem_width"),
        ({"block": "mbconv"}, "block"),
        ({"encoder_widths": 5}, "encoder_widths must be a list"),
        ({"fusion": "sta", "encoder_widths": (24, 32, 48)}, "fusion must be a list"),
    ],
)
def test_invalid_spec_names_field(kwargs: dict, field: str) -> None:
    with pytest.raises(SpecError, match=field):
        ArchSpec(**kwargs)


def test_unknown_dict_field_rejected() -> None:
    with pytest.raises(SpecError, match="unknown spec field"):
        ArchSpec.from_dict({"stem": 8})


def test_garbage_string_rejected() -> None:
    with pytest.raises(SpecError, match="cannot parse|unknown token"):
        ArchSpec.from_string("s8_eX")


def test_bad_json_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="not valid JSON"):
        ArchSpec.from_json("{stem_width: 8")
    with pytest.raises(SpecError, match="must be an object"):
        ArchSpec.from_json("[1, 2]")
