"""Extract the committed AI Hub measurement set from a qai-hub-models wheel.

    pip download qai-hub-models==0.65.0 --no-deps -d /tmp/qaihub
    python scripts/curate_aihub.py /tmp/qaihub/qai_hub_models-0.65.0-py3-none-any.whl

Writes ``device_tiers/measurements/aihub/<model>.json`` (one JSON list per network, one
measurement per line) for every network rebuilt in ``mobile_pipeline/bench/reference_nets.py``:
phones and tablets, the QCS8550 proxy of the Snapdragon 8 Gen 2 and the RB3 Gen 2 kit (QCS6490,
HTP v68: the generation of the npu tier's reference Snapdragon 888, which AI Hub no longer
profiles); not cars, laptops or other kits, which run other software stacks. Also the
runtimes we export to or compile for (tflite, onnx, qnn_dlc) and the precisions the latency
model covers. Devices whose numbers AI Hub copies from another chipset are left out by the
importer. Then refit: ``mobile-pipeline bench calibrate``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

KEEP_FORM_FACTORS = {"phone", "tablet"}
KEEP_BOARDS = {"QCS8550", "QCS6490"}
KEEP_RUNTIMES = {"tflite", "onnx", "qnn_dlc"}
KEEP_PRECISIONS = {"float", "w8a8", "w8a16"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help="qai_hub_models-<version>-py3-none-any.whl")
    parser.add_argument("--out", type=Path, default=None, help="default: device_tiers/measurements/aihub")
    args = parser.parse_args(argv)

    from mobile_pipeline.bench.aihub import dump_measurements, read_aihub_wheel
    from mobile_pipeline.bench.measurement import default_measurements_dir
    from mobile_pipeline.bench.reference_nets import REFERENCE_NETS
    from mobile_pipeline.utils.atomic import atomic_write_text

    out = args.out or default_measurements_dir() / "aihub"
    result = read_aihub_wheel(args.wheel, sorted(REFERENCE_NETS))
    kept = [m for m in result.measurements
            if (m.raw.get("form_factor") in KEEP_FORM_FACTORS or m.device.soc_model in KEEP_BOARDS)
            and m.runtime in KEEP_RUNTIMES
            and m.precision in KEEP_PRECISIONS]
    for model in sorted(REFERENCE_NETS):
        rows = sorted((m for m in kept if m.reference_model == model),
                      key=lambda m: (m.precision, m.runtime, m.device.device_name or ""))
        if not rows:
            print(f"{model}: nothing kept", file=sys.stderr)
            continue
        path = atomic_write_text(out / f"{model}.json", dump_measurements(rows))
        print(f"{model:26s} {len(rows):4d} measurements -> {path}")
    print(f"kept {len(kept)} of {len(result.measurements)}; skipped {len(set(result.skipped))} entries "
          "(failed jobs, copied numbers)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
