"""Where the project's data folders live.

``device_tiers/`` and ``models/`` sit at the repository root (facts and searched specs are
data, reviewed like code). The package is installed editable, so they are found relative to
it; ``MOBILE_PIPELINE_ROOT`` overrides for installs elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The repository root that holds ``device_tiers/`` and ``models/``."""
    override = os.environ.get("MOBILE_PIPELINE_ROOT")
    if override:
        return Path(override).resolve()
    return Path(__file__).resolve().parents[2]


def device_tiers_dir() -> Path:
    """Folder of tier definitions, the SoC catalog and imported measurements."""
    return project_root() / "device_tiers"


def models_dir() -> Path:
    """Folder of searched architecture specs per tier."""
    return project_root() / "models"
