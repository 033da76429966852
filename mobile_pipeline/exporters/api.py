"""One call per variant, one per tier: convert, validate, place, report.

``export_variant(generator, "tflite", "int8", out_dir, input_hw=(256, 256))`` is the whole
story for one artifact: resolve the spelling, validate the recipe, convert (the float base
per format is converted once and cached by content, so a tier's fp32/fp16/int8 variants
share it), stage the artifact under ``out_dir/.staging``, run the validation gate, then
rename it next to the passed artifacts or into ``out_dir/rejected`` with its report.

``export_seconds`` in the report times the conversion of that variant, including the float
base conversion when it was not cached yet (the first variant of each format pays it).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from mobile_pipeline.exporters.formats import FormatInfo, resolve_format, resolve_precision
from mobile_pipeline.exporters.photos import bundled_photos, prepare_photos, split_photos
from mobile_pipeline.exporters.recipes import Recipe, make_recipe
from mobile_pipeline.exporters.report import ArtifactReport
from mobile_pipeline.exporters.validate import (
    build_report,
    check_arch,
    check_ops,
    check_parity,
    place_artifact,
    write_parity_reference,
)
from mobile_pipeline.utils.atomic import atomic_write_bytes

STAGING_DIR = ".staging"
DEFAULT_CALIBRATION_IMAGES = 8
DEFAULT_VALIDATION_IMAGES = 4
_CACHE_SIZE = 8
_float_cache: OrderedDict[tuple, Any] = OrderedDict()


def model_fingerprint(model) -> str:
    """sha256 over the module's state (names, shapes, values) and class: the cache key."""
    digest = hashlib.sha256(type(model).__qualname__.encode())
    spec = getattr(model, "spec", None)
    if spec is not None and hasattr(spec, "to_string"):
        digest.update(spec.to_string().encode())
    for name, tensor in model.state_dict().items():
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{name}{array.shape}{array.dtype}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _cached(key: tuple, build):
    if key in _float_cache:
        _float_cache.move_to_end(key)
        return _float_cache[key]
    value = build()
    _float_cache[key] = value
    while len(_float_cache) > _CACHE_SIZE:
        _float_cache.popitem(last=False)
    return value


def clear_cache() -> None:
    """Forget cached float conversions (tests use it to time cold exports)."""
    _float_cache.clear()


def _default_photos(calibration, validation, n_cal: int, n_val: int):
    if calibration is not None and validation is not None:
        return calibration, validation
    cal, val = split_photos(bundled_photos(), n_cal, n_val)
    return (calibration if calibration is not None else cal), (validation if validation is not None else val)


