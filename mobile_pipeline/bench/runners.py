"""Per-runtime model runners for benchmarking: load, convert I/O once, time only the call.

Why not the exporters' ``load_runner``: that one hides layout and quantization inside
``run()`` (right for parity checks and stylizing), but a benchmark must time what the phone
app times — a frame in the model's *native* input format going in, the native output coming
out — with the thread count and delegate under our control. So each runner here:

* ``prepare(batch)``: NCHW float [0,1] -> native input (layout, dtype, int8 quantization), once;
* ``invoke(native)``: the timed call (input copy in, inference, output copy out);
* ``to_nchw(native_out)``: native output -> NCHW float [0,1], for parity.

Runtimes: onnxruntime (CPU execution provider), LiteRT interpreter (XNNPACK delegate, which
the default op resolver applies), Core ML (macOS only; elsewhere :class:`RuntimeUnavailable`
names the reason and the artifact is recorded as skipped), ExecuTorch (``executorch.runtime``
with the delegates baked into the ``.pte``; XNNPACK runs here, a Core ML-delegated program is
skipped like Core ML).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_BY_SUFFIX: dict[str, str] = {".onnx": "onnx", ".tflite": "tflite", ".mlpackage": "coreml", ".mlmodel": "coreml",
                                     ".pte": "executorch"}


class RuntimeUnavailable(RuntimeError):
    """This runtime cannot run here (platform, missing package); the message says why."""


@dataclass(frozen=True)
class RuntimeSpec:
    """One way of running an artifact: runtime, delegate and thread count."""

    runtime: str  # onnxruntime | litert | coreml | executorch
    delegate: str  # cpu | xnnpack | coreml-all | pte (executorch: whatever the file was lowered to)
    threads: int

    @property
    def label(self) -> str:
        return f"{self.runtime}-{self.delegate}-t{self.threads}"


def artifact_format(path: Path) -> str | None:
    """Format of an artifact from its suffix (None when it is not a model file)."""
    return FORMAT_BY_SUFFIX.get(Path(path).suffix.lower())


def runtimes_for(fmt: str, threads: tuple[int, ...]) -> list[RuntimeSpec]:
    """The runtimes this machine offers for a format, one per thread count."""
    if fmt == "onnx":
        return [RuntimeSpec("onnxruntime", "cpu", t) for t in threads]
    if fmt == "tflite":
        return [RuntimeSpec("litert", "xnnpack", t) for t in threads]
    if fmt == "coreml":
        # Core ML manages its own threads; one entry regardless of the thread list.
        return [RuntimeSpec("coreml", "coreml-all", 0)]
    if fmt == "executorch":
        # The threads size ExecuTorch's CPU pool (XNNPACK); the delegate is the one in the file.
        return [RuntimeSpec("executorch", "pte", t) for t in threads]
    raise ValueError(f"unknown artifact format {fmt!r}")


def _layout(shape: tuple[int, ...], hint: str | None) -> str:
    if hint in ("NCHW", "NHWC"):
        return hint
    if len(shape) == 4 and shape[-1] == 3 and shape[1] != 3:
        return "NHWC"
    return "NCHW"


class _Runner:
    """Shared I/O conversion; subclasses fill the native input/output descriptions."""

    in_shape: tuple[int, ...]
    in_dtype: np.dtype
    in_layout: str
    in_quant: tuple[float, int] | None = None
    out_layout: str = "NCHW"
    out_quant: tuple[float, int] | None = None

    @property
    def input_hw(self) -> tuple[int, int]:
        shape = self.in_shape
        return (int(shape[2]), int(shape[3])) if self.in_layout == "NCHW" else (int(shape[1]), int(shape[2]))

    def prepare(self, batch: np.ndarray) -> np.ndarray:
        x = np.asarray(batch, dtype=np.float32)
        if self.in_layout == "NHWC":
            x = x.transpose(0, 2, 3, 1)
        if self.in_quant is not None:
            scale, zero = self.in_quant
            info = np.iinfo(self.in_dtype)
            x = np.clip(np.round(x / scale + zero), info.min, info.max)
        return np.ascontiguousarray(x.astype(self.in_dtype))

    def to_nchw(self, out: np.ndarray) -> np.ndarray:
        y = np.asarray(out)
        if self.out_quant is not None:
            scale, zero = self.out_quant
            y = (y.astype(np.float32) - zero) * scale
        y = y.astype(np.float32)
        if self.out_layout == "NHWC":
            y = y.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(y)

    def invoke(self, native: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        """Drop the session so its memory is freed before the next artifact is measured."""


class OnnxRuntimeRunner(_Runner):
    """onnxruntime, CPU execution provider, ``threads`` intra-op threads."""

    def __init__(self, path: Path, threads: int, layout_hint: str | None = None) -> None:
        import onnxruntime as ort

        from mobile_pipeline.exporters.qnn import is_ep_context

        if is_ep_context(path):
            raise RuntimeUnavailable("precompiled Hexagon context (EPContext): runs only on a Qualcomm NPU through the QNN "
                                     "execution provider; benchmarks/bench_qnn.py times it on the HTP emulator")
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(threads, 1)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        inp, out = self.session.get_inputs()[0], self.session.get_outputs()[0]
        self.in_name, self.out_name = inp.name, out.name
        shape = tuple(d if isinstance(d, int) and d > 0 else 1 for d in inp.shape)
        self.in_shape = shape
        self.in_dtype = np.dtype({"tensor(float)": np.float32, "tensor(float16)": np.float16,
                                  "tensor(uint8)": np.uint8, "tensor(int8)": np.int8}.get(inp.type, np.float32))
        self.in_layout = _layout(shape, layout_hint)
        self.out_layout = self.in_layout
        if self.in_dtype.kind in "iu":
            raise RuntimeUnavailable(f"integer ONNX input ({inp.type}) without quantization parameters")

    def invoke(self, native: np.ndarray) -> np.ndarray:
        return self.session.run([self.out_name], {self.in_name: native})[0]

    def close(self) -> None:
        del self.session


class LiteRTRunner(_Runner):
    """LiteRT interpreter; the default op resolver applies XNNPACK with ``threads`` threads."""

    def __init__(self, path: Path, threads: int, layout_hint: str | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path), num_threads=max(threads, 1))
        self.interpreter.allocate_tensors()
        inp = self.interpreter.get_input_details()[0]
        out = self.interpreter.get_output_details()[0]
        self.in_index, self.out_index = inp["index"], out["index"]
        self.in_shape = tuple(int(d) for d in inp["shape"])
        self.in_dtype = np.dtype(inp["dtype"])
        self.in_layout = _layout(self.in_shape, layout_hint)
        self.out_layout = _layout(tuple(int(d) for d in out["shape"]), layout_hint)
        if self.in_dtype.kind in "iu":
            scale, zero = inp["quantization"]
            self.in_quant = (float(scale), int(zero))
        if np.dtype(out["dtype"]).kind in "iu":
            scale, zero = out["quantization"]
            self.out_quant = (float(scale), int(zero))

    def invoke(self, native: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self.in_index, native)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.out_index)

    def close(self) -> None:
        del self.interpreter


class CoreMLRunner(_Runner):
    """Core ML through coremltools (macOS only: prediction needs the Core ML framework).

    Handles both input kinds the exporter writes: a float multi-array (NCHW) and an image
    (``recipe.io == "image"``), which Core ML takes as a picture; the picture is built once in
    :meth:`prepare`, so the timed call is prediction only.
    """

    def __init__(self, path: Path, threads: int, layout_hint: str | None = None) -> None:
        del threads
        if platform.system() != "Darwin":
            raise RuntimeUnavailable(
                f"Core ML prediction needs macOS (this is {platform.system()}); coremltools can convert here "
                "but not run. Run `mobile-pipeline bench` on a Mac, or import device timings with `bench import`")
        import coremltools as ct

        self.model = ct.models.MLModel(str(path), compute_units=ct.ComputeUnit.ALL)
        spec = self.model.get_spec()
        inp, out = spec.description.input[0], spec.description.output[0]
        self.in_name, self.out_name = inp.name, out.name
        self.is_image = inp.type.WhichOneof("Type") == "imageType"
        if self.is_image:
            shape: tuple[int, ...] = (1, 3, int(inp.type.imageType.height), int(inp.type.imageType.width))
        else:
            shape = tuple(int(d) for d in inp.type.multiArrayType.shape)
        self.in_shape = shape
        self.in_dtype = np.dtype(np.float32)
        self.in_layout = _layout(shape, layout_hint)
        self.out_layout = self.in_layout

    def prepare(self, batch: np.ndarray) -> Any:
        if not self.is_image:
            return super().prepare(batch)
        from PIL import Image

        pixels = np.clip(np.round(np.asarray(batch)[0].transpose(1, 2, 0) * 255), 0, 255).astype(np.uint8)
        return Image.fromarray(pixels)

    def invoke(self, native: Any) -> np.ndarray:
        out = np.asarray(self.model.predict({self.in_name: native})[self.out_name], dtype=np.float32)
        return out.reshape(1, 3, *self.input_hw) if out.ndim != 4 else out

    def close(self) -> None:
        del self.model


class ExecuTorchRunner(_Runner):
    """ExecuTorch's runtime on a ``.pte``; its delegates are the ones baked in at export.

    ``threads`` sizes ExecuTorch's process-wide CPU pool, which XNNPACK partitions use.
    """

    def __init__(self, path: Path, threads: int, layout_hint: str | None = None) -> None:
        del layout_hint  # .pte I/O is NCHW float32 (torch2executorch.io_specs)
        from mobile_pipeline.exporters import torch2executorch as et

        info = et.inspect_pte(path)
        missing = et.missing_backends(info["delegates"])
        if missing:
            raise RuntimeUnavailable(et.COREML_DELEGATE_NOT_RUNNABLE if et.BACKEND_IDS["coreml"] in missing else
                                     f"this ExecuTorch runtime lacks the {', '.join(missing)} delegate")
        shape, dtype = info["inputs"][0]
        self.in_shape = tuple(int(d) for d in shape)
        self.in_dtype = np.dtype(dtype)
        self.in_layout = "NCHW"
        self.out_layout = "NCHW"
        self.method = et.load_method(path, threads)

    def invoke(self, native: np.ndarray) -> np.ndarray:
        import torch

        return self.method.execute([torch.from_numpy(native)])[0].numpy()

    def close(self) -> None:
        del self.method


_RUNNERS: dict[str, type[_Runner]] = {"onnxruntime": OnnxRuntimeRunner, "litert": LiteRTRunner, "coreml": CoreMLRunner,
                                      "executorch": ExecuTorchRunner}


def load_runner(path: Path, runtime: RuntimeSpec, layout_hint: str | None = None) -> _Runner:
    """Load ``path`` on ``runtime``; :class:`RuntimeUnavailable` when it cannot run here."""
    try:
        cls = _RUNNERS[runtime.runtime]
    except KeyError:
        raise ValueError(f"unknown runtime {runtime.runtime!r}; choose from {sorted(_RUNNERS)}") from None
    return cls(Path(path), runtime.threads, layout_hint)


def machine_info() -> dict[str, Any]:
    """What the local numbers were measured on (bench.json records it next to them)."""
    import os

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for module in ("onnxruntime", "ai_edge_litert", "coremltools", "executorch"):
        try:
            from importlib.metadata import version

            versions[module] = version(module.replace("_", "-"))
        except Exception:  # not installed: simply not listed
            continue
    return {"system": platform.system(), "machine": platform.machine(), "cpu": cpu,
            "logical_cpus": os.cpu_count(), "python": platform.python_version(), "versions": versions}
