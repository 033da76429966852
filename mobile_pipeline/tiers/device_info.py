"""What a phone tells us about itself. Shared by the classifier, the dispatcher and the server.

Every field is optional: a phone may report little, and the classifier must still answer
(the CPU tier in the worst case). Bounds refuse absurd values at the API edge.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

Platform = Literal["android", "ios", "other"]

ACCELERATOR_NAMES: tuple[str, ...] = ("gpu", "dsp", "npu", "nnapi", "ane", "hexagon", "apu", "edgetpu")


class DeviceInfo(BaseModel):
    """Hardware facts reported by the app.

    Args:
        platform: ``android``, ``ios`` or ``other``.
        os_version: e.g. ``"14"`` (Android) or ``"17.2"`` (iOS).
        soc_manufacturer: Android ``Build.SOC_MANUFACTURER`` (``Qualcomm``, ``QTI``, ``Mediatek``...).
        soc_model: Android ``Build.SOC_MODEL`` (``SM8650``, ``MT6989``) or the iOS machine id
            (``iPhone16,1``).
        gpu_renderer: ``GL_RENDERER`` string (``Adreno (TM) 750``, ``Mali-G715``).
        ram_bytes: total RAM.
        accelerators: accelerators the app detected (``gpu``, ``nnapi``, ``hexagon``, ``ane``...).
        app_version: the asking app's version, for logs and future rules.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    platform: Platform = "android"
    os_version: str | None = Field(None, max_length=32, pattern=r"^[0-9]{1,3}(\.[0-9]{1,3}){0,3}$")
    soc_manufacturer: str | None = Field(None, max_length=64)
    soc_model: str | None = Field(None, max_length=64)
    gpu_renderer: str | None = Field(None, max_length=128)
    # Strict: a JSON true/false or 1.5 is not a byte count (lax mode would read false as 0). The
    # query string's digits are turned into an int by serve.query before validation.
    ram_bytes: StrictInt | None = Field(None, ge=0, le=2**40, description="0 .. 1 TiB")
    # Item length in the type (not only in the validator) so the OpenAPI body schema says it too.
    accelerators: tuple[Annotated[str, Field(max_length=32)], ...] = Field((), max_length=16)
    app_version: str | None = Field(None, max_length=32)

    @field_validator("accelerators")
    @classmethod
    def _normalise_accelerators(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = []
        for value in values:
            name = value.strip().lower()
            if name and name not in cleaned:
                cleaned.append(name)
        return tuple(cleaned)

    def os_version_tuple(self) -> tuple[int, ...] | None:
        """``"17.2"`` -> ``(17, 2)``; None when not reported."""
        if not self.os_version:
            return None
        return tuple(int(part) for part in self.os_version.split("."))
