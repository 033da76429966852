"""Dispatch server: FastAPI app factory, Dispatcher (device info -> model + fallbacks), hot reload."""

from mobile_pipeline.serve.dispatch import Dispatcher, ModelRef, NoModelForPlatform, Selection

__all__ = ["Dispatcher", "ModelRef", "NoModelForPlatform", "Selection", "create_app"]


def __getattr__(name: str):
    # create_app pulls in FastAPI; keep `import mobile_pipeline.serve` light for the Dispatcher.
    if name == "create_app":
        from mobile_pipeline.serve.app import create_app

        return create_app
    raise AttributeError(name)
