"""The NNI model space over the generator's architecture spec.

The space is a mutable dict over :class:`~mobile_pipeline.nets.spec.ArchSpec` fields (stem
width, encoder depth and widths, number and kind of body blocks, FS branch set, fusion per
skip: STA / add / concat, upsampling mode, activation), declared with ``nni.choice`` inside
an NNI :class:`~nni.nas.nn.pytorch.ModelSpace`. Freezing a sample (what NNI's strategies do)
builds the concrete generator, so NNI's FlopsProfiler and our latency model see the same
module that training and export build.

The choices are a small discrete grid on purpose: the latency LUT has one measured entry per
(op, shape) that the grid can produce, and each entry costs a litert-torch conversion.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Any, Iterator

from mobile_pipeline.nets.spec import ArchSpec, SpecError

try:  # NNI is a hard dependency, but keep `import mobile_pipeline.search.space` light for CLI help.
    import nni
    from nni.mutable import ensure_frozen
    from nni.nas.nn.pytorch import ModelSpace
except ImportError as _err:  # pragma: no cover - NNI is in pyproject's dependencies
    raise ImportError(f"the search space needs nni>=3.0 ({_err}); pip install nni") from None


def _branch_sets(branches: tuple[str, ...]) -> tuple[str, ...]:
    """Every non-empty subset of the FS branches, as dot-joined names ('dw3.conv2')."""
    sets = []
    for size in range(1, len(branches) + 1):
        sets += [".".join(combo) for combo in itertools.combinations(branches, size)]
    return tuple(sets)


@dataclass(frozen=True)
class SpaceChoices:
    """The discrete grid searched. Defaults are the demo/full grid (LUT covers them).

    Args:
        stem_widths: channels of the full-resolution stem.
        num_stages: encoder depths (stride-2 stages); each adds one decoder scale.
        stage_widths: candidate widths per encoder stage, shallow to deep (len >= max stages).
        num_blocks: body blocks at the deepest scale.
        blocks: block kinds (``fs`` multi-branch, ``resnet`` baseline).
        branches: FS branches the branch sets are drawn from.
        fusions: per-skip fusion options.
        upsample: decoder upsampling options.
        acts: activations.
    """

    stem_widths: tuple[int, ...] = (8, 12, 16, 24, 32)
    num_stages: tuple[int, ...] = (2, 3)
    stage_widths: tuple[tuple[int, ...], ...] = ((16, 24, 32, 48), (24, 32, 48, 64, 96), (32, 48, 64, 96, 128))
    num_blocks: tuple[int, ...] = (1, 2, 3, 4, 6)
    blocks: tuple[str, ...] = ("fs", "resnet")
    branches: tuple[str, ...] = ("dw3", "dil3", "conv2", "dw5")
    fusions: tuple[str, ...] = ("sta", "add", "concat")
    upsample: tuple[str, ...] = ("nearest", "bilinear", "deconv")
    acts: tuple[str, ...] = ("relu", "relu6")

    def __post_init__(self) -> None:
        if max(self.num_stages) > len(self.stage_widths):
            raise SpecError(f"stage_widths lists {len(self.stage_widths)} stages but num_stages allows {max(self.num_stages)}")

    @property
    def max_stages(self) -> int:
        return max(self.num_stages)

    @property
    def branch_sets(self) -> tuple[str, ...]:
        return _branch_sets(self.branches)

    def mutables(self) -> dict[str, tuple[Any, ...]]:
        """Label -> candidate values: the genome NNI's evolution mutates."""
        out: dict[str, tuple[Any, ...]] = {
            "stem_width": self.stem_widths,
            "num_stages": self.num_stages,
        }
        for i in range(self.max_stages):
            out[f"width{i}"] = self.stage_widths[i]
        out.update({"num_blocks": self.num_blocks, "block": self.blocks, "branches": self.branch_sets})
        for i in range(self.max_stages):
            out[f"fusion{i}"] = self.fusions
        out.update({"upsample": self.upsample, "act": self.acts})
        return out

    def size(self) -> int:
        """Distinct architectures (dormant genes of unused stages not counted)."""
        total = 0
        per_block = sum(len(self.branch_sets) if b == "fs" else 1 for b in self.blocks)
        for stages in self.num_stages:
            widths = 1
            for i in range(stages):
                widths *= len(self.stage_widths[i])
            total += (len(self.stem_widths) * widths * len(self.num_blocks) * per_block
                      * len(self.fusions) ** stages * len(self.upsample) * len(self.acts))
        return total


# Tiny preset: a handful of narrow choices so the CI search runs in seconds.
TINY_CHOICES = SpaceChoices(stem_widths=(8, 12), num_stages=(2,), stage_widths=((16, 24), (24, 32)),
                            num_blocks=(1, 2), blocks=("fs", "resnet"), branches=("dw3", "dil3", "conv2"),
                            upsample=("nearest", "bilinear", "deconv"), acts=("relu",))

# The default (demo) grid reaches just past every tier's MAC budget: its largest network is
# 1.59 GMACs at 256 px (3.57 at the npu tier's 384 px, budget 3.5), so each tier's budget,
# not the grid's edge, bounds its winner, and a stronger tier can get a larger model. (The
# grid before stopped at 0.43 GMACs: only the cpu budget bound, and three tiers got the
# same architecture.) Its supernet still trains on 2 CPU cores in a couple of minutes.
# Full preset: wider still (stages up to 192 channels), for GPU-scale training.
WIDE_CHOICES = SpaceChoices(stem_widths=(8, 12, 16, 24, 32), num_stages=(2, 3),
                            stage_widths=((16, 24, 32, 48, 64), (24, 32, 48, 64, 96, 128),
                                          (32, 48, 64, 96, 128, 192)),
                            num_blocks=(1, 2, 3, 4, 6))