def _tier_constraints(tier: str | None, info: FormatInfo, generator=None,
                      recipe: Recipe | None = None) -> tuple[list[str], bool, str | None, list[str]]:
    """(forbidden ops, int8 required, delegate hint, arch-constraint violations) of ``tier``.

    An ExecuTorch ``.pte`` carries its delegate, so its hint is the recipe's backend, and a
    Core ML-delegated one also answers to the tier's Core ML op limits (its ops are MIL ops).
    """
    baked = getattr(recipe, "delegate", None) if info.name == "executorch" else None
    if tier is None:
        return [], False, baked, []
    from mobile_pipeline.tiers.table import load_tier_table

    table = load_tier_table()
    if tier not in table:
        import difflib

        close = difflib.get_close_matches(tier, list(table), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown tier {tier!r}{hint} (tiers: {', '.join(table)})")
    spec = table[tier]
    forbidden = list(spec.forbidden_ops.get(info.name, []))
    if baked == "coreml":
        forbidden += spec.forbidden_ops.get("coreml", [])
    arch = check_arch(getattr(generator, "spec", None), spec) if generator is not None else []
    if baked is not None:
        return forbidden, spec.int8_required(info.name), baked, arch
    platform = "ios" if info.name == "coreml" else "android"
    return forbidden, spec.int8_required(info.name), spec.delegate_for(platform), arch


def _convert(generator, info: FormatInfo, recipe: Recipe, input_hw: tuple[int, int],
             calibration: np.ndarray, staged: Path) -> tuple:
    """Write the artifact to ``staged``; return (input spec, output spec)."""
    fingerprint = model_fingerprint(generator)
    hw = (int(input_hw[0]), int(input_hw[1]))
    if info.name == "onnx":
        from mobile_pipeline.exporters import torch2onnx

        base = _cached(("onnx", fingerprint, hw, recipe.opset),
                       lambda: torch2onnx.export_float(generator, hw, recipe.opset))
        atomic_write_bytes(staged, torch2onnx.convert(base, recipe, calibration))
        return torch2onnx.io_specs(hw)
    if info.name == "tflite":
        from mobile_pipeline.exporters import torch2tflite

        # One float base for every TFLite precision: the clamp rewrite (see
        # torch2tflite.export_float) is exact in float and lets int8-full stay all-integer.
        base = _cached(("tflite", fingerprint, hw, recipe.channel_last_io),
                       lambda: torch2tflite.export_float(generator, hw, recipe.channel_last_io, int8_friendly=True))
        data = torch2tflite.convert(base, recipe, calibration)
        atomic_write_bytes(staged, data)
        try:
            return torch2tflite.io_specs(data)
        except ValueError:  # the interpreter refuses the flatbuffer: the parity gate rejects it
            return torch2tflite.requested_io_specs(hw, recipe)
    if info.name == "executorch":
        from mobile_pipeline.exporters import torch2executorch

        # No float base is shared: each delegate lowers (and int8 quantizes) its own export.
        atomic_write_bytes(staged, torch2executorch.convert(generator, hw, recipe, calibration))
        return torch2executorch.io_specs(hw)
    from mobile_pipeline.exporters import torch2coreml

    if recipe.precision == "fp32":
        mlmodel = torch2coreml.convert(generator, hw, recipe)
    else:  # fp16 and the weight-compressed variants share one fp16 conversion
        fp16 = recipe.model_copy(update={"precision": "fp16"})
        base = _cached(("coreml", fingerprint, hw, recipe.io, recipe.minimum_deployment_target),
                       lambda: torch2coreml.convert(generator, hw, fp16))
        mlmodel = base if recipe.precision == "fp16" else torch2coreml.convert(generator, hw, recipe, base=base)
    # ``staged`` is already a private temporary (renamed into place after validation).
    torch2coreml.save(mlmodel, staged)
    return torch2coreml.io_specs(hw, recipe)


def export_variant(generator, format: str, precision: str | None, out_dir: Path, *, input_hw: tuple[int, int],
                   tier: str | None = None, calibration: list[np.ndarray] | np.ndarray | None = None,
                   validation: list[np.ndarray] | np.ndarray | None = None, recipe: dict | None = None,
                   stem: str | None = None) -> ArtifactReport:
    """Export, validate and place one variant; returns its report (also written to disk).

    Args:
        generator: the stylizer (``nn.Module``, N,3,H,W [0,1] -> same).
        format: ``onnx``/``tflite``/``coreml``/``executorch`` or an alias (``tfl``,
            ``mlpackage``, ``pte`` ...).
        precision: a precision of that format or an alias (``int8`` -> ``int8-full`` for
            TFLite, ``w8`` for Core ML); None = the format's default (fp32). ExecuTorch:
            fp32 / int8 on XNNPACK, fp16 on Core ML (the recipe's ``delegate`` overrides).
        out_dir: release folder; failing artifacts go to ``out_dir/rejected``.
        input_hw: fixed input (H, W), multiples of the generator's downsample factor.
        tier: tier name whose ``forbidden_ops``, ``int8_only`` and ``arch_constraints`` apply
            (None: no op limits). A generator that breaks the tier's ``arch_constraints``
            (e.g. a dilated FS branch on the npu tier) is rejected with the reason.
        calibration: photos for static quantization (H x W x 3 uint8/float, or N,3,H,W);
            None = scikit-image's bundled photos.
        validation: photos for the parity gate (same forms); None = bundled photos.
        recipe: recipe overrides (validated, unknown keys rejected), see ``recipes.py``.
        stem: artifact file stem (default: tier name, else the generator's class name).

    Raises:
        FormatError / RecipeError: unknown format, unsupported precision, bad recipe.
    """
    import torch

    info = resolve_format(format)
    precision = resolve_precision(info, precision)
    validated = make_recipe(info.name, precision, recipe)
    generator = generator.eval()
    spec = getattr(generator, "spec", None)
    factor = getattr(spec, "downsample_factor", 1)
    if input_hw[0] % factor or input_hw[1] % factor:
        raise ValueError(f"input_hw {tuple(input_hw)} must be multiples of the generator's downsample factor {factor}")
    forbidden, int8_required, delegate, arch_violations = _tier_constraints(tier, info, generator, validated)
    cal_imgs, val_imgs = _default_photos(calibration, validation, DEFAULT_CALIBRATION_IMAGES, DEFAULT_VALIDATION_IMAGES)
    cal = prepare_photos(cal_imgs, input_hw)
    if validated.calibration_images:
        cal = cal[: validated.calibration_images]
    val = prepare_photos(val_imgs, input_hw)
    with torch.no_grad():
        reference = generator(torch.from_numpy(val)).numpy().astype(np.float32)

    out_dir = Path(out_dir)
    name = f"{stem or tier or type(generator).__name__.lower()}_{precision}{info.suffix}"
    staging_root = out_dir / STAGING_DIR
    staging_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="export_", dir=staging_root))
    try:
        staged = staging / name
        start = time.perf_counter()
        input_spec, output_spec = _convert(generator, info, validated, input_hw, cal, staged)
        seconds = time.perf_counter() - start
        program_problems = None
        if info.name == "coreml":
            from mobile_pipeline.exporters.torch2coreml import check_program

            try:
                program_problems = check_program(staged, precision, input_hw, validated)
            except Exception as err:
                program_problems = [f"cannot read the ML Program: {type(err).__name__}: {err}"]
        elif info.name == "executorch":
            from mobile_pipeline.exporters.torch2executorch import check_program as check_pte

            try:
                program_problems = check_pte(staged, validated, input_hw)
            except Exception as err:
                program_problems = [f"cannot read the ExecuTorch program: {type(err).__name__}: {err}"]
        parity = check_parity(staged, precision, val, reference)
        companions = ()
        if info.name == "coreml":  # what `export verify-coreml` checks the artifact against on a Mac
            companions = (write_parity_reference(generator, val, staged),)
        op_check = check_ops(staged, info, forbidden, int8_required, program_problems, arch_violations)
        report = build_report(
            staged, info=info, precision=precision, parity=parity, op_check=op_check, tier=tier,
            arch=spec.to_string() if spec is not None and hasattr(spec, "to_string") else None,
            recipe=validated.model_dump(mode="json"), input=input_spec, output=output_spec,
            delegate_hint=delegate, export_seconds=round(seconds, 3),
        )
        place_artifact(staged, report, out_dir, companions=companions)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        try:
            staging_root.rmdir()  # only when empty (no concurrent export)
        except OSError:
            pass
    return report


