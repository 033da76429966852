"""One runner per artifact type, all with the generator's convention.

``load_runner(path).run(batch)`` takes N,3,H,W float32 in [0,1] and returns the same, hiding
each runtime's layout (NHWC for TFLite), quantized I/O (int8 scale/zero point) and fixed
batch size 1. Used by validation, ``stylize`` and the bench stage.

* ``.onnx``: onnxruntime, CPU execution provider. A precompiled EPContext model (a Hexagon
  context binary, ``exporters/qnn.py``) only runs through the QNN execution provider: its
  runner is ``runnable=False`` with the reason (``qnn.HtpEmulatorRunner`` emulates it).
* ``.tflite``: ai_edge_litert Interpreter (XNNPACK), ``num_threads`` settable.
* ``.mlpackage``: Core ML prediction, macOS only; elsewhere ``runnable=False`` with the reason.
* ``.pte``: ExecuTorch's runtime (``executorch.runtime``, XNNPACK threads settable); a program
  whose delegate this runtime lacks (Core ML) is ``runnable=False`` with the reason.
* ``.pt`` / ``.ckpt``: a generator checkpoint (train.checkpoint.load_generator), any size.
"""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np

from mobile_pipeline.exporters.report import TensorSpec

COREML_NOT_RUNNABLE = "not runnable here: Core ML prediction needs macOS"
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


class RunnerError(RuntimeError):
    """The artifact cannot be run here, or the input does not fit it."""


class Runner:
    """Base: fixed-shape artifacts run one image at a time.

    Attributes:
        path: the artifact.
        runtime: onnxruntime, litert, coreml or torch.
        runnable: False when this machine cannot run it (see ``reason``).
        input_hw: the fixed (H, W) the artifact takes, or None when any size works.
    """

    runtime = "?"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.runnable = True
        self.reason: str | None = None
        self.input_hw: tuple[int, int] | None = None

    def run(self, batch: np.ndarray) -> np.ndarray:
        """N,3,H,W float32 in [0,1] -> N,3,H,W float32 in [0,1]."""
        if not self.runnable:
            raise RunnerError(f"{self.path.name}: {self.reason}")
        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise RunnerError(f"{self.path.name}: input must be N,3,H,W, got shape {batch.shape}")
        if self.input_hw is not None and tuple(batch.shape[2:]) != self.input_hw:
            raise RunnerError(
                f"{self.path.name} takes {self.input_hw[0]}x{self.input_hw[1]} inputs, got "
                f"{batch.shape[2]}x{batch.shape[3]}; resize, or tile larger images (stylize --tile)"
            )
        return np.concatenate([self._run_one(batch[i:i + 1]) for i in range(len(batch))]).astype(np.float32)

    def _run_one(self, image: np.ndarray) -> np.ndarray:  # 1,3,H,W -> 1,3,H,W
        raise NotImplementedError


def _quantize(x: np.ndarray, spec: TensorSpec) -> np.ndarray:
    info = np.iinfo(spec.dtype)
    return np.clip(np.round(x / spec.scale + spec.zero_point), info.min, info.max).astype(spec.dtype)


def _dequantize(q: np.ndarray, spec: TensorSpec) -> np.ndarray:
    return (q.astype(np.float32) - spec.zero_point) * spec.scale


class OnnxRunner(Runner):
    runtime = "onnxruntime"

    def __init__(self, path: Path, num_threads: int = 1) -> None:
        super().__init__(path)
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        if all(isinstance(d, int) for d in inp.shape[2:]):
            self.input_hw = (int(inp.shape[2]), int(inp.shape[3]))

    def _run_one(self, image: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: image})[0]


class PrecompiledRunner(Runner):
    """A model precompiled for one NPU: not runnable by a CPU runtime; says where it runs."""

    runtime = "onnxruntime-qnn"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        from mobile_pipeline.exporters.report import load_report, report_path_for

        arch = None
        report = report_path_for(self.path)
        if report.is_file():
            qnn = load_report(report).qnn
            arch = qnn.htp_arch if qnn is not None else None
        self.runnable = False
        self.reason = (f"precompiled Hexagon context{f' for HTP {arch}' if arch else ''}: runs only on a Qualcomm NPU "
                       "through the QNN execution provider (exporters.qnn.HtpEmulatorRunner emulates it, seconds per frame)")


