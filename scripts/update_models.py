"""Copy a release's searched architectures into ``models/<preset>/`` (committed data, no weights).

``models/<preset>/<tier>.json`` is what an engineer trains directly on a bigger machine without
rerunning the search (``mobile-pipeline train --arch models/demo/npu.json``): the spec, the
tier's budgets, the candidate's measured costs, the search's provenance (trials, seed,
strategy, supernet score) and, for context, the held-out quality the release's tier training
reached with it.

    .venv/bin/python scripts/update_models.py export/demo-1234abcd
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mobile_pipeline.utils.atomic import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
DROP = ("checkpoint",)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("release", type=Path, help="a release folder (export/<release-id>)")
    parser.add_argument("--preset", default=None, help="target models/<preset>/ (default: the release id's prefix)")
    args = parser.parse_args(argv)
    release = args.release
    stages = json.loads((release / "stages.json").read_text(encoding="utf-8"))
    release_id = stages["release_id"]
    preset = args.preset or release_id.split("-")[0]
    out = ROOT / "models" / preset
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted((release / "models").glob("*.json")):
        if path.stem == "reference":
            continue
        document = json.loads(path.read_text(encoding="utf-8"))
        training = document.pop("training", {})
        for key in DROP:
            document.pop(key, None)
        document["provenance"] = {
            "release_id": release_id, "preset": preset,
            "note": "searched architecture only (no weights); train it with `mobile-pipeline train --arch` this file",
            "tier_training_in_that_release": {k: training.get(k) for k in ("paired_steps", "adversarial_steps",
                                                                           "init", "heldout")},
        }
        target = out / path.name
        atomic_write_text(target, json.dumps(document, indent=2, sort_keys=True) + "\n")
        print(f"{target.relative_to(ROOT)}: {document['arch']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