def export_tier(generator, tier: str, out_dir: Path, *, calibration=None, validation=None,
                resolution: int | None = None, formats: tuple[str, ...] | None = None,
                progress: bool = True, jobs: int = 1,
                qnn_emulation_images: int | None = None) -> list[ArtifactReport]:
    """Export every variant the tier table lists for ``tier`` (``device_tiers/tiers.yaml``).

    ``qnn_emulation_images`` caps the validation photos each Hexagon precompile is emulated on
    (the HTP emulator takes seconds per 384 px frame); None = all of them.

    On a tier whose Qualcomm delegate is QNN, the passed QDQ ONNX variants are then compiled
    for each Hexagon architecture of the tier's SoCs (``exporters/qnn_export.py``); their
    reports follow the tier's variants in the returned list.

    Args:
        resolution: override the tier's square export side (e.g. the tiny preset's 64).
        formats: only these formats (the release config's ``export.formats``).
        jobs: worker processes; each takes whole formats (a format's variants share one
            float conversion), so up to one process per format is useful. The converters
            are mostly single-threaded, so 2 jobs on 2 cores roughly halve the wall time of
            a tier with several formats, at the price of importing torch once per worker.
    """
    from mobile_pipeline.tiers.table import load_tier_table

    table = load_tier_table()
    if tier not in table:
        _tier_constraints(tier, resolve_format("onnx"))  # raises with a "did you mean"
    spec = table[tier]
    side = int(resolution or spec.resolution)
    wanted = {resolve_format(f).name for f in formats} if formats else None
    variants = [(v.format, v.precision) for v in spec.variants if wanted is None or v.format in wanted]
    cal, val = _default_photos(calibration, validation, DEFAULT_CALIBRATION_IMAGES, DEFAULT_VALIDATION_IMAGES)
    groups: dict[str, list[tuple[str, str]]] = {}
    for fmt, precision in variants:
        groups.setdefault(fmt, []).append((fmt, precision))
    if jobs <= 1 or len(groups) <= 1:
        results = {}
        for fmt, group in groups.items():
            for report in _export_group(generator, group, Path(out_dir), tier, side, cal, val, progress):
                results[(report.format, report.precision)] = report
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn, not fork: forking a process that already ran torch/onnxruntime threads can hang.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(jobs, len(groups)), mp_context=context) as pool:
            futures = [pool.submit(_export_group, generator, group, Path(out_dir), tier, side, cal, val, progress, 1)
                       for group in groups.values()]
            results = {(r.format, r.precision): r for future in futures for r in future.result()}
    reports = [results[(resolve_format(f).name, resolve_precision(f, p))] for f, p in variants]
    if wanted is None or "onnx" in wanted:
        # Qualcomm tiers: each passed QDQ ONNX variant, precompiled and gated per Hexagon arch.
        from mobile_pipeline.exporters.qnn_export import precompile_tier

        emulated = val if qnn_emulation_images is None else val[:qnn_emulation_images]
        reports += precompile_tier(generator, tier, Path(out_dir), reports, validation=emulated,
                                   input_hw=(side, side), progress=progress)
    return reports


