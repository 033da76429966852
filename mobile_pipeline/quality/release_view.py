"""The look of a release, side by side: what the report shows about quality.

One row per shipped model (each tier's tier-trained checkpoint and its artifacts), framed by
the rows a reader needs to judge them: the photo itself (identity: what "no effect" scores),
the reference model the ``train`` stage produced (what the tiers were distilled from) and the
teacher (the target: ink recall 1, texture kept ~0). Every number is measured on the whole
held-out photos by :mod:`mobile_pipeline.quality.heldout`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from mobile_pipeline.nets.spec import ArchSpec
from mobile_pipeline.quality.heldout import HeldOutQuality, evaluate_generator, generator_outputs, score_outputs

COLUMNS = ["model", "architecture", "GMACs@256", "PSNR dB", "SSIM", "ink recall", "ink precision", "texture kept"]


def _row(name: str, arch: str, gmacs: float | None, quality: HeldOutQuality | dict[str, Any] | None) -> list[str]:
    q = quality.to_dict() if isinstance(quality, HeldOutQuality) else (quality or {})

    def fmt(key: str, spec: str) -> str:
        value = q.get(key)
        return format(value, spec) if isinstance(value, (int, float)) else "–"

    return [name, arch, "–" if gmacs is None else f"{gmacs:.3f}", fmt("psnr_db", ".2f"), fmt("ssim", ".3f"),
            fmt("ink_recall", ".2f"), fmt("ink_precision", ".2f"), fmt("texture_kept", ".2f")]


def quality_rows(pairs: list, tiers_dir: Path, reference: Path | None, tiers: list[str],
                 artifact_reports: dict[str, list[Any]]) -> list[list[str]]:
    """Identity, reference, each tier's checkpoint and artifacts, teacher; in budget order."""
    from mobile_pipeline.nets.complexity import count_macs
    from mobile_pipeline.train.checkpoint import load_generator

    photos = [photo for photo, _ in pairs]
    rows = [_row("photo (identity)", "–", None, score_outputs(pairs, photos))]
    if reference is not None and Path(reference).is_file():
        generator = load_generator(reference)
        rows.append(_row("reference (train stage)", generator.spec.to_string(),
                         count_macs(generator.spec, (256, 256)) / 1e9, evaluate_generator(generator, pairs)))
    for tier in tiers:
        document = json.loads((tiers_dir / f"{tier}.json").read_text(encoding="utf-8"))
        spec_text = document.get("arch", "–")
        gmacs = count_macs(ArchSpec.from_dict(document["spec"]), (256, 256)) / 1e9
        rows.append(_row(f"{tier} checkpoint", spec_text, gmacs, document.get("training", {}).get("heldout")))
        for report in artifact_reports.get(tier, []):
            if report.passed and report.quality:
                rows.append(_row(f"  {report.artifact}", "", gmacs, report.quality))
    rows.append(_row("teacher (target)", "–", None, score_outputs(pairs, [target for _, target in pairs])))
    return rows


def tier_grid(path: Path, pairs: list, tiers_dir: Path, reference: Path | None, tiers: list[str]) -> str | None:
    """PNG: rows = the given held-out pairs; columns = photo, teacher, reference, each tier's model."""
    from mobile_pipeline.report import _save_labeled_grid
    from mobile_pipeline.train.checkpoint import load_generator

    if not pairs:
        return None
    models: list[tuple[str, Any]] = []
    if reference is not None and Path(reference).is_file():
        models.append(("reference", load_generator(reference)))
    models += [(tier, load_generator(tiers_dir / f"{tier}.pt")) for tier in tiers]
    outputs = {label: generator_outputs(model, [p for p, _ in pairs]) for label, model in models}
    rows = []
    for index, (photo, target) in enumerate(pairs):
        images = [photo, target] + [(np.clip(outputs[label][index], 0, 1) * 255).round().astype(np.uint8)
                                    for label, _ in models]
        rows.append((images, ["photo", "teacher"] + [label for label, _ in models]))
    _save_labeled_grid(path, rows)
    return path.name
