"""mobile_pipeline: the release pipeline for a real-time cartoon stylizer on every phone.

Stages: data -> train -> search -> export -> bench -> manifest -> serve. Heavy back ends
(torch, coremltools, litert_torch, onnxruntime) are imported inside the functions that need
them so the CLI and the dispatch server start fast.
"""

__version__ = "0.1.0"
