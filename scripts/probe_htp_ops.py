"""Probe every search-space choice through the Qualcomm HTP compiler; write device_tiers/htp_ops.yaml.

    python scripts/probe_htp_ops.py                 # every HTP arch the catalog schema knows, int8 + w8a16
    python scripts/probe_htp_ops.py --archs v73,v75 --out /tmp/htp_ops.yaml

Needs onnxruntime-qnn (Linux x86_64 wheel: compiler + emulator). The default architectures
are the catalog's vocabulary (``tiers.catalog.HTP_ARCHS``), not only those of today's SoCs,
so a catalog refresh that adds a newer Hexagon finds its results already here. The search's
Qualcomm constraints are derived from this file at tier-table load time (tiers/htp.py).
About 1-2 minutes on 2 cores (26 QDQ exports, 156 compiles of a 64 px model).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    from mobile_pipeline.exporters.qnn import QnnUnavailable
    from mobile_pipeline.exporters.qnn_probe import PROBE_SIDE, dump_htp_ops, probe_search_space
    from mobile_pipeline.tiers.catalog import HTP_ARCHS
    from mobile_pipeline.tiers.htp import PROBED_FIELDS, default_htp_ops_path
    from mobile_pipeline.utils.atomic import atomic_write_text

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", default=",".join(HTP_ARCHS), help="comma-separated Hexagon archs (default: %(default)s)")
    parser.add_argument("--precisions", default="int8,w8a16", help="QDQ precisions (default: %(default)s)")
    parser.add_argument("--fields", default=None, help=f"only these ArchSpec fields ({','.join(PROBED_FIELDS)})")
    parser.add_argument("--side", type=int, default=PROBE_SIDE, help="probe resolution (multiple of 4)")
    parser.add_argument("--out", type=Path, default=default_htp_ops_path(), help="output YAML (default: %(default)s)")
    args = parser.parse_args(argv)
    archs = [a.strip() for a in args.archs.split(",") if a.strip()]
    unknown = [a for a in archs if a not in HTP_ARCHS]
    if unknown:
        parser.error(f"unknown Hexagon arch(s) {unknown}; the catalog knows {list(HTP_ARCHS)}")
    fields = [f.strip() for f in args.fields.split(",")] if args.fields else None
    if fields and set(fields) - set(PROBED_FIELDS):
        parser.error(f"unknown field(s) {sorted(set(fields) - set(PROBED_FIELDS))}; use {list(PROBED_FIELDS)}")
    start = time.perf_counter()
    print(f"probing {args.fields or 'every field'} for {', '.join(archs)} ({args.precisions}) at {args.side} px")
    try:
        data = probe_search_space(archs, args.precisions.split(","), args.side, only=fields)
    except QnnUnavailable as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    atomic_write_text(args.out, dump_htp_ops(data))
    refused = sum(r != "ok" for p in data["probes"] for per in p["results"].values() for r in per.values())
    print(f"wrote {args.out}: {len(data['probes'])} probes, {refused} refused compile(s), "
          f"{time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
