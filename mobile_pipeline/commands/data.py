"""Validate photos, make teacher targets, split by whole image, write a dataset manifest.

Examples:
  mobile-pipeline data                                  # bundled photos, cartoon teacher
  mobile-pipeline data --source ~/photos --out runs/data
  mobile-pipeline data --source ~/photos --teacher paired --paired-dir ~/photos_styled
  mobile-pipeline data --teacher keyframes --keyframes-dir ~/shot42   # NAME.png + NAME_styled.png
  mobile-pipeline data --style-dir ~/style_refs         # adds unpaired style images

A rerun with the same inputs and config reuses the existing dataset. Skipped files are
listed with their reasons in <out>/report.json.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from mobile_pipeline.commands._common import add_config_arguments, load_release_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_config_arguments(parser)
    parser.add_argument("--source", type=Path, default=None, help="folder of photos (default: scikit-image's bundled colour photos)")
    parser.add_argument("--teacher", choices=("cartoon", "paired", "keyframes"), default=None,
                        help="how targets are made (default: cartoon filter)")
    parser.add_argument("--paired-dir", type=Path, default=None, help="stylized targets with the photos' file stems (--teacher paired)")
    parser.add_argument("--style-dir", type=Path, default=None, help="unpaired style images for adversarial training")
    parser.add_argument("--keyframes-dir", type=Path, default=None, help="NAME.* + NAME_styled.* pairs (--teacher keyframes)")
    parser.add_argument("--out", type=Path, default=Path("runs/data"), help="dataset directory (default: runs/data)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _data_config(args: argparse.Namespace):
    """The release config's data section with the command-line folders applied."""
    from pydantic import ValidationError

    from mobile_pipeline.config import DataConfig

    cfg = load_release_config(args).data
    overrides = {
        key: value
        for key, value in {
            "source": args.source, "teacher": args.teacher, "paired_dir": args.paired_dir,
            "style_dir": args.style_dir, "keyframes_dir": args.keyframes_dir,
        }.items()
        if value is not None
    }
    if args.teacher is None and args.keyframes_dir is not None:
        overrides["teacher"] = "keyframes"  # --keyframes-dir alone clearly means keyframes mode
    if args.teacher is None and args.paired_dir is not None:
        overrides["teacher"] = "paired"
    try:
        return DataConfig.model_validate({**cfg.model_dump(), **overrides})
    except ValidationError as err:
        from mobile_pipeline.utils.validation import field_messages

        details = "; ".join(field_messages(err, root="teacher", prefix="data."))
        print(f"error: {details}", file=sys.stderr)
        raise SystemExit(2) from None


def run(args: argparse.Namespace) -> int:
    from mobile_pipeline.data.dataset import DataError, build_dataset, read_report

    cfg = _data_config(args)
    try:
        manifest = build_dataset(cfg, args.out, progress=not args.no_progress, log=print)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    counts = manifest.counts()
    print(f"dataset {args.out}: teacher={manifest.teacher}, source={manifest.source}")
    print(f"  train {counts['train']} | val {counts['val']} | style {counts['style']} | skipped {counts['skipped']}")
    for note in manifest.notes:
        print(f"  note: {note}")
    skipped = read_report(args.out)["skipped"]
    if skipped:
        reasons = Counter(item["reason"] for item in skipped)
        print(f"  skipped inputs (details in {Path(args.out) / 'report.json'}):")
        for item in skipped[:10]:
            print(f"    {Path(item['file']).name} [{item['role']}]: {item['reason']}")
        if len(skipped) > 10:
            print(f"    ... {len(skipped) - 10} more; most common: {reasons.most_common(1)[0][0]}")
    return 0