class TfliteRunner(Runner):
    runtime = "litert"

    def __init__(self, path: Path, num_threads: int = 1) -> None:
        super().__init__(path)
        from ai_edge_litert.interpreter import Interpreter

        from mobile_pipeline.exporters.torch2tflite import io_specs

        buf = Path(path).read_bytes()
        self.interpreter = Interpreter(model_content=buf, num_threads=num_threads)
        self.interpreter.allocate_tensors()
        self.input_spec, self.output_spec = io_specs(buf)
        self._in = self.interpreter.get_input_details()[0]["index"]
        self._out = self.interpreter.get_output_details()[0]["index"]
        shape = self.input_spec.shape
        self.input_hw = (shape[1], shape[2]) if self.input_spec.layout == "NHWC" else (shape[2], shape[3])

    def _run_one(self, image: np.ndarray) -> np.ndarray:
        x = image.transpose(0, 2, 3, 1) if self.input_spec.layout == "NHWC" else image
        if self.input_spec.scale is not None:
            x = _quantize(x, self.input_spec)
        self.interpreter.set_tensor(self._in, np.ascontiguousarray(x))
        self.interpreter.invoke()
        y = self.interpreter.get_tensor(self._out)
        if self.output_spec.scale is not None:
            y = _dequantize(y, self.output_spec)
        return y.transpose(0, 3, 1, 2) if self.output_spec.layout == "NHWC" else y


class CoremlRunner(Runner):
    runtime = "coreml"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        from mobile_pipeline.exporters.torch2coreml import INPUT_NAME, OUTPUT_NAME, inspect_program

        info = inspect_program(path)
        shape, self._input_kind = info["inputs"][INPUT_NAME]
        self.input_hw = (shape[2], shape[3])
        self._names = INPUT_NAME, OUTPUT_NAME
        if platform.system() != "Darwin":
            self.runnable, self.reason = False, COREML_NOT_RUNNABLE
            return
        import coremltools as ct

        self.model = ct.models.MLModel(str(path))

    def _run_one(self, image: np.ndarray) -> np.ndarray:
        in_name, out_name = self._names
        if self._input_kind == "IMAGE":
            from PIL import Image

            pixels = np.clip(np.round(image[0].transpose(1, 2, 0) * 255), 0, 255).astype(np.uint8)
            feed = Image.fromarray(pixels)
        else:
            feed = image
        return np.asarray(self.model.predict({in_name: feed})[out_name], dtype=np.float32).reshape(image.shape)


class ExecutorchRunner(Runner):
    runtime = "executorch"

    def __init__(self, path: Path, num_threads: int = 1) -> None:
        super().__init__(path)
        from mobile_pipeline.exporters import torch2executorch as et

        info = et.inspect_pte(path)
        shape = info["inputs"][0][0] if info["inputs"] else []
        if len(shape) == 4:
            self.input_hw = (int(shape[2]), int(shape[3]))
        self.delegates = info["delegates"]
        missing = et.missing_backends(self.delegates)
        if missing:
            coreml = et.BACKEND_IDS["coreml"] in missing
            self.runnable = False
            self.reason = et.COREML_DELEGATE_NOT_RUNNABLE if coreml else (
                f"not runnable here: this ExecuTorch runtime lacks the {', '.join(missing)} delegate")
            return
        self.method = et.load_method(path, num_threads)

    def _run_one(self, image: np.ndarray) -> np.ndarray:
        import torch

        outputs = self.method.execute([torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))])
        return outputs[0].numpy()


class TorchRunner(Runner):
    """A generator checkpoint (or module) run in PyTorch; any input size (the generator pads)."""

    runtime = "torch"

    def __init__(self, path: Path | None = None, module=None, num_threads: int | None = None) -> None:
        super().__init__(path or Path("<module>"))
        import torch

        if num_threads:
            torch.set_num_threads(num_threads)
        if module is None:
            from mobile_pipeline.train.checkpoint import load_generator

            module = load_generator(path)
        self.module = module.eval()

    def _run_one(self, image: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.module(torch.from_numpy(np.ascontiguousarray(image))).numpy()


def load_runner(artifact: str | Path, num_threads: int = 1) -> Runner:
    """The runner for an artifact or checkpoint, chosen by its suffix.

    Args:
        artifact: ``.onnx``, ``.tflite``, ``.mlpackage`` (folder), ``.pte``, or a
            ``.pt``/``.ckpt`` generator checkpoint.
        num_threads: intra-op threads (onnxruntime, LiteRT, ExecuTorch's XNNPACK pool, torch).
    """
    path = Path(artifact)
    if not path.exists():
        raise FileNotFoundError(f"model not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        from mobile_pipeline.exporters.qnn import is_ep_context

        if is_ep_context(path):
            return PrecompiledRunner(path)
        return OnnxRunner(path, num_threads=num_threads)
    if suffix == ".tflite":
        return TfliteRunner(path, num_threads=num_threads)
    if suffix in (".mlpackage", ".mlmodel"):
        return CoremlRunner(path)
    if suffix == ".pte":
        return ExecutorchRunner(path, num_threads=num_threads)
    if suffix in CHECKPOINT_SUFFIXES:
        return TorchRunner(path, num_threads=num_threads)
    raise RunnerError(
        f"cannot run {path.name}: unknown model type {suffix!r}; "
        f"expected .onnx, .tflite, .mlpackage, .pte or a checkpoint ({', '.join(CHECKPOINT_SUFFIXES)})"
    )
