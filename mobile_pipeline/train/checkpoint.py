"""Lean generator checkpoints: ``{"format", "arch", "state_dict"}`` and nothing else.

Search, export and ``stylize`` only need the generator, not the discriminator, optimizer
states or loop counters that a Lightning ``.ckpt`` carries; the lean file is small, loads
without Lightning and names its architecture as a spec string, so the module can be rebuilt
without any config. :func:`load_generator` also reads Lightning checkpoints written by
:class:`~mobile_pipeline.train.module.StylizerModule`, so ``last.ckpt`` works anywhere a
``generator.pt`` does.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mobile_pipeline.nets.spec import ArchSpec, SpecError
from mobile_pipeline.utils.atomic import atomic_write_bytes

#: Value of the ``format`` key of a lean checkpoint.
LEAN_FORMAT = "mobile_pipeline.generator/1"
#: Prefix of generator weights inside a Lightning checkpoint's state_dict.
_LIGHTNING_PREFIX = "generator."


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file and what to do."""


def save_generator(generator: nn.Module, path: str | Path, provenance: dict[str, Any] | None = None) -> Path:
    """Write ``generator`` (which must have a ``.spec``) as a lean checkpoint, atomically.

    Args:
        provenance: JSON-able facts about how the weights were made (e.g. the search's
            supernet slice or tier training); read back with :func:`read_provenance`.
    """
    spec = getattr(generator, "spec", None)
    if not isinstance(spec, ArchSpec):
        raise TypeError("save_generator needs a Generator with an ArchSpec `.spec` attribute")
    state = {k: v.detach().cpu().clone() for k, v in generator.state_dict().items()}
    buffer = io.BytesIO()
    payload: dict[str, Any] = {"format": LEAN_FORMAT, "arch": spec.to_string(), "state_dict": state}
    if provenance:
        payload["provenance"] = dict(provenance)
    torch.save(payload, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def read_provenance(path: str | Path) -> dict[str, Any]:
    """The ``provenance`` a lean checkpoint was saved with ({} for none or a Lightning .ckpt)."""
    payload = torch.load(Path(path), map_location="cpu", weights_only=False)
    return dict(payload.get("provenance") or {}) if isinstance(payload, dict) else {}


def read_generator_state(path: str | Path) -> tuple[ArchSpec, dict[str, torch.Tensor]]:
    """``(spec, generator state_dict)`` from a lean file or a StylizerModule Lightning checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload: Any = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - torch raises many types for a corrupt file
        raise CheckpointError(f"{path} is not a readable torch checkpoint ({err}); re-run training") from None
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: expected a dict checkpoint, got {type(payload).__name__}")
    if "arch" in payload and "state_dict" in payload:  # lean format
        arch, state = payload["arch"], payload["state_dict"]
    elif "state_dict" in payload and "hyper_parameters" in payload:  # Lightning .ckpt
        arch = payload["hyper_parameters"].get("arch")
        state = {k[len(_LIGHTNING_PREFIX):]: v for k, v in payload["state_dict"].items()
                 if k.startswith(_LIGHTNING_PREFIX)}
        if arch is None or not state:
            raise CheckpointError(f"{path}: Lightning checkpoint without generator weights or 'arch' hyperparameter")
    else:
        raise CheckpointError(
            f"{path}: not a generator checkpoint (needs 'arch' and 'state_dict'; "
            "write one with mobile_pipeline.train.checkpoint.save_generator)"
        )
    try:
        spec = ArchSpec.from_string(arch) if isinstance(arch, str) else ArchSpec.from_dict(arch)
    except SpecError as err:
        raise CheckpointError(f"{path}: invalid architecture {arch!r}: {err}") from None
    return spec, state


def load_generator(path: str | Path) -> nn.Module:
    """Rebuild the generator stored in ``path`` (lean or Lightning) in eval mode, on CPU."""
    from mobile_pipeline.nets.generator import build_generator

    spec, state = read_generator_state(path)
    generator = build_generator(spec)
    try:
        generator.load_state_dict(state, strict=True)
    except RuntimeError as err:  # missing/unexpected keys or shape mismatches
        first = str(err).strip().splitlines()[1:4]
        raise CheckpointError(
            f"{path}: weights do not match architecture {spec.to_string()!r} ({' '.join(s.strip() for s in first)}); "
            "the file was edited or written by another version"
        ) from None
    return generator.eval()
