"""Device tiers: ``explain`` which tier a phone gets, the chain of rules that decided it, and its fallbacks.

Takes the same device fields as the dispatch server's /v1/select (--platform, --os-version,
--soc-manufacturer, --soc-model, --gpu-renderer, --ram-bytes, --accelerators, --app-version) and
asks the classifier over device_tiers/ (catalog, family rules, capability rules, OS/RAM floors).
With --manifest it also shows what a release's dispatch server would serve: the model, its
fallbacks and the same compact `why` the server returns.

  mobile-pipeline tiers explain --soc-manufacturer QTI --soc-model SM8750 --ram-gib 12
  mobile-pipeline tiers explain --platform ios --soc-model iPhone19,3 --os-version 27.0
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# The /v1/select fields (DeviceInfo), in the server's order; kept here as names so --help stays
# import-light. A test checks they match DeviceInfo.
DEVICE_FIELDS: tuple[tuple[str, str], ...] = (
    ("platform", "android (default), ios or other"),
    ("os_version", "Android release or iOS version, e.g. 15 or 26.0"),
    ("soc_manufacturer", "Build.SOC_MANUFACTURER, e.g. QTI, Mediatek, Samsung, Google"),
    ("soc_model", "Build.SOC_MODEL (SM8750, MT6993, s5e9955, Tensor G5) or the iOS machine id (iPhone18,1)"),
    ("gpu_renderer", "GL_RENDERER, e.g. 'Adreno (TM) 830', 'Mali-G1-Ultra MC12'"),
    ("ram_bytes", "total RAM in bytes as the OS reports it"),
    ("accelerators", "accelerators the app detected, comma-separated or repeated (npu, hexagon, ane ...)"),
    ("app_version", "the asking app's version"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="tiers_command", metavar="ACTION")
    explain = actions.add_parser(
        "explain", help="the tier a device gets, the rules that decided it, and its fallback chain",
        description=(__doc__ or "").strip(), formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, help_text in DEVICE_FIELDS:
        flag = "--" + name.replace("_", "-")
        if name == "accelerators":
            explain.add_argument(flag, action="append", default=[], metavar="NAME[,NAME]", help=help_text)
        else:
            explain.add_argument(flag, default=None, help=help_text)
    explain.add_argument("--ram-gib", type=float, default=None, metavar="GIB",
                         help="RAM in GiB instead of --ram-bytes (12 -> 12 x 2^30 bytes)")
    explain.add_argument("--manifest", type=Path, default=None,
                         help="also show what this release's dispatch server serves (manifest.json)")
    explain.add_argument("--json", action="store_true", help="print the decision as JSON")


def _device_values(args: argparse.Namespace) -> dict:
    values: dict = {}
    for name, _ in DEVICE_FIELDS:
        value = getattr(args, name)
        if name == "accelerators":
            value = [a for item in value for a in item.split(",") if a.strip()]
            if value:
                values[name] = value
        elif value is not None:
            # The API takes ram_bytes as a strict integer (a JSON `false` is not 0): convert the
            # command line's digits here, as the HTTP query parser does.
            values[name] = int(value) if name == "ram_bytes" and str(value).isdigit() else value
    if args.ram_gib is not None:
        if "ram_bytes" in values:
            raise ValueError("give --ram-bytes or --ram-gib, not both")
        values["ram_bytes"] = int(args.ram_gib * (1 << 30))
    return values


def run(args: argparse.Namespace) -> int:
    if getattr(args, "tiers_command", None) != "explain":
        print("usage: mobile-pipeline tiers explain [device fields]  (see mobile-pipeline tiers explain --help)",
              file=sys.stderr)
        return 2
    from pydantic import ValidationError

    from mobile_pipeline.tiers.classifier import default_classifier
    from mobile_pipeline.tiers.device_info import DeviceInfo
    from mobile_pipeline.tiers.explain import render
    from mobile_pipeline.utils.validation import field_messages

    try:
        info = DeviceInfo.model_validate(_device_values(args))
    except ValueError as err:
        lines = field_messages(err) if isinstance(err, ValidationError) else [str(err)]
        # name the option the user typed (--ram-bytes), not the API field (ram_bytes)
        lines = ["--" + line.split(":", 1)[0].split(".")[0].replace("_", "-") + ":" + line.split(":", 1)[1]
                 if ":" in line else line for line in lines]
        print("error: invalid device fields:\n  " + "\n  ".join(lines), file=sys.stderr)
        return 2
    try:
        decision = default_classifier().classify(info)
    except ValueError as err:  # the catalog file itself is broken: say which field, do not serve a guess
        print(f"error: {err}", file=sys.stderr)
        return 2
    selection = None
    if args.manifest is not None:
        from mobile_pipeline.manifest.schema import ManifestInvalid, load_manifest
        from mobile_pipeline.serve.dispatch import Dispatcher, NoModelForPlatform

        try:
            selection = Dispatcher(load_manifest(args.manifest)).select(info)
        except (ManifestInvalid, NoModelForPlatform) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    if args.json:
        payload = {"device": info.model_dump(exclude_none=True), "decision": decision.to_dict()}
        if selection is not None:
            payload["served"] = selection.to_dict()
        print(json.dumps(payload, indent=2, default=str))
    else:
        print(render(info, decision, selection))
    return 0
