"""The release report: ``report.html`` (offline, images next to it) and ``report.md``.

Per tier: the searched architecture, MACs, params, predicted and measured latency, parity and
quality; sample stylizations of held-out photos by every variant side by side; the Pareto plot
of the search and the latency chart of the bench; flicker on video (:func:`flicker_section`).
"""

from __future__ import annotations

import html
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from mobile_pipeline.config import ReleaseConfig
from mobile_pipeline.quality.release_view import COLUMNS as _LOOK_COLUMNS
from mobile_pipeline.utils.atomic import atomic_write_text

SAMPLE_PHOTOS = 3


def write_report(out_dir: Path, *, release_id: str, inputs: dict[str, Path], cfg: ReleaseConfig) -> None:
    """Write report.html, report.md and their PNGs into ``out_dir``."""
    from mobile_pipeline.data.dataset import load_dataset
    from mobile_pipeline.exporters.report import REPORT_SUFFIX, load_report

    dataset = load_dataset(inputs["data"] / "dataset")
    heldout = dataset.heldout_pairs()
    samples = heldout[:SAMPLE_PHOTOS]
    train_summary = _stage_summary(inputs["train"])
    bench = _load_json(_find(inputs["bench"], "bench.json"))
    figures: dict[str, str] = {}
    for name in ("pareto.png",):
        if (src := _find(inputs["search"], name)) is not None:
            shutil.copy2(src, out_dir / name)
            figures["pareto"] = name
    for src in sorted(inputs["bench"].glob("*.png")):
        shutil.copy2(src, out_dir / src.name)
        figures.setdefault("latency", src.name)

    local_p50 = _bench_rows(bench)
    manifest = _load_json(inputs["manifest"] / "manifest.json") or {}
    shipped = {m.get("id"): m for m in manifest.get("models", [])}
    tiers: list[dict[str, Any]] = []
    for tier in cfg.search.tiers:
        # The tier-training stage's <tier>.json is the search's plus a `training` block.
        search_json = _load_json(inputs["tiers"] / f"{tier}.json") or _load_json(inputs["search"] / f"{tier}.json") or {}
        reports = [(p, load_report(p)) for p in sorted((inputs["export"] / tier).glob(f"*{REPORT_SUFFIX}"))]
        rejected = [load_report(p) for p in sorted((inputs["export"] / tier / "rejected").glob(f"*{REPORT_SUFFIX}"))]
        grid = _sample_grid(out_dir / f"samples_{tier}.png", samples, reports)
        # One line on the Qualcomm NPU step: what was precompiled, or why it was skipped here.
        qnn_line = (_load_json(inputs["export"] / tier / "qnn_summary.json") or {}).get("line")
        tiers.append({"tier": tier, "search": search_json, "reports": [r for _, r in reports], "rejected": rejected,
                      "grid": grid, "bench": local_p50, "shipped": shipped, "qnn": qnn_line})

    from mobile_pipeline.quality.release_view import quality_rows, tier_grid

    reference = inputs["train"] / train_summary["checkpoint"] if "checkpoint" in train_summary else None
    names = list(cfg.search.tiers)
    look = {"rows": quality_rows(heldout, inputs["tiers"], reference, names, {t["tier"]: t["reports"] for t in tiers}),
            "grid": tier_grid(out_dir / "samples_tiers.png", samples, inputs["tiers"], reference, names)}
    context = {"release_id": release_id, "train": train_summary, "tiers": tiers, "figures": figures,
               "manifest_models": len(manifest.get("models", [])), "preset": cfg.preset, "look": look,
               "heldout_images": len(heldout), "verification": _verification_policy(cfg.manifest.require_verified),
               "phones": device_latency_section(tiers),
               "flicker": flicker_section(inputs["export"], cfg.search.tiers)}
    atomic_write_text(out_dir / "report.html", _render_html(context))
    atomic_write_text(out_dir / "report.md", _render_md(context))


