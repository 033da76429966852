"""bench stage: local runtime benchmarks, on-device result import, tier-table calibration.

Modules (import the one you need; none imports a heavy back end at module level):

* :mod:`~mobile_pipeline.bench.run` – ``bench_artifacts(paths, cfg, out_dir)`` -> bench.json + chart.
* :mod:`~mobile_pipeline.bench.runners` – onnxruntime / LiteRT (XNNPACK) / Core ML runners.
* :mod:`~mobile_pipeline.bench.device_import` – ``parse_benchmark_model_output``, ``import_measurement``.
* :mod:`~mobile_pipeline.bench.measurement` – the stored measurement schema (also the JSON import form).
* :mod:`~mobile_pipeline.bench.calibrate` – ``calibrate``: per-tier latency scales and tier moves.
* :mod:`~mobile_pipeline.bench.adb` – optional Android runner over adb.
"""