#: ``search.space`` name -> grid.
SPACES: dict[str, SpaceChoices] = {"default": SpaceChoices(), "tiny": TINY_CHOICES, "wide": WIDE_CHOICES}


def sample_to_spec(sample: dict[str, Any]) -> ArchSpec:
    """Map an NNI sample (label -> value) to the ArchSpec it stands for.

    Widths and fusions of stages beyond ``num_stages`` are dormant genes: kept in the
    sample so a later mutation can wake them, ignored here.
    """
    stages = int(sample["num_stages"])
    fusion = tuple(sample[f"fusion{i}"] for i in range(stages))
    block = sample["block"]
    branches = tuple(sample["branches"].split(".")) if block == "fs" else ("dw3",)
    return ArchSpec(
        stem_width=int(sample["stem_width"]),
        encoder_widths=tuple(int(sample[f"width{i}"]) for i in range(stages)),
        num_blocks=int(sample["num_blocks"]),
        block=block,
        fs_branches=branches,
        fusion=fusion,
        upsample=sample["upsample"],
        act=sample["act"],
    )


def spec_to_sample(spec: ArchSpec, choices: SpaceChoices) -> dict[str, Any]:
    """The sample for a spec inside the grid (raises SpecError naming the field outside it)."""
    sample: dict[str, Any] = {"stem_width": spec.stem_width, "num_stages": len(spec.encoder_widths),
                              "num_blocks": spec.num_blocks, "block": spec.block, "upsample": spec.upsample,
                              "act": spec.act}
    sample["branches"] = ".".join(b for b in choices.branches if b in spec.fs_branches) if spec.block == "fs" \
        else choices.branch_sets[0]
    for i in range(choices.max_stages):
        inside = i < len(spec.encoder_widths)
        sample[f"width{i}"] = spec.encoder_widths[i] if inside else choices.stage_widths[i][0]
        sample[f"fusion{i}"] = spec.fusion[i] if inside else choices.fusions[0]
    for label, values in choices.mutables().items():
        if sample[label] not in values:
            raise SpecError(f"spec {spec.to_string()} is outside the search space: {label}={sample[label]!r} not in {list(values)}")
    return sample


def random_spec(choices: SpaceChoices, rng: random.Random) -> ArchSpec:
    """A uniformly sampled spec (plain Python; used by the supernet's sandwich sampling)."""
    return sample_to_spec({label: rng.choice(values) for label, values in choices.mutables().items()})


def largest_spec(choices: SpaceChoices) -> ArchSpec:
    """The sandwich rule's largest network: max widths and depth, every branch, concat fusion."""
    stages = choices.max_stages
    return ArchSpec(stem_width=max(choices.stem_widths),
                    encoder_widths=tuple(max(choices.stage_widths[i]) for i in range(stages)),
                    num_blocks=max(choices.num_blocks), block="fs" if "fs" in choices.blocks else choices.blocks[0],
                    fs_branches=choices.branches, fusion=(choices.fusions[0],) * stages,
                    upsample=choices.upsample[0], act=choices.acts[0])


def smallest_spec(choices: SpaceChoices) -> ArchSpec:
    """The sandwich rule's smallest network: min widths and depth, one branch."""
    stages = min(choices.num_stages)
    return ArchSpec(stem_width=min(choices.stem_widths),
                    encoder_widths=tuple(min(choices.stage_widths[i]) for i in range(stages)),
                    num_blocks=min(choices.num_blocks), block="fs" if "fs" in choices.blocks else choices.blocks[0],
                    fs_branches=(choices.branches[0],), fusion=(choices.fusions[0],) * stages,
                    upsample=choices.upsample[0], act=choices.acts[0])


def iter_specs(choices: SpaceChoices, count: int, seed: int = 0) -> Iterator[ArchSpec]:
    """``count`` random specs plus the sandwich extremes (the LUT builder's coverage set)."""
    rng = random.Random(seed)
    yield largest_spec(choices)
    yield smallest_spec(choices)
    for _ in range(count):
        yield random_spec(choices, rng)


class StylizerSpace(ModelSpace):
    """NNI model space: one labelled ``nni.choice`` per genome entry of :class:`SpaceChoices`.

    Inside NNI's frozen context (``space.freeze(sample)``, what strategies call) each choice is
    concrete, :attr:`spec` is the sampled architecture and :attr:`generator` its module; the
    un-frozen space is a dry run of the first choice of every field.
    """

    def __init__(self, choices: SpaceChoices = SpaceChoices(), build: bool = True):
        super().__init__()
        values = {}
        for label, options in choices.mutables().items():
            mutable = self.add_mutable(nni.choice(label, list(options)))
            values[label] = ensure_frozen(mutable)
        self.choices = choices
        self._build = build
        self.sample_values = values
        self.spec = sample_to_spec(values)
        self.generator = None
        if build:
            from mobile_pipeline.nets.generator import build_generator

            self.generator = build_generator(self.spec)

    def freeze(self, sample: dict[str, Any]) -> "StylizerSpace":
        """The concrete model of ``sample`` (re-instantiated in NNI's frozen context)."""
        from nni.nas.space import model_context

        with model_context(sample):
            return self.__class__(self.choices, build=self._build)

    def forward(self, x):  # noqa: D401 - the frozen model's forward is the generator's
        if self.generator is None:
            raise RuntimeError("StylizerSpace was created with build=False; it has no generator to run")
        return self.generator(x)
