"""Silence the converters' chatter (absl/C++ logs, tqdm bars, version warnings).

litert-torch, ai-edge-quantizer, coremltools and the ONNX exporter print hundreds of lines
per conversion, most from C++ straight to file descriptors 1/2, which ``warnings`` and
``logging`` cannot reach. :func:`quiet` redirects the descriptors to a temporary file for
the duration of a conversion; if the conversion fails, the captured tail is attached to the
exception so nothing useful is lost. ``MP_EXPORT_VERBOSE=1`` disables it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator

_NOISY_LOGGERS = ("coremltools", "absl", "onnxscript", "torch.onnx", "torch._dynamo", "torch.export",
                  "litert_torch", "ai_edge_quantizer", "onnxruntime", "root")


def _silence_env() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GLOG_minloglevel", "3")
    os.environ.setdefault("TQDM_DISABLE", "1")


_silence_env()
# coremltools logs a dozen "Failed to load _MLModelProxy" lines at import on Linux (the
# prediction library is macOS-only, which validation already reports): not news.
logging.getLogger("coremltools").setLevel(logging.ERROR)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Redirect fd 1/2, raise noisy loggers to ERROR and ignore warnings inside the block."""
    if os.environ.get("MP_EXPORT_VERBOSE"):
        yield
        return
    levels = {name: logging.getLogger(name).level for name in _NOISY_LOGGERS}
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException as err:
            _restore(saved)
            sink.seek(0)
            tail = sink.read()[-4000:].decode("utf-8", "replace").strip()
            if tail and hasattr(err, "add_note"):
                err.add_note(f"converter output (last lines):\n{tail}")
            raise
        finally:
            _restore(saved)
            for fd in saved:
                os.close(fd)
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)


def _restore(saved: tuple[int, int]) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    for fd, copy in zip((1, 2), saved):
        try:
            os.dup2(copy, fd)
        except OSError:
            pass
