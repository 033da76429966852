"""The aligned text tables the benchmarks and the flicker report print."""

from __future__ import annotations

from mobile_pipeline.utils.text_table import text_table


def test_columns_align_to_the_widest_cell() -> None:
    table = text_table(["tier", "PSNR dB"], [["cpu", 20.46], ["npu-long", "20.4"]])
    assert table.splitlines() == [
        "tier      PSNR dB",
        "--------  -------",
        "cpu       20.46  ",
        "npu-long  20.4   ",
    ]


def test_no_rows_gives_the_header_and_its_rule() -> None:
    assert text_table(["a", "bb"], []).splitlines() == ["a  bb", "-  --"]