def _export_group(generator, group: list[tuple[str, str]], out_dir: Path, tier: str, side: int,
                  cal, val, progress: bool, threads: int | None = None) -> list[ArtifactReport]:
    """Export the variants of one format in order (a worker's unit of work)."""
    if threads:  # parallel workers: one thread each, so workers do not oversubscribe the cores
        import torch

        torch.set_num_threads(threads)
    reports = []
    for fmt, precision in group:
        if progress:
            print(f"[export {tier}] {fmt} {precision} @ {side}px ...", flush=True)
        report = export_variant(generator, fmt, precision, out_dir, input_hw=(side, side), tier=tier,
                                calibration=cal, validation=val)
        if progress:
            print(f"    {'ok      ' if report.passed else 'REJECTED'} {report.artifact} "
                  f"{report.bytes / 1024:.0f} KiB, {_parity_text(report)}, {report.export_seconds:.1f}s"
                  + ("" if report.passed else f": {'; '.join(report.reasons)}"), flush=True)
        reports.append(report)
    return reports


def _parity_text(report: ArtifactReport) -> str:
    parity = report.parity
    if parity.psnr_db is None:
        return f"parity n/a ({parity.not_runnable_reason})"
    return f"{parity.psnr_db:.1f} dB (gate {parity.gate_db:.0f})"
