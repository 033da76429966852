"""Tier-selection manifest: schema (pydantic -> JSON Schema), builder, Play device-targeting export."""

from mobile_pipeline.manifest.schema import SCHEMA_VERSION, Manifest, ManifestInvalid, load_manifest

__all__ = ["SCHEMA_VERSION", "Manifest", "ManifestInvalid", "load_manifest", "build_manifest", "write_play_config"]


def __getattr__(name: str):
    if name == "build_manifest":
        from mobile_pipeline.manifest.builder import build_manifest

        return build_manifest
    if name == "write_play_config":
        from mobile_pipeline.manifest.play import write_play_config

        return write_play_config
    raise AttributeError(name)
