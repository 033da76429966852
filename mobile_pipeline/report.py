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
from mobile_pipeline.utils.atomic import atomic_write_text

SAMPLE_PHOTOS = 3


def write_report(out_dir: Path, *, release_id: str, inputs: dict[str, Path], cfg: ReleaseConfig) -> None:
    """Write report.html, report.md and their PNGs into ``out_dir``."""
    from mobile_pipeline.data.dataset import load_dataset
    from mobile_pipeline.exporters.report import REPORT_SUFFIX, load_report

    dataset = load_dataset(inputs["data"] / "dataset")
    samples = dataset.pairs("val")[:SAMPLE_PHOTOS] or dataset.pairs("train")[:SAMPLE_PHOTOS]
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
    tiers: list[dict[str, Any]] = []
    for tier in cfg.search.tiers:
        search_json = _load_json(inputs["search"] / f"{tier}.json") or {}
        reports = [(p, load_report(p)) for p in sorted((inputs["export"] / tier).glob(f"*{REPORT_SUFFIX}"))]
        rejected = [load_report(p) for p in sorted((inputs["export"] / tier / "rejected").glob(f"*{REPORT_SUFFIX}"))]
        grid = _sample_grid(out_dir / f"samples_{tier}.png", samples, reports)
        tiers.append({"tier": tier, "search": search_json, "reports": [r for _, r in reports], "rejected": rejected,
                      "grid": grid, "bench": local_p50})

    manifest = _load_json(inputs["manifest"] / "manifest.json") or {}
    context = {"release_id": release_id, "train": train_summary, "tiers": tiers, "figures": figures,
               "manifest_models": len(manifest.get("models", [])), "preset": cfg.preset,
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


def _tier_rows(tier: dict[str, Any]) -> list[list[str]]:
    rows = []
    for report in tier["reports"] + tier["rejected"]:
        measured = tier["bench"].get(report.artifact, {})
        rows.append([
            report.artifact, report.format, report.precision, "pass" if report.passed else "REJECTED",
            _fmt(report.parity.psnr_db, ".1f") if report.parity.runnable else "not runnable here",
            _fmt(report.parity.max_abs_err, ".4f"), f"{report.bytes / 1024:.0f} KiB",
            _fmt(measured.get("p50_ms"), ".2f"), "; ".join(report.reasons)[:80],
        ])
    return rows


_COLUMNS = ["artifact", "format", "precision", "gate", "parity PSNR dB", "max abs err", "size", "p50 ms here (1 thread)", "notes"]


def _arch_facts(tier: dict[str, Any]) -> list[tuple[str, str]]:
    search = tier["search"]
    predicted = search.get("predicted_latency_ms", {})
    predicted_here = predicted.get(tier["tier"]) if isinstance(predicted, dict) else predicted
    return [
        ("architecture", str(search.get("arch", search.get("spec", "–")))),
        ("MACs", f"{search['macs'] / 1e6:.1f} M" if "macs" in search else "–"),
        ("params", f"{search['params'] / 1e3:.1f} k" if "params" in search else "–"),
        ("predicted latency on the tier's reference device", f"{predicted_here:.1f} ms" if isinstance(predicted_here, (int, float)) else "–"),
        # Same machine, runtime and threads as the "p50 ms here" column of the tflite fp32 row below.
        ("predicted latency here (LiteRT, 1 thread)", f"{_fmt(search.get('predicted_local_ms'), '.1f')} ms"),
        ("supernet score (held-out PSNR dB)", _fmt(search.get("supernet_psnr_db"), ".2f")),
        ("PSNR after fine-tune (dB)", _fmt(search.get("finetuned_psnr_db"), ".2f")),
    ]


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
        "<h2>Stylizer (training stage)</h2><table>",
    ]
    for key, value in ctx["train"].items():
        parts.append(f"<tr><th>{esc(str(key))}</th><td>{esc(str(value))}</td></tr>")
    parts.append("</table>")
    if "pareto" in ctx["figures"]:
        parts.append(f"<h2>Architecture search</h2><img src='{ctx['figures']['pareto']}' alt='Pareto plot'>")
    if "latency" in ctx["figures"]:
        parts.append(f"<h2>Latency on this machine</h2><img src='{ctx['figures']['latency']}' alt='latency chart'>")
    for tier in ctx["tiers"]:
        parts.append(f"<h2>Tier {esc(tier['tier'])}</h2><table>")
        parts += [f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in _arch_facts(tier)]
        parts.append("</table><table><tr>" + "".join(f"<th>{c}</th>" for c in _COLUMNS) + "</tr>")
        for row in _tier_rows(tier):
            cls = " class='bad'" if row[3] != "pass" else ""
            parts.append(f"<tr{cls}>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>")
        parts.append("</table>")
        if tier["grid"]:
            parts.append(f"<p>Held-out photos, every variant side by side:</p><img src='{tier['grid']}' alt='samples'>")
    parts.append(ctx.get("flicker", {}).get("html", ""))
    parts.append("</body></html>")
    return "\n".join(parts)


def _render_md(ctx: dict[str, Any]) -> str:
    lines = [f"# Release {ctx['release_id']}", "", f"Preset {ctx['preset']}; {ctx['manifest_models']} models in manifest.json.", ""]
    lines += ["## Stylizer", ""] + [f"- {k}: {v}" for k, v in ctx["train"].items()] + [""]
    for name, alt in (("pareto", "Pareto plot"), ("latency", "latency chart")):
        if name in ctx["figures"]:
            lines += [f"![{alt}]({ctx['figures'][name]})", ""]
    for tier in ctx["tiers"]:
        lines += [f"## Tier {tier['tier']}", ""] + [f"- {k}: {v}" for k, v in _arch_facts(tier)] + [""]
        lines += ["| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
        lines += ["| " + " | ".join(row) + " |" for row in _tier_rows(tier)]
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
