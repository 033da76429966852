"""Benchmark artifacts on local runtimes; import on-device results; calibrate the tier table.

  mobile-pipeline bench RELEASE_DIR_OR_ARTIFACTS... [--out DIR] [--runs N] [--warmup N] [--threads 1,2]
      time every artifact on onnxruntime / LiteRT (XNNPACK) / ExecuTorch / Core ML (macOS); writes bench.json
      and bench_latency.png.
  mobile-pipeline bench import FILE --soc SOC_MODEL [--manufacturer M] [--device-name NAME]
                               [--artifact NAME_OR_PATH] [--arch ARCH_STRING] [--tier T] [--input-hw H,W]
      store a benchmark_model log or a JSON measurement under device_tiers/measurements/<soc>/.
  mobile-pipeline bench import perf.yaml | profile.json | qai_hub_models-X.whl [--model ID]
                               [--device 'Samsung Galaxy S24' --runtime tflite --precision w8a8]
                               [--device-soc 'NAME=SOC']
      store Qualcomm AI Hub on-device profiles under device_tiers/measurements/aihub/.
  mobile-pipeline bench calibrate [--dry-run] [--margin 0.1]
      refit per-tier latency scales (device_tiers/calibration.yaml) and move devices that miss
      or beat their frame budget (device_tiers/overrides.yaml); refit the per-phone latency
      models on imported AI Hub profiles (device_tiers/device_latency.json).
  mobile-pipeline bench adb ARTIFACT.tflite --binary PATH/benchmark_model [--serial S] [--threads N] [--use-gpu]
      run on an attached Android phone and import the result (skipped when adb sees no device).

A path literally named import/calibrate/adb can be benchmarked as ./import.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mobile_pipeline.commands._common import add_config_arguments, load_release_config

ACTIONS = ("import", "calibrate", "adb")


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for bench.json and the chart (default: the release folder, or the first artifact's folder)")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per artifact and runtime (default: config bench.runs)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed warm-up runs (default: config bench.warmup)")
    parser.add_argument("--threads", default=None, help="comma-separated thread counts, e.g. 1,2 (default: config bench.threads)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_config_arguments(parser)
    _add_run_options(parser)
    parser.add_argument("argv", nargs=argparse.REMAINDER, metavar="PATHS | import ... | calibrate ... | adb ...",
                        help="release folder(s) or artifacts to benchmark, or an action with its own options "
                             "(`mobile-pipeline bench import --help`)")


def run(args: argparse.Namespace) -> int:
    argv = list(args.argv or [])
    if not argv:
        print("error: give a release folder or artifact files to benchmark, or one of: "
              "`bench import FILE --soc SOC`, `bench calibrate`, `bench adb ARTIFACT --binary PATH`", file=sys.stderr)
        return 2
    action = argv[0]
    if action == "import":
        return _run_import(argv[1:])
    if action == "calibrate":
        return _run_calibrate(argv[1:])
    if action == "adb":
        return _run_adb(argv[1:])
    return _run_bench(args, argv)


# ----------------------------------------------------------------------------- bench
def _run_bench(outer: argparse.Namespace, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mobile-pipeline bench", description="time artifacts on local runtimes")
    parser.add_argument("paths", nargs="+", type=Path)
    add_config_arguments(parser)
    _add_run_options(parser)
    # Options given before the paths were parsed by the outer parser; they are the defaults here.
    parser.set_defaults(**{k: v for k, v in vars(outer).items() if k != "argv" and v not in (None, False)})
    args = parser.parse_intermixed_args(argv)
    cfg = load_release_config(args)
    updates = {k: v for k, v in (("runs", args.runs), ("warmup", args.warmup)) if v is not None}
    if args.threads:
        try:
            updates["threads"] = tuple(int(t) for t in args.threads.split(",") if t.strip())
        except ValueError:
            print(f"error: --threads: expected comma-separated integers like 1,2, got {args.threads!r}", file=sys.stderr)
            return 2
    from pydantic import ValidationError

    from mobile_pipeline.config import BenchConfig

    try:
        bench_cfg = BenchConfig.model_validate({**cfg.bench.model_dump(), **updates})
    except ValidationError as err:
        field = ".".join(str(p) for p in err.errors()[0]["loc"])
        print(f"error: --{field}: {err.errors()[0]['msg']}", file=sys.stderr)
        return 2

    from mobile_pipeline.bench.run import BenchError, bench_artifacts

    out_dir = args.out
    if out_dir is None:
        first = args.paths[0]
        out_dir = first if first.is_dir() and first.suffix != ".mlpackage" else first.parent
    try:
        bench_json = bench_artifacts(args.paths, bench_cfg, out_dir, progress=not args.no_progress)
    except BenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    _print_table(bench_json)
    return 0


def _print_table(bench_json: Path) -> None:
    import json

    doc = json.loads(bench_json.read_text(encoding="utf-8"))
    print(f"{'artifact':36s} {'runtime':22s} {'status':7s} {'p50 ms':>8s} {'p90 ms':>8s} {'p90/p50':>7s} "
          f"{'load ms':>8s} {'mem MB':>7s} {'parity dB':>9s}")
    for r in doc["results"]:
        label = f"{r['runtime']}-{r['delegate']}-t{r['threads']}"
        if r["status"] != "ok":
            print(f"{r['artifact'][:36]:36s} {label:22s} {r['status']:7s} {r['reason']}")
            continue
        parity = "-" if r.get("parity_psnr_db") is None else f"{r['parity_psnr_db']:.1f}"
        print(f"{r['artifact'][:36]:36s} {label:22s} {'ok':7s} {r['p50_ms']:8.2f} {r['p90_ms']:8.2f} "
              f"{r['spread_p90_p50']:7.2f} {r['load_ms']:8.1f} {r['peak_rss_delta_mb']:7.1f} {parity:>9s}")
    for warning in doc["warnings"]:
        print(f"WARN {warning}")
    print(f"wrote {bench_json}" + (f" and {bench_json.parent / doc['chart']}" if doc.get("chart") else ""))


# ---------------------------------------------------------------------------- import
def _run_import(argv: list[str]) -> int:
    import json

    parser = argparse.ArgumentParser(
        prog="mobile-pipeline bench import",
        description="Store an on-device measurement: a TFLite benchmark_model log, or a JSON measurement "
                    "(format: device_tiers/measurements/README.md).")
    parser.add_argument("file", type=Path, help="benchmark_model output (text) or a JSON measurement file")
    parser.add_argument("--soc", default=None, help="SoC model of the phone, e.g. SM8650 (Build.SOC_MODEL); required for logs")
    parser.add_argument("--manufacturer", default=None, help="SoC manufacturer, e.g. QTI (Build.SOC_MANUFACTURER)")
    parser.add_argument("--device-name", default=None, help="phone name, for humans (e.g. 'Galaxy S24')")
    parser.add_argument("--artifact", default=None,
                        help="artifact name, or its path: its .report.json then supplies arch, tier and input size")
    parser.add_argument("--arch", default=None, help="architecture string of the generator (for calibration)")
    parser.add_argument("--tier", default=None, help="tier the artifact was exported for")
    parser.add_argument("--input-hw", default=None, help="input size H,W (default: the artifact report's, or the tier's)")
    parser.add_argument("--out", type=Path, default=None, help="measurements folder (default: device_tiers/measurements)")
    aihub = parser.add_argument_group("Qualcomm AI Hub profiles (perf.yaml, profile-job JSON, qai-hub-models wheel)")
    aihub.add_argument("--model", action="append", default=None,
                       help="AI Hub model id (qai_hub_models/models/<id>); default: the perf.yaml's folder name; "
                            "repeat or comma-separate to pick models from a wheel")
    aihub.add_argument("--device", default=None, help="AI Hub device name of a profile job, e.g. 'Samsung Galaxy S24'")
    aihub.add_argument("--runtime", default=None, help="runtime of a profile job: tflite, qnn_dlc, onnx ...")
    aihub.add_argument("--precision", default=None, help="precision of a profile job: float, w8a8, w8a16 ...")
    aihub.add_argument("--device-soc", action="append", default=None, metavar="'NAME=SOC'",
                       help="map a device missing from device_tiers/aihub_devices.yaml to its SoC model")
    aihub.add_argument("--origin", default=None, help="where the file comes from (default: its path)")
    args = parser.parse_intermixed_args(argv)
    from mobile_pipeline.bench.device_import import is_aihub_file

    if is_aihub_file(args.file):
        return _import_aihub(args)
    input_hw = None
    if args.input_hw:
        try:
            input_hw = tuple(int(v) for v in args.input_hw.split(","))
            assert len(input_hw) == 2
        except (ValueError, AssertionError):
            print(f"error: --input-hw: expected H,W like 256,256, got {args.input_hw!r}", file=sys.stderr)
            return 2
    from mobile_pipeline.bench.device_import import import_measurement
    from mobile_pipeline.bench.measurement import MeasurementError, validate_measurement

    try:
        stored = import_measurement(args.file, soc_model=args.soc, manufacturer=args.manufacturer,
                                    device_name=args.device_name, artifact=args.artifact, arch=args.arch,
                                    tier=args.tier, input_hw=input_hw, out_root=args.out)
    except MeasurementError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in stored:
        m = validate_measurement(json.loads(path.read_text(encoding="utf-8")), str(path))
        print(f"imported {m.artifact} on {m.device.soc_model}: {m.latency.typical_ms:.2f} ms "
              f"({m.delegate or '?'}, {m.num_threads or '?'} threads) -> {path}")
        if m.parity is not None:
            outcome = "verifies" if m.parity.passed else "FAILED parity: leaves out"
            print(f"  parity {m.parity.problem or f'{m.parity.psnr_db:.1f} dB'} (gate {m.parity.gate_db:.0f} dB): "
                  f"{outcome} {m.artifact} (sha256 {m.parity.artifact_sha256[:12]}...) in the next manifest build")
        elif not m.arch:
            print("  note: no arch recorded; calibration will skip it (use --arch or --artifact PATH)")
    return 0


def _import_aihub(args: argparse.Namespace) -> int:
    import json

    from mobile_pipeline.bench.aihub import parse_device_soc
    from mobile_pipeline.bench.device_import import import_aihub
    from mobile_pipeline.bench.measurement import MeasurementError

    models = [m.strip() for item in (args.model or []) for m in item.split(",") if m.strip()] or None
    try:
        stored, skipped = import_aihub(args.file, models=models, device=args.device, runtime=args.runtime,
                                       precision=args.precision, device_soc=parse_device_soc(args.device_soc),
                                       origin=args.origin, out_root=args.out)
    except MeasurementError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in stored:
        rows = json.loads(path.read_text(encoding="utf-8"))
        devices = sorted({r["device"].get("device_name") or r["device"]["soc_model"] for r in rows})
        runtimes = sorted({f"{r.get('runtime')}/{r.get('precision')}" for r in rows})
        print(f"imported {len(rows)} AI Hub measurements of {rows[0].get('reference_model')} on {len(devices)} devices "
              f"({', '.join(runtimes)}) -> {path}")
    for note in skipped[:20]:
        print(f"  skipped: {note}")
    if len(skipped) > 20:
        print(f"  ... and {len(skipped) - 20} more skipped")
    print("refit the device latency model with `mobile-pipeline bench calibrate`")
    return 0


# ------------------------------------------------------------------------- calibrate
def _run_calibrate(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="mobile-pipeline bench calibrate",
        description="Refit per-tier latency scales from device_tiers/measurements and move devices that miss "
                    "or beat their tier's frame budget.")
    parser.add_argument("--dry-run", action="store_true", help="report only; write nothing")
    parser.add_argument("--margin", type=float, default=0.10, help="tolerance around the frame budget (default 0.10)")
    parser.add_argument("--no-moves", action="store_true", help="only refit the scales; move no device")
    parser.add_argument("--measurements", type=Path, default=None, help="measurements folder (default: device_tiers/measurements)")
    args = parser.parse_intermixed_args(argv)
    if not 0 <= args.margin < 1:
        print(f"error: --margin must be in [0, 1), got {args.margin}", file=sys.stderr)
        return 2
    from mobile_pipeline.bench.calibrate import CalibrationError, calibrate
    from mobile_pipeline.bench.measurement import MeasurementError

    try:
        report = calibrate(measurements_dir=args.measurements, margin=args.margin, moves=not args.no_moves,
                           dry_run=args.dry_run)
    except (CalibrationError, MeasurementError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except Exception as err:  # the latency model / tier table name their own fix (LUT build, YAML field)
        if type(err).__name__ in ("LatencyModelError", "TierTableError"):
            print(f"error: {err}", file=sys.stderr)
            return 1
        raise
    print(report.summary())
    for path in report.written:
        print(f"wrote {path}")
    if args.dry_run:
        print("dry run: nothing written")
    return 0


# ------------------------------------------------------------------------------- adb
def _run_adb(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mobile-pipeline bench adb",
                                     description="Run benchmark_model on an attached Android phone and import the result.")
    parser.add_argument("artifact", type=Path, help=".tflite artifact")
    parser.add_argument("--binary", type=Path, required=True, help="benchmark_model built for the phone's ABI")
    parser.add_argument("--serial", default=None, help="adb serial when several phones are attached")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--use-gpu", action="store_true")
    parser.add_argument("--use-nnapi", action="store_true")
    args = parser.parse_intermixed_args(argv)
    from mobile_pipeline.bench.adb import AdbError, AdbUnavailable, run_benchmark_model
    from mobile_pipeline.bench.measurement import MeasurementError

    try:
        stored, _ = run_benchmark_model(args.artifact, args.binary, serial=args.serial, threads=args.threads,
                                        use_gpu=args.use_gpu, use_nnapi=args.use_nnapi)
    except AdbUnavailable as err:
        print(str(err), file=sys.stderr)
        return 0
    except (AdbError, MeasurementError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"imported -> {stored}")
    return 0
