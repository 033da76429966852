"""Convert small torch modules with litert-torch and time them with the LiteRT interpreter.

Shared by the LUT builder (single ops) and the latency benchmark (whole generators) so both
sides of the comparison are measured the same way: 1 interpreter thread, inputs set once,
``invoke()`` timed repeatedly, and the 25th percentile of the runs reported. On a shared
machine other processes only ever add time, so a low percentile is a steadier estimate of
the op's own cost than the mean or median.
"""

from __future__ import annotations

import os
import time
from typing import Sequence

import numpy as np
import torch
from torch import nn

TIMING_PERCENTILE = 25.0


def _quiet_litert() -> None:
    # litert-torch prints a multi-line progress tree per conversion; hundreds of them
    # would drown the LUT builder's own progress bar.
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def convert_module(module: nn.Module, inputs: Sequence[torch.Tensor], channel_last: bool) -> bytes:
    """The .tflite flatbuffer of ``module`` for the given NCHW example inputs.

    ``channel_last=True`` wraps the module so its inputs and outputs are NHWC, which is what
    a network's inner ops see after litert-torch's layout optimisation (no transposes around
    each op). Whole networks are converted with NCHW I/O, as the exporter ships them.
    """
    _quiet_litert()
    import litert_torch

    module = module.eval()
    if channel_last:
        wrapped = litert_torch.to_channel_last_io(module, args=list(range(len(inputs))), outputs=[0]).eval()
        sample = tuple(t.permute(0, 2, 3, 1).contiguous() for t in inputs)
        edge_model = litert_torch.convert(wrapped, sample)
    else:
        edge_model = litert_torch.convert(module, tuple(inputs))
    return edge_model.model_content()


def time_tflite(model: bytes, *, min_runs: int = 15, min_seconds: float = 0.1, max_runs: int = 300,
                warmup: int = 2, threads: int = 1) -> dict[str, float]:
    """Time ``invoke()`` of a .tflite model; returns p25/median/min in ms and the run count."""
    _quiet_litert()
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model, num_threads=threads)
    interpreter.allocate_tensors()
    rng = np.random.default_rng(0)
    for detail in interpreter.get_input_details():
        data = rng.random(detail["shape"], dtype=np.float32).astype(detail["dtype"])
        interpreter.set_tensor(detail["index"], data)
    for _ in range(warmup):
        interpreter.invoke()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_runs and (len(times) < min_runs or time.perf_counter() - start < min_seconds):
        t0 = time.perf_counter()
        interpreter.invoke()
        times.append((time.perf_counter() - t0) * 1e3)
    arr = np.asarray(times)
    return {
        "ms": float(np.percentile(arr, TIMING_PERCENTILE)),
        "median_ms": float(np.median(arr)),
        "min_ms": float(arr.min()),
        "runs": len(times),
    }


def measure_module(module: nn.Module, inputs: Sequence[torch.Tensor], *, channel_last: bool,
                   **timing: float) -> dict[str, float]:
    """Convert then time: the LUT entry (or end-to-end measurement) of one module."""
    t0 = time.perf_counter()
    with torch.no_grad():
        model = convert_module(module, inputs, channel_last=channel_last)
    convert_s = time.perf_counter() - t0
    result = time_tflite(model, **timing)
    result["convert_s"] = convert_s
    return result


def litert_versions() -> dict[str, str]:
    """Versions recorded with a LUT: a LUT measured with another runtime is stale."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("ai-edge-litert", "litert-torch", "torch"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "missing"
    return out
