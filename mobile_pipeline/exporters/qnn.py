"""ONNX Runtime's QNN execution provider: compile QDQ ONNX for a Hexagon NPU, offline.

``onnxruntime-qnn`` is a *plugin* execution provider for onnxruntime >= 1.24: its wheel
ships ``libonnxruntime_providers_qnn.so`` plus Qualcomm's HTP backend, and on x86_64 Linux
that backend compiles for any Hexagon Tensor Processor architecture (``htp_arch`` 68 ... 81)
and runs the compiled graph on an HTP *emulator*. That gives the release three things no
op list can:

* :func:`compile_htp`: a session with ``session.disable_cpu_ep_fallback=1`` fails unless every
  node goes to the HTP, so "compiles" means "runs entirely on the NPU". The provider's
  framework-op trace names the nodes it refused (op type, node name, its reason).
* ``ep.context_enable=1`` writes an *EPContext* model: one ``EPContext`` node holding the
  compiled context binary (embedded, so the model is one file). A phone with that Hexagon
  architecture loads it without compiling: the precompiled model AI Hub's compile jobs make.
* :class:`HtpEmulatorRunner` runs a model on the emulator (seconds per frame: it simulates
  the NPU instruction by instruction), so the compiled graph's output can be gated.

Where the wheel does not exist (macOS) or fails to load, :func:`qnn_unavailable_reason`
returns one line saying so and every caller skips its QNN step instead of failing.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mobile_pipeline.exporters.runtimes import Runner

EP_NAME = "QNNExecutionProvider"
EP_CONTEXT_OP = "EPContext"
#: Where wheels exist (PyPI files of onnxruntime-qnn 2.7.0): the x86_64 one carries the compiler + emulator.
WHEEL_PLATFORMS = "Linux x86_64 (glibc >= 2.35) and aarch64, Windows x64 and arm64"
INSTALL_HINT = "pip install onnxruntime-qnn==2.7.0"
#: QDQ precisions the HTP runs: int8 activations, or int16 activations with int8 weights.
QDQ_PRECISIONS: tuple[str, ...] = ("int8", "w8a16")

_lock = threading.Lock()
_state: dict[str, object] = {}


class QnnUnavailable(RuntimeError):
    """onnxruntime-qnn cannot be used here; the message is the one line a report shows."""


def qnn_unavailable_reason() -> str | None:
    """None when the QNN HTP backend is usable here, else why not (one line, with the fix)."""
    try:
        _ep_devices()
    except QnnUnavailable as err:
        return str(err)
    return None


def qnn_versions() -> dict[str, str]:
    """Versions that determine a compiled context binary: the EP wheel, its QNN SDK, onnxruntime."""
    import onnxruntime as ort
    import onnxruntime_qnn

    info = getattr(onnxruntime_qnn, "build_and_package_info", None)
    return {"onnxruntime_qnn": str(onnxruntime_qnn.__version__),
            "qnn_sdk": str(getattr(info, "qnn_version", "unknown")), "onnxruntime": ort.__version__}


def _ep_devices() -> list:
    """Register the plugin EP once per process and return its devices (cached)."""
    with _lock:
        if "devices" in _state:
            return _state["devices"]  # type: ignore[return-value]
        if "error" in _state:
            raise QnnUnavailable(str(_state["error"]))
        try:
            import onnxruntime as ort
        except ImportError as err:  # pragma: no cover - onnxruntime is a hard dependency
            _state["error"] = f"QNN steps skipped: onnxruntime is not importable ({err})"
            raise QnnUnavailable(str(_state["error"])) from None
        try:
            import onnxruntime_qnn
        except ImportError:
            _state["error"] = (f"QNN steps skipped: onnxruntime-qnn is not installed (its wheels exist for "
                               f"{WHEEL_PLATFORMS}; {INSTALL_HINT})")
            raise QnnUnavailable(str(_state["error"])) from None
        try:
            try:
                ort.register_execution_provider_library(EP_NAME, onnxruntime_qnn.get_library_path())
            except Exception as err:  # registered earlier in this process by someone else
                if "already" not in str(err).lower():
                    raise
            devices = [d for d in ort.get_ep_devices() if d.ep_name == EP_NAME]
            if not devices:
                raise RuntimeError("the plugin registered no device")
        except Exception as err:
            _state["error"] = (f"QNN steps skipped: onnxruntime-qnn {getattr(onnxruntime_qnn, '__version__', '?')} "
                               f"does not load beside onnxruntime {ort.__version__} ({type(err).__name__}: {err})")
            raise QnnUnavailable(str(_state["error"])) from None
        _state["devices"] = devices
        return devices


def arch_number(htp_arch: str) -> str:
    """``v75`` -> ``75`` (the provider option's spelling)."""
    text = str(htp_arch).lower().lstrip("v")
    if not text.isdigit():
        raise ValueError(f"htp_arch must look like 'v75', got {htp_arch!r}")
    return text


def _session_options(htp_arch: str, extra: dict[str, str] | None = None, config: dict[str, str] | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    # The point of the exercise: fail rather than run part of the graph on the CPU.
    options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    for key, value in (config or {}).items():
        options.add_session_config_entry(key, value)
    provider = {"backend_type": "htp", "htp_arch": arch_number(htp_arch), **(extra or {})}
    options.add_provider_for_devices(_ep_devices(), provider)
    return options


# ------------------------------------------------------------------------------ compile
@dataclass(frozen=True)
class UnsupportedNode:
    """A node the HTP backend refused, as the provider's trace names it."""

    op_type: str
    name: str
    reason: str

    def __str__(self) -> str:
        return f"{self.op_type} '{self.name}'"


@dataclass
class CompileOutcome:
    """One compile of one model for one Hexagon architecture.

    Attributes:
        ok: every node went to the HTP and the context binary was written.
        seconds: session creation = graph partition + QNN compile + context serialisation.
        nodes_total / nodes_on_htp: ONNX nodes after onnxruntime's graph optimisation, and
            how many the QNN EP took (from its framework-op trace); None when unknown.
        unsupported: the nodes it refused (empty when ``ok``).
        error: the session's error message when ``ok`` is False.
        context_bytes: size of the compiled context binary inside the EPContext model.
    """

    htp_arch: str
    ok: bool
    seconds: float
    nodes_total: int | None = None
    nodes_on_htp: int | None = None
    unsupported: list[UnsupportedNode] = field(default_factory=list)
    error: str | None = None
    context_bytes: int | None = None

    @property
    def coverage(self) -> float | None:
        if not self.nodes_total:
            return None
        return self.nodes_on_htp / self.nodes_total if self.nodes_on_htp is not None else None

    def failure_text(self) -> str:
        """Why it failed, naming the unsupported nodes (what a rejected report says)."""
        if self.unsupported:
            listed = ", ".join(str(n) for n in self.unsupported[:12])
            more = f" and {len(self.unsupported) - 12} more" if len(self.unsupported) > 12 else ""
            first = self.unsupported[0].reason
            return (f"HTP {self.htp_arch} does not compile {len(self.unsupported)} of {self.nodes_total} node(s) with "
                    f"CPU fallback disabled: {listed}{more} (first reason: {first})")
        return f"HTP {self.htp_arch} compile failed: {self.error or 'unknown error'}"


def _read_trace(trace_dir: Path) -> dict:
    path = trace_dir / "qnn_op_trace.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def compile_htp(model: Path, htp_arch: str, context_path: Path | None = None) -> CompileOutcome:
    """Compile ``model`` (QDQ ONNX) for ``htp_arch`` with CPU fallback disabled.

    Args:
        model: the QDQ model file.
        htp_arch: ``v68`` ... ``v81``.
        context_path: where to write the EPContext model (context binary embedded); None
            compiles only (the probe's use).

    Raises:
        QnnUnavailable: onnxruntime-qnn is missing or does not load here.
    """
    import onnxruntime as ort

    from mobile_pipeline.exporters._quiet import quiet

    _ep_devices()
    trace_dir = Path(tempfile.mkdtemp(prefix="mp_qnn_trace_"))
    config = {}
    if context_path is not None:
        config = {"ep.context_enable": "1", "ep.context_embed_mode": "1", "ep.context_file_path": str(context_path)}
    extra = {"enable_framework_op_trace": "1", "framework_op_trace_dir": str(trace_dir)}
    error = None
    start = time.perf_counter()
    try:
        options = _session_options(htp_arch, extra, config)
        with quiet():
            session = ort.InferenceSession(str(model), sess_options=options)
        del session
    except Exception as err:  # the refusal *is* the result
        error = " ".join(str(err).split())
        error = error.split("FAIL : ", 1)[-1][:600]
    seconds = time.perf_counter() - start
    trace = _read_trace(trace_dir)
    shutil.rmtree(trace_dir, ignore_errors=True)
    summary = trace.get("summary", {})
    unsupported = [UnsupportedNode(str(n.get("op_type", "?")), str(n.get("node_name", "?")),
                                   " ".join(str(n.get("reason", "")).split()))
                   for n in trace.get("unsupported_nodes", [])]
    total, supported = summary.get("total_onnx_nodes"), summary.get("supported_nodes")
    outcome = CompileOutcome(htp_arch=htp_arch, ok=error is None and not unsupported, seconds=seconds,
                             nodes_total=total, nodes_on_htp=supported, unsupported=unsupported, error=error)
    if not outcome.ok and context_path is not None:
        Path(context_path).unlink(missing_ok=True)  # a context of the supported part only: never ship it
    if outcome.ok and context_path is not None:
        if not Path(context_path).is_file():
            outcome.ok, outcome.error = False, f"the provider wrote no EPContext model at {context_path}"
        else:
            outcome.context_bytes = context_info(context_path)["context_bytes"]
    return outcome


def context_info(path: Path) -> dict:
    """``{"context_bytes", "nodes", "embed_mode", "sdk"}`` of an EPContext model (one or more contexts)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    total, nodes, embed, sdk = 0, 0, None, None
    for node in proto.graph.node:
        if node.op_type != EP_CONTEXT_OP:
            continue
        nodes += 1
        for attr in node.attribute:
            if attr.name == "ep_cache_context":
                total += len(attr.s)
            elif attr.name == "embed_mode":
                embed = int(attr.i)
            elif attr.name == "ep_sdk_version":
                sdk = attr.s.decode(errors="replace")
    return {"context_bytes": total, "nodes": nodes, "embed_mode": embed, "sdk": sdk}


def is_ep_context(path: Path) -> bool:
    """Whether an ONNX file is a precompiled EPContext model (only its EP can run it)."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # not ONNX at all: let the caller's own loader report it
        return False
    return any(node.op_type == EP_CONTEXT_OP for node in proto.graph.node)


# ------------------------------------------------------------------------------ emulate
class HtpEmulatorRunner(Runner):
    """Runs an EPContext (or QDQ) model on the x86 HTP emulator, CPU fallback disabled.

    Same convention as every runner: N,3,H,W float32 in [0,1] in and out (the EPContext
    model keeps the QDQ model's float I/O; quantization happens inside the context).
    ``frame_seconds`` holds the wall time of each emulated frame: the emulator simulates
    the NPU, so it says how heavy the graph is for the HTP, not how fast a phone runs it.
    """

    runtime = "onnxruntime-qnn"

    def __init__(self, path: Path, htp_arch: str) -> None:
        super().__init__(path)
        import onnxruntime as ort

        from mobile_pipeline.exporters._quiet import quiet

        self.htp_arch = htp_arch
        with quiet():
            self.session = ort.InferenceSession(str(path), sess_options=_session_options(htp_arch))
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        if all(isinstance(d, int) for d in inp.shape[2:]):
            self.input_hw = (int(inp.shape[2]), int(inp.shape[3]))
        self.frame_seconds: list[float] = []

    def _run_one(self, image: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        out = self.session.run(None, {self.input_name: np.ascontiguousarray(image, dtype=np.float32)})[0]
        self.frame_seconds.append(time.perf_counter() - start)
        return out
