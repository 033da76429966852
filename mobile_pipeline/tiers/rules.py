"""Capability rules: what a phone's own report says when neither the catalog nor a family rule knows its chip.

Data first (GPU renderer families, accelerator names, OS and RAM floors per tier), small
functions after. The classifier uses these after the catalog; the manifest and the Play
device-targeting export read the same tables through ``classifier.tier_rules()``, so the
server and the store agree on what "gpu tier" means.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

#: Order of fallback per platform: the chosen tier, then every lighter tier after it.
#: Android: an NPU phone that fails its delegate tries the GPU model, then the int8 DSP
#: model, then the CPU. iOS: Core ML on the ANE, then the GPU, then the CPU.
FALLBACK_CHAINS: dict[str, tuple[str, ...]] = {
    "android": ("npu", "gpu", "dsp", "cpu"),
    "ios": ("npu", "gpu", "cpu"),
    "other": ("cpu",),
}
#: Capability rank used to step down when a tier is not allowed on a device.
TIER_RANK: dict[str, int] = {"cpu": 0, "dsp": 1, "gpu": 2, "npu": 3}

GiB = 1 << 30


@dataclass(frozen=True)
class TierBounds:
    """OS and RAM floors a device must meet to be served a tier's model.

    Why these numbers:
      * android npu/dsp: Android 10 (NNAPI 1.2) is the first NNAPI with TRANSPOSE_CONV_2D and
        RESIZE_NEAREST_NEIGHBOR, which our decoder uses; NNAPI itself starts at 8.1, but
        below 10 the int8 model would fall back to the CPU op by op.
      * android gpu: the TFLite GPU delegate needs OpenGL ES 3.1 / OpenCL, Android 7+ in practice.
      * ios npu: the Core ML `w8` variant uses constexpr weight ops (iOS 16+); the ANE
        itself is used by Core ML from iOS 13 on A12+.
      * ios gpu/cpu: Core ML ML Programs (our fp16/fp32 variants) need iOS 15.
      * RAM: the model, its activations (up to 96 MiB counted in fp32) and a camera
        pipeline must fit next to the app; 2.5 GiB reported is a "3 GB" phone.
    """

    min_os: dict[str, tuple[int, ...]]
    min_ram_bytes: int


TIER_BOUNDS: dict[str, TierBounds] = {
    "npu": TierBounds({"android": (10,), "ios": (16,)}, int(2.5 * GiB)),
    "gpu": TierBounds({"android": (7,), "ios": (15,)}, 2 * GiB),
    "dsp": TierBounds({"android": (10,)}, int(1.5 * GiB)),
    "cpu": TierBounds({}, 0),
}

#: Reported accelerator names (DeviceInfo.accelerators) that are evidence for a tier.
#: "gpu" and "nnapi" are deliberately absent: every phone has a GPU, and NNAPI has a CPU
#: reference implementation, so neither says anything about speed.
ACCELERATOR_TIERS: dict[str, str] = {
    "npu": "npu", "apu": "npu", "edgetpu": "npu", "tpu": "npu", "ane": "npu",
    "hexagon": "dsp", "dsp": "dsp",
}


@dataclass(frozen=True)
class GpuRule:
    """First matching rule wins. ``min_cores`` applies when the renderer reports MPn/MCn."""

    pattern: str
    tier: str
    description: str
    min_cores: int | None = None


#: GL_RENDERER / Metal device name families. Adreno 7xx and 640+ are flagship-class GPUs,
#: Adreno 702 is the low-end 4-series part; Mali Valhall 3-digit parts from G710 on (and
#: G610/G615) are fast, G77/G78 too; older Bifrost parts only in large configurations
#: (renderer strings often omit the core count, so the catalog is the better source there).
#: Arm's 2025 names drop the three digits ("Mali-G1-Ultra MC12" in the Dimensity 9500): the
#: Ultra and Premium configurations are flagship GPUs, the smaller G1-Pro is left to "other Mali"
#: until a device measurement says otherwise. These rules say what the GPU itself can run; a GPU
#: family that identifies a vendor's flagship SoC (Adreno 8xx, Immortalis, Xclipse 9xx) is a
#: family rule in device_tiers/families.yaml and is tried before these.
GPU_RULES: tuple[GpuRule, ...] = (
    GpuRule(r"adreno\D*(6[4-9]\d)", "gpu", "Adreno 640-699"),
    GpuRule(r"adreno\D*(7[1-9]\d)", "gpu", "Adreno 710-799"),
    GpuRule(r"adreno\D*(8\d\d)", "gpu", "Adreno 8xx"),
    GpuRule(r"adreno", "cpu", "other Adreno (5xx, 60x-63x, 702)"),
    GpuRule(r"immortalis", "gpu", "Arm Immortalis"),
    GpuRule(r"mali\W*g1\W*(ultra|premium)\b", "gpu", "Mali-G1-Ultra / G1-Premium (2025)"),
    GpuRule(r"mali\W*g(7[1-9]\d|9\d\d)", "gpu", "Mali-G710 and later flagship Valhall/5th gen"),
    GpuRule(r"mali\W*g61[05]\b", "gpu", "Mali-G610 / G615"),
    GpuRule(r"mali\W*g7[78]\b", "gpu", "Mali-G77 / G78"),
    GpuRule(r"mali\W*g76\b", "gpu", "Mali-G76 MP10 or more", min_cores=10),
    GpuRule(r"mali\W*g7[12]\b", "gpu", "Mali-G71 / G72 MP12 or more", min_cores=12),
    GpuRule(r"mali", "cpu", "other Mali (G5x, G6x, G3x, T-series)"),
    GpuRule(r"xclipse", "gpu", "Samsung Xclipse (AMD RDNA)"),
    GpuRule(r"maleoon", "gpu", "Huawei Maleoon"),
    GpuRule(r"apple\W*(a1[1-9]|a[2-9]\d|m\d)", "gpu", "Apple A11+ / M-series GPU"),
    GpuRule(r"apple", "cpu", "Apple A10 and older GPU"),
    GpuRule(r"powervr|\bimg\b|\bge8\d\d\d", "cpu", "Imagination PowerVR"),
)
_COMPILED_GPU_RULES = tuple((re.compile(rule.pattern, re.IGNORECASE), rule) for rule in GPU_RULES)
_CORES = re.compile(r"\b(?:mp|mc)\s*(\d{1,2})\b", re.IGNORECASE)


@lru_cache(maxsize=4096)
def gpu_rule_for(renderer: str | None) -> GpuRule | None:
    """The first GPU rule matching ``renderer`` (core-count rules skipped when too small/unknown)."""
    if not renderer or not isinstance(renderer, str):
        return None
    text = renderer[:128]
    cores_match = _CORES.search(text)
    cores = int(cores_match.group(1)) if cores_match else None
    for regex, rule in _COMPILED_GPU_RULES:
        if not regex.search(text):
            continue
        if rule.min_cores is not None and (cores is None or cores < rule.min_cores):
            continue
        return rule
    return None


_APPLE_CHIP = re.compile(r"apple\W*(a|m)(\d{1,2})", re.IGNORECASE)


def apple_chip_tier(renderer: str | None) -> tuple[str, str] | None:
    """Tier from a Metal device name such as ``Apple A15 GPU`` or ``Apple M2 GPU``."""
    if not renderer or not isinstance(renderer, str):
        return None
    match = _APPLE_CHIP.search(renderer[:128])
    if not match:
        return None
    kind, number = match.group(1).lower(), int(match.group(2))
    if kind == "m" or number >= 12:
        return "npu", f"{renderer.strip()} implies a chip with a Neural Engine"
    if number == 11:
        return "gpu", "Apple A11 GPU (ANE not used by Core ML)"
    return "cpu", f"{renderer.strip()} predates A11"


def os_allows(tier: str, platform: str, os_version: tuple[int, ...] | None) -> bool:
    """Unknown OS versions are allowed: the app checks again before loading a delegate."""
    floor = TIER_BOUNDS[tier].min_os.get(platform)
    if floor is None or os_version is None:
        return True
    return tuple(os_version) >= floor


def ram_allows(tier: str, ram_bytes: int | None) -> bool:
    """Unknown RAM is allowed; reported RAM below the tier's floor is not."""
    if ram_bytes is None:
        return True
    return ram_bytes >= TIER_BOUNDS[tier].min_ram_bytes


