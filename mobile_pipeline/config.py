"""Release configuration: pydantic models, YAML loading, presets.

Every section forbids unknown keys, so a typo (``batchsize:``) is an error naming the field
rather than a silently ignored setting. Presets:

* ``tiny`` – seconds per stage; used by the end-to-end test in CI.
* ``demo`` – the README's release: minutes on 2 CPU cores, end to end.
* ``full`` – GPU scale: larger specs, patches, steps and search budgets. Same code.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mobile_pipeline.utils.validation import field_messages

TIER_NAMES: tuple[str, ...] = ("cpu", "gpu", "dsp", "npu")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Section):
    """Photo source, teacher and dataset layout."""

    source: Path | None = Field(None, description="Folder of photos; None = scikit-image's bundled colour photos.")
    teacher: Literal["cartoon", "paired", "keyframes"] = "cartoon"
    paired_dir: Path | None = Field(None, description="Stylized targets with the same file stems as the photos (teacher=paired).")
    style_dir: Path | None = Field(None, description="Unpaired style images for adversarial training.")
    keyframes_dir: Path | None = Field(
        None,
        description="Folder of keyframe pairs: NAME.* and NAME_styled.* (teacher=keyframes). With so few pairs, "
        "each one is cut into a training region and a held-out validation strip (val_fraction of its longer side).",
    )
    max_side: int = Field(512, ge=32, le=8192, description="Photos are resized so their longer side is at most this.")
    min_side: int = Field(32, ge=8, description="Images with a shorter side below this are skipped as tiny.")
    val_fraction: float = Field(0.25, gt=0.0, lt=1.0, description="Fraction of whole images held out for validation.")
    min_val_images: int = Field(1, ge=1)
    seed: int = 0

    @model_validator(mode="after")
    def _teacher_needs_folder(self) -> "DataConfig":
        if self.teacher == "paired" and self.paired_dir is None:
            raise ValueError("data.paired_dir is required when data.teacher is 'paired'")
        if self.teacher == "keyframes" and self.keyframes_dir is None:
            raise ValueError("data.keyframes_dir is required when data.teacher is 'keyframes'")
        return self


class TrainConfig(_Section):
    """Stylizer training (stage 1 paired, stage 2 mixed adversarial)."""

    arch: str = Field("stylizer-tiny", description="Registered spec name or an architecture string.")
    paired_steps: int = Field(300, ge=0)
    adversarial_steps: int = Field(100, ge=0)
    batch_size: int = Field(8, ge=1)
    patch_size: int = Field(64, ge=16, le=1024)
    lr: float = Field(2e-3, gt=0)
    lr_disc: float = Field(2e-4, gt=0)
    adv_loss: Literal["hinge", "lsgan"] = "hinge"
    weight_l1: float = Field(1.0, ge=0)
    weight_multiscale: float = Field(0.5, ge=0)
    weight_edge: float = Field(0.5, ge=0)
    weight_adv: float = Field(0.05, ge=0)
    weight_distill: float = Field(
        1.0, ge=0, description="Weight of the distillation terms when a reference model is given (tier training, "
                               "`train --reference`): the paired loss against the reference's outputs.")
    distill_batch_size: int = Field(
        4, ge=0, description="Augmented photo crops without a teacher target per step when distilling "
                             "(their only target is the reference's output); 0 = paired patches only.")
    weight_temporal: float = Field(
        0.0, ge=0, description="Temporal consistency (train/temporal.py): shifted, re-noised views of an eighth of the "
                               "batch must give the shifted output; 0 = off. On (1) in the demo and full presets: the "
                               "demo recipe flickers 19-29% less on video at no held-out PSNR cost (2 seeds); off by "
                               "default because short runs and few-shot training lose 0.1-1.4 dB with it.")
    disc_checkpoint: Path | None = Field(None, description="Local checkpoint of a pretrained feature backbone for the discriminator.")
    few_shot: bool = Field(False, description="Few-shot mode: train on 1-3 keyframe pairs with small random patches.")
    few_shot_patch_size: int = Field(32, ge=16, le=256, description="Patch side in few-shot mode (small patches, many per batch).")
    few_shot_batch_size: int = Field(40, ge=1, description="Patches per step in few-shot mode.")
    max_val_images: int | None = Field(None, ge=1, description="Cap on held-out images per validation (None = all).")
    checkpoint_every: int = Field(100, ge=1)
    val_every: int = Field(100, ge=1)
    num_workers: int = Field(0, ge=0)
    num_threads: int | None = Field(
        None, ge=1, description="torch CPU threads (None = torch's default); 1 avoids OpenMP spin on a shared machine.")
    accelerator: str = "cpu"
    devices: int | str = 1
    num_nodes: int = Field(1, ge=1)
    strategy: str = "auto"
    precision: str = "32-true"
    tensorboard: bool = False
    seed: int = 0

    @field_validator("devices")
    @classmethod
    def _devices(cls, devices: int | str) -> int | str:
        # Lightning also takes "auto", -1 (all) or a list string such as "0,1".
        message = "must be a positive count, -1 (all), 'auto' or a device list such as '0,1'"
        if isinstance(devices, int):
            if devices == 0 or devices < -1:
                raise ValueError(message)
            return devices
        text = devices.strip()
        if text == "auto" or text == "-1":
            return text
        if not re.fullmatch(r"[0-9]+(,[0-9]+)*,?", text) or text in ("0",):
            raise ValueError(message)
        return text


class SearchConfig(_Section):
    """Hardware-aware architecture search, one architecture per tier."""

    tiers: tuple[str, ...] = TIER_NAMES
    resolution: int = Field(256, ge=32, description="Side (square) at which every candidate's MACs are also reported "
                                                    "(budgets themselves are checked at each tier's own resolution).")
    space: Literal["default", "tiny", "wide"] = Field(
        "default", description="Search grid: 'default' (demo; covered by the committed latency LUT), 'tiny' (CI) or "
                               "'wide' (full preset: reaches past every tier's MAC budget; build its LUT entries with "
                               "`mobile-pipeline search --build-lut`).")
    supernet_steps: int = Field(150, ge=0)
    batch_size: int = Field(8, ge=1, description="Supernet / fine-tune batch size.")
    patch_size: int = Field(64, ge=16, description="Supernet / fine-tune patch side (multiple of 8).")
    lr: float = Field(2e-3, gt=0, description="Supernet Adam learning rate (fine-tunes use half).")
    n_random: int = Field(1, ge=0, description="Random sub-networks per supernet step besides largest + smallest (sandwich rule).")
    weight_reference: float = Field(
        0.5, ge=0, description="Supernet: weight of distillation from the train stage's reference model (0 = off).")
    score_tolerance_db: float = Field(
        0.0, ge=0, description="Supernet scores within this of a tier's best count as tied; the largest tied "
                               "candidate (MACs) wins, since the supernet cannot rank them (search.driver.select_winner).")
    warm_start: bool = Field(
        True, description="Start the supernet from the train stage's reference model when its architecture lies in "
                          "the grid (once-for-all): the reference's training then reaches every tier's model.")
    weight_inplace: float = Field(
        0.5, ge=0, description="Supernet: weight of in-place distillation from the largest sub-network (0 = off).")
    eval_size: int | None = Field(
        None, ge=16, description="Side of the held-out center crops candidates are scored on; None = whole held-out "
                                 "images (more pixels, less noise in the ranking; the demo's two photos take ~0.1 s).")
    eval_images: int = Field(4, ge=1, description="Held-out images per candidate score.")
    bn_batches: int = Field(2, ge=1, description="Training batches to re-estimate BatchNorm statistics of a candidate.")
    population: int = Field(12, ge=2)
    sample_size: int = Field(4, ge=1)
    trials: int = Field(40, ge=1, description="Candidates evaluated per tier.")
    finetune_steps: int = Field(
        0, ge=0, description="Optional paired fine-tune of each winner inside the search (0: the tier-training stage "
                             "trains the winners with the full recipe).")
    seed: int = 0

    @field_validator("tiers")
    @classmethod
    def _known_tiers(cls, tiers: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [t for t in tiers if t not in TIER_NAMES]
        if unknown:
            raise ValueError(f"unknown tier(s) {unknown}; choose from {list(TIER_NAMES)}")
        if not tiers:
            raise ValueError("at least one tier is required")
        return tiers

    @model_validator(mode="after")
    def _sample_fits(self) -> "SearchConfig":
        if self.sample_size > self.population:
            raise ValueError("search.sample_size must not exceed search.population")
        if self.patch_size % 8:
            raise ValueError(f"search.patch_size must be a multiple of 8 (the grid's deepest nets downsample 8x), got {self.patch_size}")
        return self


class TierTrainConfig(_Section):
    """Training of each tier's searched architecture: the models that ship.

    Every other training setting (batch, patch, loss weights, distillation weight, devices)
    comes from ``train``, so a tier model is trained with the reference model's recipe:
    paired stage with multi-scale supervision, then the mixed adversarial stage.
    """

    paired_steps: int = Field(600, ge=0)
    adversarial_steps: int = Field(100, ge=0)
    lr: float | None = Field(None, gt=0, description="Generator learning rate (None = train.lr).")
    init: Literal["supernet", "scratch"] = Field(
        "supernet", description="Start from the architecture's supernet weights (its search slice) or from scratch.")
    distill: bool = Field(True, description="Distill from the reference model the `train` stage produced.")

    @model_validator(mode="after")
    def _some_steps(self) -> "TierTrainConfig":
        if self.paired_steps + self.adversarial_steps == 0:
            raise ValueError("tier_train needs paired_steps + adversarial_steps > 0 (the shipped models must be trained)")
        return self


class ExportConfig(_Section):
    """Which variants to export and how to validate them."""

    qnn_emulation_images: int | None = Field(
        None, ge=1, description="Validation photos each Hexagon precompile is emulated on for its parity gate "
                                "(None = all export.validation_images; the HTP emulator takes seconds per frame).")

    formats: tuple[Literal["onnx", "tflite", "coreml", "executorch"], ...] = ("onnx", "tflite", "coreml", "executorch")
    calibration_images: int = Field(8, ge=1)
    validation_images: int = Field(4, ge=1)
    resolution: int | None = Field(None, ge=32, description="Override the tiers' export resolution (square side).")
    jobs: int = Field(1, ge=1, le=8, description="Export worker processes (one format each); >1 helps only on idle cores.")


class BenchConfig(_Section):
    """Local runtime benchmarking."""

    warmup: int = Field(3, ge=0)
    runs: int = Field(20, ge=1)
    threads: tuple[int, ...] = (1, 2)
    noise_warn_ratio: float = Field(1.2, gt=1.0, description="Warn when p90/p50 exceeds this.")


ManifestFormat = Literal["onnx", "tflite", "coreml", "executorch"]
# Within a tier, the format each platform takes first when the release has several; ExecuTorch
# comes last until a config puts it first (its runtime is an app-side choice).
DEFAULT_FORMAT_PREFERENCE: dict[str, tuple[str, ...]] = {
    "android": ("tflite", "onnx", "executorch"),
    "ios": ("coreml", "onnx", "executorch"),
    "other": ("onnx",),
}
FORMAT_PLATFORMS: dict[str, tuple[str, ...]] = {
    "onnx": ("android", "ios", "other"), "tflite": ("android",), "coreml": ("ios",), "executorch": ("android", "ios"),
}


class ManifestConfig(_Section):
    """Tier-selection manifest."""

    url_template: str = Field(
        "https://models.example.invalid/{release_id}/{file}",
        description="Download URL per model; {release_id} and {file} are filled in.",
    )
    min_android_sdk: int = Field(26, ge=21)
    min_ios: str = Field("15.0", pattern=r"^[0-9]{1,3}(\.[0-9]{1,3}){0,2}$")
    tiers: tuple[str, ...] | None = Field(
        None, description="Tiers that must have a model (the build refuses otherwise); None = every tier in the tier table."
    )
    require_verified: dict[ManifestFormat, bool] = Field(
        default_factory=lambda: {"onnx": True, "tflite": True, "coreml": False, "executorch": False},
        description="Per format: true = an artifact that was never run on its own runtime (Core ML built off macOS, "
                    "not yet verified with `export verify-coreml` on a Mac and `bench import`; a Core ML-delegated "
                    "ExecuTorch .pte) is left out of the manifest; false = it is included and marked verified: false "
                    "with the reason. A format not named here is required to be verified.")
    format_preference: dict[Literal["android", "ios", "other"], tuple[ManifestFormat, ...]] = Field(
        default_factory=lambda: {k: tuple(v) for k, v in DEFAULT_FORMAT_PREFERENCE.items()},
        description="Per device platform, which format a tier's model is taken in first (the rest are fallbacks of "
                    "the same tier). Put executorch first to route Android and iOS devices to .pte files.",
    )
    ai_pack_name: str = Field(
        "stylizer", pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$",
        description="Play AI pack (and its Gradle module) name: a letter, then letters, digits or underscores.",
    )
    ai_pack_delivery: Literal["install-time", "fast-follow", "on-demand"] = Field(
        "install-time", description="Play AI pack delivery mode (install-time: the model is there when the app opens)."
    )

    @field_validator("format_preference")
    @classmethod
    def _formats_fit_platforms(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for platform, formats in value.items():
            if not formats:
                raise ValueError(f"{platform}: list at least one format")
            if len(set(formats)) != len(formats):
                raise ValueError(f"{platform}: duplicate formats {list(formats)}")
            wrong = [f for f in formats if platform not in FORMAT_PLATFORMS[f]]
            if wrong:
                raise ValueError(f"{platform}: {wrong} do not run there (coreml is iOS only, tflite Android only, "
                                 f"other devices take onnx)")
        return value


class ReleaseConfig(_Section):
    """The whole release: one object, loadable from YAML, hashed for the stage cache."""

    preset: str = "custom"
    release_id: str | None = Field(None, description="Defaults to '<preset>-<config hash prefix>'.")
    output_root: Path = Path("export")
    cache_dir: Path = Path(".mp_cache")
    seed: int = 0
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()
    search: SearchConfig = SearchConfig()
    tier_train: TierTrainConfig = TierTrainConfig()
    export: ExportConfig = ExportConfig()
    bench: BenchConfig = BenchConfig()
    manifest: ManifestConfig = ManifestConfig()


_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "data": {"max_side": 128, "val_fraction": 0.25},
        "train": {"arch": "stylizer-tiny", "paired_steps": 20, "adversarial_steps": 6, "batch_size": 4,
                  "patch_size": 48, "checkpoint_every": 10, "val_every": 10},
        "search": {"resolution": 64, "space": "tiny", "supernet_steps": 4, "batch_size": 2, "patch_size": 32,
                   "eval_size": 32, "eval_images": 2, "bn_batches": 1, "population": 4, "sample_size": 2,
                   "trials": 8, "finetune_steps": 0},
        "tier_train": {"paired_steps": 8, "adversarial_steps": 4},
        "export": {"formats": ["onnx", "tflite", "coreml"], "calibration_images": 2, "validation_images": 2,
                   "resolution": 64},
        "bench": {"warmup": 1, "runs": 5, "threads": [1]},
        # CI runs on Linux: Core ML cannot run there; ship it marked verified: false.
        "manifest": {"require_verified": {"onnx": True, "tflite": True, "coreml": False, "executorch": False}},
    },
    "demo": {
        # 5 bundled photos: hold out 2 whole images (not 1) so quality and search scores are
        # not the verdict of a single picture.
        "data": {"max_side": 384, "val_fraction": 0.4},
        # The reference is the default grid's largest network, so the supernet starts from it
        # (search.warm_start) and its training reaches every tier's shipped model.
        # weight_temporal: benchmarks/bench_temporal.py (stylizer-small, 900 + 50 steps, 2 seeds): flicker
        # -19% / -29%, held-out PSNR +0.04 / +0.09 dB. Tier training inherits it (train/tiers.py).
        "train": {"arch": "stylizer-medium", "paired_steps": 450, "adversarial_steps": 50, "batch_size": 8,
                  "patch_size": 96, "checkpoint_every": 100, "val_every": 100, "weight_distill": 0.5,
                  "distill_batch_size": 2, "weight_temporal": 1.0},
        "search": {"resolution": 256, "supernet_steps": 150, "batch_size": 8, "patch_size": 64, "eval_size": None,
                   # bench_search.py --ranking: at 150 steps the supernet does not rank (tau ~0), so
                   # scores within 0.3 dB count as tied and the largest tied candidate wins.
                   "score_tolerance_db": 0.3,
                   "eval_images": 4, "population": 12, "sample_size": 4, "trials": 40, "finetune_steps": 0},
        "tier_train": {"paired_steps": 250, "adversarial_steps": 30},
        # Two export workers (one format each): the converters are single-threaded.
        "export": {"calibration_images": 8, "validation_images": 4, "qnn_emulation_images": 1, "jobs": 2},
        "bench": {"warmup": 3, "runs": 20, "threads": [1, 2]},
        # The demo runs anywhere: Core ML built off macOS ships marked verified: false (the report says so).
        "manifest": {"require_verified": {"onnx": True, "tflite": True, "coreml": False, "executorch": False}},
    },
    "full": {
        "data": {"max_side": 1024},
        "train": {"arch": "stylizer-large", "paired_steps": 40000, "adversarial_steps": 20000, "batch_size": 32,
                  "patch_size": 256, "checkpoint_every": 2000, "val_every": 1000, "accelerator": "auto",
                  "devices": "auto", "num_workers": 8, "precision": "16-mixed", "tensorboard": True,
                  "weight_temporal": 1.0},
        "search": {"space": "wide", "resolution": 512, "supernet_steps": 20000, "score_tolerance_db": 0.1, "batch_size": 32, "patch_size": 128, "eval_size": 256,
                   "eval_images": 16, "n_random": 2, "bn_batches": 8, "population": 64, "sample_size": 16,
                   "trials": 1000, "finetune_steps": 0},
        "tier_train": {"paired_steps": 40000, "adversarial_steps": 20000},
        "export": {"calibration_images": 128, "validation_images": 32},
        "bench": {"warmup": 10, "runs": 200, "threads": [1, 2, 4]},
        # A production release serves iPhones only verified Core ML: until `export verify-coreml` has run on a
        # Mac and its measurement file is imported, iPhones get the ONNX fallback instead.
        "manifest": {"require_verified": {"onnx": True, "tflite": True, "coreml": True, "executorch": True}},
    },
}

PRESET_NAMES: tuple[str, ...] = tuple(_PRESETS)


class ConfigError(ValueError):
    """A release config that cannot be used; the message names the offending field."""


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _format_validation_error(err: ValidationError, origin: str) -> str:
    lines = field_messages(err, unknown_key="unknown key (check the spelling; see `mobile-pipeline release --help` or config.py)")
    return "\n  ".join([f"invalid release config ({origin}):", *lines])


def build_config(raw: dict[str, Any], origin: str = "<dict>") -> ReleaseConfig:
    """Validate a raw mapping; a ``preset`` key fills defaults that the mapping overrides."""
    if not isinstance(raw, dict):
        raise ConfigError(f"invalid release config ({origin}): top level must be a mapping, got {type(raw).__name__}")
    preset = raw.get("preset")
    if preset is not None and preset not in _PRESETS and preset != "custom":
        raise ConfigError(f"invalid release config ({origin}):\n  preset: unknown preset {preset!r}; choose from {list(_PRESETS)}")
    merged = _deep_merge(_PRESETS.get(preset or "", {}), raw)
    try:
        return ReleaseConfig.model_validate(merged)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, origin)) from None


def preset_config(name: str, **overrides: Any) -> ReleaseConfig:
    """The named preset, with optional section overrides (``train={"paired_steps": 5}``)."""
    if name not in _PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose from {list(_PRESETS)}")
    return build_config({"preset": name, **overrides}, origin=f"preset {name}")


def load_config(path: str | Path, preset: str | None = None, default_preset: str | None = None) -> ReleaseConfig:
    """Load a YAML release config.

    Args:
        preset: an explicit preset (the CLI's ``--preset``): it wins over the file's ``preset`` key.
        default_preset: the preset used when neither ``preset`` nor the file names one.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
    if isinstance(raw, dict):
        chosen = preset or raw.get("preset") or default_preset
        if chosen:
            raw = {**raw, "preset": chosen}
    return build_config(raw, origin=str(path))


def config_hash(config: BaseModel) -> str:
    """Stable sha256 of a config section (JSON with sorted keys)."""
    import hashlib
    import json

    text = json.dumps(config.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()
