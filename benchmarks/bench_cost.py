"""Cost of every registered spec: MACs and parameters at 256x256 and 512x512.

Targets (issue 3): stylizer-tiny <= 0.4 GMACs at 256x256 (20x below White-box
cartoonization's generator), stylizer-large <= 4 GMACs. The public peers' figures are in the
table for scale; White-box is rebuilt layer for layer (``mobile_pipeline.nets.peers``) and
counted by the same counter, so its row is measured, the other two are the published numbers.

    .venv/bin/python benchmarks/bench_cost.py
"""

from __future__ import annotations

import sys

TARGETS_256 = {"stylizer-tiny": 0.4e9, "stylizer-large": 4.0e9}
#: Published generator costs at 256x256 (GMACs), quoted in issue 3, for scale only.
PUBLISHED_PEERS = {"AnimeGANv2 (published)": 26.3, "CartoonGAN (published)": 54.0}


def main() -> int:
    from mobile_pipeline.nets.complexity import count_macs, count_params, peak_activation_bytes
    from mobile_pipeline.nets.peers import WhiteBoxGenerator
    from mobile_pipeline.nets.registry import get_spec, list_specs

    whitebox = WhiteBoxGenerator().eval()
    whitebox_256 = count_macs(whitebox, (256, 256))
    rows = []
    ok = True
    for name in list_specs():
        spec = get_spec(name)
        macs256, macs512 = count_macs(spec, (256, 256)), count_macs(spec, (512, 512))
        target = TARGETS_256.get(name)
        verdict = "" if target is None else ("ok" if macs256 <= target else "MISS") + f" (<= {target / 1e9:.1f})"
        ok &= target is None or macs256 <= target
        rows.append([name, f"{macs256 / 1e9:.3f}", f"{macs512 / 1e9:.3f}", f"{count_params(spec):,}",
                     f"{peak_activation_bytes(spec, (256, 256)) / 2**20:.1f}", f"{whitebox_256 / macs256:.1f}x", verdict])
    rows.append(["White-box generator (rebuilt)", f"{whitebox_256 / 1e9:.3f}", f"{count_macs(whitebox, (512, 512)) / 1e9:.3f}",
                 f"{count_params(whitebox):,}", f"{peak_activation_bytes(whitebox, (256, 256)) / 2**20:.1f}", "1.0x", ""])
    for peer, gmacs in PUBLISHED_PEERS.items():
        rows.append([peer, f"{gmacs:.1f}", f"{gmacs * 4:.1f}", "", "", f"{whitebox_256 / (gmacs * 1e9):.2f}x", ""])
    headers = ["spec", "GMACs@256", "GMACs@512", "params", "peak act MiB@256", "White-box / this", "target"]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    for row in [headers, ["-" * w for w in widths], *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
