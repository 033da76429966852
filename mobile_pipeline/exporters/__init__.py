"""Export and quantization: ONNX, TFLite, Core ML, ExecuTorch variants, each validated.

Modules: ``formats`` (the formats table, aliases, parity gates), ``recipes`` (validated
quantization recipes), ``torch2onnx`` / ``torch2tflite`` / ``torch2coreml`` / ``torch2executorch`` (one per format),
``validate`` (parity, op support, size; rejected/ placement), ``runtimes`` (``load_runner``),
``api`` (``export_variant``, ``export_tier``), ``photos`` (calibration/validation photos),
``tiling`` + ``stylize`` (HD tiling and the ``stylize`` command), ``report`` (ArtifactReport),
``qnn`` (QNN HTP compile + emulator), ``qnn_export`` (per-Hexagon-arch precompiled models of a
tier, gated), ``qnn_probe`` (search-space choices through the HTP compiler).
Nothing heavy is imported here: back ends load inside the functions that need them.
"""