# --------------------------------------------------------------- key-based view
# The dispatch server answers from the manifest alone, with dict lookups instead of regexes.
# GPU_FAMILY_KEYS expresses GPU_RULES in that form: keys from most to least specific
# ("adreno 750" -> "adreno 7" -> "adreno"; "mali-g715" -> "mali-g7" -> "mali"), first hit
# wins. It agrees with gpu_rule_for() on every renderer string without a core count
# (tests check it); core-count rules (Mali-G76 MP10+) exist only in the regex form.
_FAMILY_RE = re.compile(
    r"(adreno|mali|immortalis|xclipse|powervr|maleoon|apple)\W*([a-z]{0,3})[- ]?(\d{1,4})?(?:\W*(ultra|premium|pro)\b)?")


def gpu_family_keys(renderer: str | None) -> tuple[str, ...]:
    """``"Adreno (TM) 750"`` -> ``("adreno 750", "adreno 7", "adreno")``;
    ``"Mali-G1-Ultra MC12"`` -> ``("mali-g1-ultra", "mali-g1", "mali")``."""
    if not renderer or not isinstance(renderer, str):
        return ()
    match = _FAMILY_RE.search(renderer[:128].lower().replace("(tm)", ""))
    if not match:
        return ()
    family, series, number, grade = match.group(1), match.group(2), match.group(3), match.group(4)
    sep = "-" if series else " "
    keys = []
    if number:
        if grade:
            keys.append(f"{family}{sep}{series}{number}-{grade}")
        keys += [f"{family}{sep}{series}{number}", f"{family}{sep}{series}{number[0]}"]
    keys.append(family)
    return tuple(dict.fromkeys(keys))


def _family_keys_table() -> dict[str, str]:
    table = {
        "adreno": "cpu", "adreno 6": "cpu", "adreno 7": "gpu", "adreno 702": "cpu", "adreno 8": "gpu",
        "mali": "cpu", "mali-g7": "gpu", "mali-g71": "cpu", "mali-g72": "cpu", "mali-g76": "cpu",
        "mali-g77": "gpu", "mali-g78": "gpu", "mali-g9": "gpu", "mali-g610": "gpu", "mali-g615": "gpu",
        "mali-g1-ultra": "gpu", "mali-g1-premium": "gpu",
        "immortalis": "gpu", "xclipse": "gpu", "maleoon": "gpu", "powervr": "cpu",
        "apple": "cpu", "apple-a1": "gpu", "apple-a10": "cpu", "apple-a2": "gpu",
    }
    table.update({f"adreno {n}": "gpu" for n in range(640, 700)})
    table.update({f"apple-m{n}": "gpu" for n in range(1, 10)})
    return table


GPU_FAMILY_KEYS: dict[str, str] = _family_keys_table()


def gpu_tier_by_keys(renderer: str | None) -> str | None:
    """GPU_FAMILY_KEYS lookup (what the manifest-driven dispatcher does)."""
    for key in gpu_family_keys(renderer):
        if key in GPU_FAMILY_KEYS:
            return GPU_FAMILY_KEYS[key]
    return None
