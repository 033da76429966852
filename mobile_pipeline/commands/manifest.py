"""Build the tier-selection manifest (optionally the Google Play device-targeting config and AI packs).

Reads every passed ``*.report.json`` under ARTIFACTS_DIR (never ``rejected/``), re-hashes the
artifacts, attaches the tier rules and fallback chains, and writes manifest.json atomically.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mobile_pipeline.commands._common import add_config_arguments, load_release_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("artifacts_dir", type=Path, metavar="ARTIFACTS_DIR", help="folder of exported artifacts + reports")
    parser.add_argument("--release-id", required=True, help="release id (letters, digits, . _ -)")
    parser.add_argument("--out", type=Path, default=None, help="manifest path (default ARTIFACTS_DIR/manifest.json)")
    parser.add_argument("--play-config", type=Path, default=None, help="also write the Play device tier config here")
    parser.add_argument("--ai-packs", type=Path, default=None, metavar="DIR",
                        help="also write the Play for On-device AI pack layout (models, targeting XML, Gradle) here")
    parser.add_argument("--bench", type=Path, default=None, help="bench.json with measured latencies")
    parser.add_argument("--measurements", type=Path, default=None,
                        help="imported measurements with parity evidence (`export verify-coreml` + `bench import`; "
                             "default device_tiers/measurements)")
    add_config_arguments(parser)


def _table(manifest) -> str:
    rows = [("id", "platform", "bytes", "psnr dB", "pred ms", "meas ms", "verified")]
    for m in manifest.models:
        fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
        rows.append((m.id, m.platform, f"{m.bytes:,}", fmt(m.parity_psnr_db), fmt(m.latency.predicted_ms),
                     fmt(m.latency.measured_p50_ms), "yes" if m.verified else "NO"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)


def run(args: argparse.Namespace) -> int:
    from mobile_pipeline.manifest.builder import ManifestBuildError, build_manifest
    from mobile_pipeline.manifest.play import PlayConfigError, build_play_config
    from mobile_pipeline.utils.atomic import atomic_write_json

    cfg = load_release_config(args).manifest
    out = args.out or args.artifacts_dir / "manifest.json"
    excluded: list[str] = []
    try:
        manifest = build_manifest(args.artifacts_dir, out, release_id=args.release_id, cfg=cfg, bench_json=args.bench,
                                  measurements_dir=args.measurements, excluded=excluded)
    except ManifestBuildError as err:
        print(f"error: {err}", file=sys.stderr)
        for line in excluded:
            print(f"  left out: {line}", file=sys.stderr)
        return 2
    print(_table(manifest))
    for line in excluded:
        print(f"left out: {line}")
    print(f"manifest: {len(manifest.models)} models, release {manifest.release_id} -> {out}")
    if args.play_config:
        try:
            config, levels = build_play_config(manifest)
        except PlayConfigError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        atomic_write_json(args.play_config, config)
        mapping = ", ".join(f"{level}={tier}" for level, tier in sorted(levels.items()))
        print(f"play device tier config: {len(config['device_groups'])} groups, levels {mapping} -> {args.play_config}")
    if args.ai_packs:
        from mobile_pipeline.manifest.ai_packs import AiPackError, write_ai_packs

        try:
            plan = write_ai_packs(manifest, args.artifacts_dir, args.ai_packs, pack=cfg.ai_pack_name,
                                  delivery=cfg.ai_pack_delivery)
        except AiPackError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        groups = ", ".join(f"{g}={t}" for t, g in plan.tiers().items())
        print(f"play AI pack {plan.pack!r} ({plan.delivery}): groups {groups} -> {args.ai_packs}")
    return 0