# ----------------------------------------------------------------------------- samples
def _sample_grid(path: Path, samples: list[tuple[np.ndarray, np.ndarray]], reports: list) -> str | None:
    """Rows: held-out photos. Columns: photo, teacher, then every passed variant's output."""
    import cv2

    from mobile_pipeline.exporters.runtimes import load_runner

    runners = []
    for report_path, report in reports:
        if not report.passed:
            continue
        runner = load_runner(report.artifact_path(report_path))
        if getattr(runner, "runnable", True):
            runners.append((f"{report.format} {report.precision}", runner, report))
    if not samples:
        return None
    rows = []
    for photo, target in samples:
        tiles, labels = [], []
        for label, runner, report in runners:
            height, width = _input_hw(report)
            batch = cv2.resize(photo, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
            output = runner.run(batch.transpose(2, 0, 1)[None])[0].transpose(1, 2, 0)
            tiles.append((np.clip(output, 0, 1) * 255).round().astype(np.uint8))
            labels.append(label)
        side = tiles[0].shape[:2] if tiles else (192, 192)
        head = [cv2.resize(img, (side[1], side[0]), interpolation=cv2.INTER_AREA) for img in (photo, target)]
        rows.append((head + tiles, ["photo", "teacher"] + labels))
    _save_labeled_grid(path, rows)
    return path.name


def _input_hw(report) -> tuple[int, int]:
    shape = report.input.shape
    return (shape[1], shape[2]) if report.input.layout == "NHWC" else (shape[2], shape[3])


def _save_labeled_grid(path: Path, rows: list[tuple[list[np.ndarray], list[str]]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_rows, n_cols = len(rows), max(len(images) for images, _ in rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(2.2 * n_cols, 2.3 * n_rows), squeeze=False)
    for r, (images, labels) in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(images):
                ax.imshow(images[c])
                if r == 0:
                    ax.set_title(labels[c], fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ----------------------------------------------------------------------------- rendering
def _fmt(value: Any, spec: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and spec:
        return format(value, spec)
    return str(value)


def _verification_policy(require: dict[str, bool]) -> str:
    """One sentence: what the manifest did with artifacts that never ran on their own runtime."""
    excluded = sorted(f for f, required in require.items() if required)
    marked = sorted(f for f, required in require.items() if not required)
    parts = []
    if marked:
        parts.append(f"unverified {', '.join(marked)} artifacts are shipped marked verified: false")
    if excluded:
        parts.append(f"unverified {', '.join(excluded)} artifacts are left out of the manifest")
    return ("Verification (manifest.require_verified): " + "; ".join(parts) + ". Core ML cannot run off macOS: "
            "verify it on a Mac with `mobile-pipeline export verify-coreml`, then `mobile-pipeline bench import`.")


def _shipping(report: Any, shipped: dict[str, dict[str, Any]]) -> str:
    """Verified or not, and whether the manifest ships it (rejected artifacts never ship)."""
    if not report.passed:
        return "–"
    model = shipped.get(f"{report.tier}-{report.format}-{report.precision}")
    if model is None:
        return "left out (unverified)" if not report.verified else "not in manifest"
    if model.get("verified", True):
        return "verified" + (" after export" if model.get("verified_by") else "")
    return "UNVERIFIED, shipped"


def _tier_rows(tier: dict[str, Any]) -> list[list[str]]:
    rows = []
    for report in tier["reports"] + tier["rejected"]:
        measured = tier["bench"].get(report.artifact, {})
        quality = report.quality or {}
        notes = list(report.reasons) or ([report.verified_reason] if report.verified_reason else [])
        rows.append([
            report.artifact, report.format, report.precision, "pass" if report.passed else "REJECTED",
            _fmt(report.parity.psnr_db, ".1f") if report.parity.runnable else "not runnable here",
            _fmt(report.parity.max_abs_err, ".4f"), f"{report.bytes / 1024:.0f} KiB",
            _fmt(measured.get("p50_ms"), ".2f"), _fmt(quality.get("psnr_db"), ".2f"),
            _fmt(quality.get("ink_recall"), ".2f"), _fmt(quality.get("texture_kept"), ".2f"),
            _shipping(report, tier.get("shipped", {})), "; ".join(notes)[:80],
        ])
    return rows


_COLUMNS = ["artifact", "format", "precision", "gate", "parity PSNR dB", "max abs err", "size", "p50 ms here (1 thread)",
            "held-out PSNR dB", "ink recall", "texture kept", "verified / manifest", "notes"]
_LOOK_NOTE = ("Whole held-out photos against the teacher. Ink recall: share of the lines the style adds (where the "
              "photo has none) that the model draws, within 1 px; ink precision: share of the model's added ink that is "
              "such a line; texture kept: photo texture left where the teacher paints flat tone (1 = the photo's, ~0 "
              "= the teacher's). Definitions: mobile_pipeline/quality/look.py.")


def _arch_facts(tier: dict[str, Any]) -> list[tuple[str, str]]:
    search = tier["search"]
    predicted = search.get("predicted_latency_ms", {})
    predicted_here = predicted.get(tier["tier"]) if isinstance(predicted, dict) else predicted
    return [
        ("architecture", str(search.get("arch", search.get("spec", "–")))),
        ("MACs", f"{search['macs'] / 1e6:.1f} M" if "macs" in search else "–"),
        ("params", f"{search['params'] / 1e3:.1f} k" if "params" in search else "–"),
        ("predicted latency on the tier's reference device",
         (f"{predicted_here:.1f} ms" if isinstance(predicted_here, (int, float)) else "–")
         + (f" ({tier['latency_source']})" if tier.get("latency_source") else "")),
        # Same machine, runtime and threads as the "p50 ms here" column of the tflite fp32 row below.
        ("predicted latency here (LiteRT, 1 thread)", f"{_fmt(search.get('predicted_local_ms'), '.1f')} ms"),
        ("supernet score (held-out PSNR dB)", _fmt(search.get("supernet_psnr_db"), ".2f")),
        ("shipped model's held-out PSNR (dB)", _fmt(search.get("training", {}).get("heldout", {}).get("psnr_db"), ".2f")),
        ("trained", _training_text(search.get("training"))),
    ]


def _training_text(training: dict[str, Any] | None) -> str:
    if not training:
        return "– (no tier training: a supernet slice)"
    text = (f"{training.get('paired_steps')} paired + {training.get('adversarial_steps')} adversarial steps from "
            f"{'its supernet weights' if training.get('init') == 'supernet' else 'scratch'}")
    if training.get("distilled_from"):
        text += ", distilled from the reference model"
    if training.get("shared_with"):
        text += f"; same architecture and weights as {', '.join(training['shared_with'])}"
    return text


def _render_html(ctx: dict[str, Any]) -> str:
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Release {esc(ctx['release_id'])}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}"
        "th{background:#f3f3f3}img{max-width:100%}.bad{color:#b00}</style></head><body>",
        f"<h1>Release {esc(ctx['release_id'])}</h1>",
        f"<p>Preset <b>{esc(str(ctx['preset']))}</b>; {ctx['manifest_models']} models in <code>manifest.json</code>. "
        "Serve it with <code>mobile-pipeline serve --manifest manifest.json</code>.</p>",
        f"<p>{esc(ctx['verification'])}</p>",
        "<h2>Stylizer (training stage)</h2><table>",
    ]
    for key, value in ctx["train"].items():
        parts.append(f"<tr><th>{esc(str(key))}</th><td>{esc(str(value))}</td></tr>")
    parts.append("</table>")
    look = ctx["look"]
    parts.append(f"<h2>The look of each tier</h2><p>{esc(_LOOK_NOTE)} {ctx['heldout_images']} images.</p><table><tr>"
                 + "".join(f"<th>{c}</th>" for c in _LOOK_COLUMNS) + "</tr>")
    parts += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in look["rows"]]
    parts.append("</table>")
    if look["grid"]:
        parts.append(f"<img src='{look['grid']}' alt='held-out photos, each tier side by side'>")
    if "pareto" in ctx["figures"]:
        parts.append(f"<h2>Architecture search</h2><img src='{ctx['figures']['pareto']}' alt='Pareto plot'>")
    if "latency" in ctx["figures"]:
        parts.append(f"<h2>Latency on this machine</h2><img src='{ctx['figures']['latency']}' alt='latency chart'>")
    parts += ctx.get("phones", {}).get("html", [])
    for tier in ctx["tiers"]:
        parts.append(f"<h2>Tier {esc(tier['tier'])}</h2><table>")
        parts += [f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in _arch_facts(tier)]
        parts.append("</table><table><tr>" + "".join(f"<th>{c}</th>" for c in _COLUMNS) + "</tr>")
        for row in _tier_rows(tier):
            cls = " class='bad'" if row[3] != "pass" else ""
            parts.append(f"<tr{cls}>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>")
        parts.append("</table>")
        if tier.get("qnn"):
            parts.append(f"<p>{esc(tier['qnn'])}</p>")
        if tier["grid"]:
            parts.append(f"<p>Held-out photos, every variant side by side:</p><img src='{tier['grid']}' alt='samples'>")
    parts.append(ctx.get("flicker", {}).get("html", ""))
    parts.append("</body></html>")
    return "\n".join(parts)


def _render_md(ctx: dict[str, Any]) -> str:
    lines = [f"# Release {ctx['release_id']}", "", f"Preset {ctx['preset']}; {ctx['manifest_models']} models in manifest.json.", "",
             ctx["verification"], ""]
    lines += ["## Stylizer", ""] + [f"- {k}: {v}" for k, v in ctx["train"].items()] + [""]
    lines += ["## The look of each tier", "", f"{_LOOK_NOTE} {ctx['heldout_images']} images.", ""]
    lines += ["| " + " | ".join(_LOOK_COLUMNS) + " |", "|" + "---|" * len(_LOOK_COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in ctx["look"]["rows"]] + [""]
    if ctx["look"]["grid"]:
        lines += [f"![each tier side by side]({ctx['look']['grid']})", ""]
    for name, alt in (("pareto", "Pareto plot"), ("latency", "latency chart")):
        if name in ctx["figures"]:
            lines += [f"![{alt}]({ctx['figures'][name]})", ""]
    lines += ctx.get("phones", {}).get("md", [])
    for tier in ctx["tiers"]:
        lines += [f"## Tier {tier['tier']}", ""] + [f"- {k}: {v}" for k, v in _arch_facts(tier)] + [""]
        lines += ["| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
        lines += ["| " + " | ".join(row) + " |" for row in _tier_rows(tier)]
        if tier.get("qnn"):
            lines += ["", tier["qnn"]]
        if tier["grid"]:
            lines += ["", f"![samples {tier['tier']}]({tier['grid']})"]
        lines.append("")
    lines.append(ctx.get("flicker", {}).get("md", ""))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- flicker
def flicker_section(export_dir: Path, tiers: Any) -> dict[str, str]:
    """Per-tier flicker of every passed, runnable artifact, as ``{"html": ..., "md": ...}``.

    Self-contained (it reads only ``export_dir/<tier>/*.report.json`` and the artifacts), so
    it can be called from any report. Measured on synthetic pan clips with sensor noise at
    each artifact's own resolution, beside the input's and the cartoon teacher's flicker
    (``mobile_pipeline/quality/flicker.py``). A failure is shown in the section, not raised:
    the rest of the report is still worth writing.
    """
    from mobile_pipeline.quality import flicker

    title = "Flicker on video"
    try:
        skipped: list[str] = []
        rows = flicker.release_flicker(export_dir, list(tiers), skipped=skipped)
    except Exception as err:  # noqa: BLE001 - report it in the section and keep the report
        message = f"flicker not measured: {type(err).__name__}: {err}"
        return {"html": f"<h2>{title}</h2><p class='bad'>{html.escape(message)}</p>",
                "md": f"## {title}\n\n{message}\n"}
    how = flicker.describe(photos=flicker.bundled_photo_count())
    summary = flicker.summary_line(rows)
    parts = [f"<h2>{title}</h2><p>{html.escape(how)}.</p><table><tr>"
             + "".join(f"<th>{html.escape(c)}</th>" for c in flicker.COLUMNS) + "</tr>"]
    for row in rows:
        cls = "" if row.steadier_than_input else " class='bad'"
        parts.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(c)}</td>" for c in row.cells()) + "</tr>")
    parts.append(f"</table><p>{html.escape(summary)}</p>")
    parts += [f"<p>not measured: {html.escape(line)}</p>" for line in skipped]
    md = [f"## {title}", "", how + ".", "", flicker.format_table(rows, markdown=True), "", summary, ""]
    md += [f"- not measured: {line}" for line in skipped]
    return {"html": "".join(parts), "md": "\n".join(md) + "\n"}


# ----------------------------------------------------------------------------- io
def _bench_rows(bench: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Map artifact file name -> its 1-thread local p50 from bench.json (schema owned by bench/).

    One thread, like the latency model's prediction next to it; the fastest runtime wins when
    an artifact ran on several.
    """
    rows: dict[str, dict[str, Any]] = {}
    for record in (bench or {}).get("results", []):
        name = Path(str(record.get("artifact", ""))).name
        p50 = record.get("p50_ms")
        if p50 is None or record.get("threads") != 1:
            continue
        if name not in rows or p50 < rows[name]["p50_ms"]:
            rows[name] = {"p50_ms": float(p50), "runtime": record.get("runtime")}
    return rows


def _stage_summary(stage_dir: Path) -> dict[str, Any]:
    from mobile_pipeline.stage_cache import DONE_FILE

    data = _load_json(stage_dir / DONE_FILE)
    return (data or {}).get("summary", {})


def _find(root: Path, name: str) -> Path | None:
    direct = root / name
    if direct.is_file():
        return direct
    return next(iter(sorted(root.rglob(name))), None)


def _load_json(path: Path | None) -> dict[str, Any] | None:
    if path is None or not Path(path).is_file():
        return None
    return json.loads(Path(path).read_text(encoding="utf-8"))


# ---------------------------------------------------------------- measured phones
def device_latency_section(tiers: list[dict[str, Any]], latency_model: Any = None,
                           tier_table: dict[str, Any] | None = None) -> dict[str, list[str]]:
    """Each tier's model predicted on the measured phones, with the fit's error, beside the frame budget.

    Also sets ``tier["latency_source"]`` (where the tier's own predicted latency comes from:
    fitted to a measured phone, calibrated, or ``uncalibrated (datasheet)``). Returns the
    section as ``{"md": lines, "html": parts}``; empty when there is no latency model.
    """
    import logging

    try:
        if tier_table is None:
            from mobile_pipeline.tiers.table import load_tier_table

            tier_table = load_tier_table()
        if latency_model is None:
            from mobile_pipeline.search.latency import LatencyModel

            latency_model = LatencyModel.load(tiers=tier_table)
    except Exception as err:  # the report must not fail for want of a latency model
        logging.getLogger(__name__).warning("report: no device latency section (%s: %s)", type(err).__name__, err)
        return {"md": [], "html": []}
    esc = html.escape
    title = "Predicted latency on measured phones"
    intro = ("Each tier's model on the phones Qualcomm AI Hub measured, from per-phone models fitted on published "
             "networks (±: the fit's leave-one-model-out MAPE). * marks the phone the tier's search optimised for.")
    md = [f"## {title}", "", intro, ""]
    out = [f"<h2>{title}</h2><p>{esc(intro)}</p>"]
    columns = ["phone", "SoC", "phone's tier", "runtime", "predicted ms", "± LOO MAPE", "Spearman", "fits the frame"]
    for tier in tiers:
        name, search = tier["tier"], tier.get("search") or {}
        tier["latency_source"] = latency_model.scale_sources.get(name)
        if name not in tier_table or not search.get("arch"):
            continue
        spec = tier_table[name]
        frame_ms = 1000.0 / float(spec.target_fps)
        side = int(search.get("resolution") or spec.resolution)
        rows = latency_model.phone_predictions(search["arch"], name, spec, (side, side))
        head = (f"Tier {name}: frame budget {frame_ms:.1f} ms ({spec.target_fps:g} fps), model budget "
                f"{spec.budgets.latency_ms:g} ms, {side} px. Search latency: {tier['latency_source'] or 'none'}")
        note = ""
        if rows and rows[0]["tier_unit"] != "NPU":
            note = (f"This tier runs on the {rows[0]['tier_unit']}; AI Hub measured these phones' NPU, so the figures "
                    "below only bound what the tier's phones could do.")
        table = [[("* " if r["stands_for_tier"] else "") + r["device"], r["soc_model"], str(r["phone_tier"] or "?"),
                  f"{r['runtime']} {r['precision']}", f"{r['predicted_ms']:.2f}", f"{r['loo_mape_pct']:.0f}%",
                  f"{r['loo_spearman']:.2f}", "yes" if r["predicted_ms"] * (1 + r["loo_mape_pct"] / 100) <= frame_ms
                  else ("maybe" if r["predicted_ms"] <= frame_ms else "no")] for r in rows]
        md += [f"### {head}", ""] + ([note, ""] if note else [])
        out.append(f"<h3>{esc(head)}</h3>" + (f"<p>{esc(note)}</p>" if note else ""))
        if not table:
            md += ["No measured phone for this tier's runtime and precision.", ""]
            out.append("<p>No measured phone for this tier's runtime and precision.</p>")
            continue
        md += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        md += ["| " + " | ".join(row) + " |" for row in table] + [""]
        out.append("<table><tr>" + "".join(f"<th>{c}</th>" for c in columns) + "</tr>"
                   + "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in table)
                   + "</table>")
    return {"md": md, "html": out}
