"""Weight-sharing supernet over the search space, trained once in our own loop.

The supernet is a bank of max-size tensors; a sub-network (any ArchSpec of the grid) takes
leading channel slices of them and runs the *real* generator code through
:func:`torch.func.functional_call`, so the supernet never re-implements the generator and a
candidate extracted with :meth:`Supernet.extract` computes exactly what the supernet's
sub-network computed. Weights are shared where they mean the same thing:

* by scale, not by decoder index: decoder stage j of an n-stage net serves skip scale
  ``n-1-j``; heads are keyed by their scale too, so 2- and 3-stage nets share the fine end;
* FS branches by branch name (the block's ModuleList index depends on the branch set), and
  the FS fusion conv's input channels by branch: dropping a branch drops its input slice;
* fusion modules per fusion kind (sta/add/concat), the upsampling conv per family
  (resize+conv vs transposed conv), body blocks per (encoder depth, block kind); concat
  inputs (STA gate, concat fusion) are split into their skip and deep halves.

Training uses the sandwich rule (BigNAS / slimmable networks): each step back-propagates the
largest, the smallest and ``n_random`` random sub-networks. BatchNorm statistics are shared
and therefore wrong for any particular sub-network; :func:`recalibrate_bn` re-estimates them
for an extracted candidate from a few training batches before it is scored.
"""

from __future__ import annotations

import math
import random
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from mobile_pipeline.nets.spec import ArchSpec
from mobile_pipeline.search.space import SpaceChoices, iter_specs, largest_spec, random_spec, smallest_spec

_FUSION_PARTS = ("skip", "deep")


@dataclass(frozen=True)
class _Slot:
    """Where one sub-network tensor lives in the bank."""

    name: str  # name in the generator's state dict
    key: str  # bank key
    shape: tuple[int, ...]
    parts: tuple[tuple[str, int], ...] | None  # dim-1 split (part name, size) or None


def _layout(name: str, tensor: Tensor, spec: ArchSpec) -> tuple[str, tuple[tuple[str, int], ...] | None]:
    """Bank key and dim-1 split of a generator tensor (see the module docstring)."""
    n = len(spec.encoder_widths)
    parts = name.split(".")
    head, rest = parts[0], parts[1:]
    split = None
    if head == "body":
        block, rest = rest[0], rest[1:]
        if spec.block == "fs" and rest[0] == "branches":
            rest = ["branches", spec.fs_branches[int(rest[1])], *rest[2:]]
        if spec.block == "fs" and rest == ["fuse", "0", "weight"]:
            each = tensor.shape[1] // len(spec.fs_branches)
            split = tuple((branch, each) for branch in spec.fs_branches)
        key = ".".join([f"body{n}", block, spec.block, *rest])
    elif head in ("ups", "fusions", "refines"):
        j = int(rest[0])
        scale = n - 1 - j
        tag = ""
        if head == "ups":
            tag = "deconv" if spec.upsample == "deconv" else "resize"
        elif head == "fusions":
            tag = spec.fusion[j]
            if rest[1:] in (["gate", "0", "0", "weight"], ["gate", "0", "weight"], ["fuse", "0", "weight"]):
                half = tensor.shape[1] // 2
                split = tuple((part, half) for part in _FUSION_PARTS)
        key = ".".join(filter(None, [head, f"s{scale}", tag, *rest[1:]]))
    elif head == "heads":
        key = ".".join(["heads", f"s{n - int(rest[0])}", *rest[1:]])
    else:
        key = name
    return key, split


def _meta_generator(spec: ArchSpec) -> nn.Module:
    from mobile_pipeline.nets.generator import build_generator

    with torch.device("meta"):
        return build_generator(spec)


class Supernet(nn.Module):
    """Bank of shared tensors covering every spec of ``choices``.

    Args:
        choices: the search grid.
        coverage_samples: random specs inspected (besides the extremes and each fusion /
            upsampling / block variant) to size the bank; tensors of specs never seen raise
            a clear error at use.
        seed: seed of the coverage sample and the initialisation.
    """

    def __init__(self, choices: SpaceChoices, coverage_samples: int = 16, seed: int = 0) -> None:
        super().__init__()
        self.choices = choices
        extents: dict[str, list[int]] = {}
        part_sizes: dict[str, dict[str, int]] = {}
        buffers: set[str] = set()
        for spec in self._cover_specs(coverage_samples, seed):
            model = _meta_generator(spec)
            buffer_names = {name for name, _ in model.named_buffers()}
            for name, tensor in model.state_dict().items():
                key, split = _layout(name, tensor, spec)
                if name in buffer_names:
                    buffers.add(key)
                shape = list(tensor.shape)
                old = extents.setdefault(key, shape)
                if len(old) != len(shape):
                    raise RuntimeError(f"supernet: {key} has rank {len(shape)} and {len(old)} in different specs")
                extents[key] = [max(a, b) for a, b in zip(old, shape)]
                if split is not None:
                    sizes = part_sizes.setdefault(key, {})
                    for part, size in split:
                        sizes[part] = max(sizes.get(part, 0), size)
        order = {**{b: i for i, b in enumerate(choices.branches)}, **{p: i for i, p in enumerate(_FUSION_PARTS)}}
        self._offsets: dict[str, dict[str, int]] = {}
        for key, sizes in part_sizes.items():
            offset, offsets = 0, {}
            for part in sorted(sizes, key=lambda p: order.get(p, 99)):
                offsets[part] = offset
                offset += sizes[part]
            self._offsets[key] = offsets
            extents[key][1] = offset
        self._keys = {key: f"t{i}" for i, key in enumerate(sorted(extents))}  # '.'-free attribute names
        gen = torch.Generator().manual_seed(seed)
        for key, attr in self._keys.items():
            tensor = _default_init(key, extents[key], gen)
            if key in buffers:
                self.register_buffer(attr, tensor)
            else:
                self.register_parameter(attr, nn.Parameter(tensor))
        self._slots: OrderedDict[str, list[_Slot]] = OrderedDict()
        self._modules_cache: OrderedDict[str, nn.Module] = OrderedDict()
        self._init_from_generators()

    # ---------------------------------------------------------------- layout
    def _cover_specs(self, count: int, seed: int) -> Iterable[ArchSpec]:
        """Extremes and every fusion/upsample/block/stage variant of the largest spec, plus randoms."""
        big = largest_spec(self.choices)
        yield big
        for stages in self.choices.num_stages:
            widths = tuple(max(self.choices.stage_widths[i]) for i in range(stages))
            for block in self.choices.blocks:
                for up in self.choices.upsample:
                    for fusion in self.choices.fusions:
                        yield ArchSpec(stem_width=big.stem_width, encoder_widths=widths, num_blocks=big.num_blocks,
                                       block=block, fs_branches=self.choices.branches, fusion=(fusion,) * stages,
                                       upsample=up, act=big.act)
        yield from iter_specs(self.choices, count, seed)

    def _tensor(self, key: str) -> Tensor:
        try:
            return getattr(self, self._keys[key])
        except KeyError:
            raise KeyError(f"supernet has no weights for {key!r}: the spec is outside the grid it was built for") from None

    def slots(self, spec: ArchSpec) -> list[_Slot]:
        """The bank slots of a spec's state dict (cached per spec)."""
        text = spec.to_string()
        if text not in self._slots:
            model = self.module_for(spec)
            slots = []
            for name, tensor in model.state_dict().items():
                key, split = _layout(name, tensor, spec)
                self._tensor(key)
                slots.append(_Slot(name, key, tuple(tensor.shape), split))
            self._slots[text] = slots
            if len(self._slots) > 4096:
                self._slots.popitem(last=False)
        return self._slots[text]

    def module_for(self, spec: ArchSpec) -> nn.Module:
        """A parameterless (meta) generator of ``spec`` to run with bank tensors (LRU cached)."""
        text = spec.to_string()
        if text in self._modules_cache:
            self._modules_cache.move_to_end(text)
            return self._modules_cache[text]
        model = _meta_generator(spec)
        self._modules_cache[text] = model
        if len(self._modules_cache) > 128:
            self._modules_cache.popitem(last=False)
        return model

    def _index(self, slot: _Slot) -> Tensor:
        """Differentiable view (or gather) of the bank holding ``slot``'s values."""
        tensor = self._tensor(slot.key)
        if not slot.shape:
            return tensor
        out = tensor[: slot.shape[0]]
        if len(slot.shape) > 1:
            if slot.parts is not None:
                offsets = self._offsets[slot.key]
                idx = torch.cat([torch.arange(offsets[p], offsets[p] + size) for p, size in slot.parts])
                out = out.index_select(1, idx)
            else:
                out = out[:, : slot.shape[1]]
            for dim in range(2, len(slot.shape)):
                if out.shape[dim] != slot.shape[dim]:
                    raise RuntimeError(f"supernet: {slot.key} dim {dim} is {out.shape[dim]}, spec needs {slot.shape[dim]}")
        return out

    def sub_state(self, spec: ArchSpec) -> dict[str, Tensor]:
        """The spec's state dict as views of the bank (gradients flow into the bank)."""
        return {slot.name: self._index(slot) for slot in self.slots(spec)}

    # ---------------------------------------------------------------- running
    def forward(self, x: Tensor, spec: ArchSpec) -> Tensor:
        """The sub-network's finest output (what an extracted generator's forward returns)."""
        model = self.module_for(spec).train(self.training)
        return functional_call(model, self.sub_state(spec), (x,))

    def forward_pyramid(self, x: Tensor, spec: ArchSpec) -> list[Tensor]:
        """The sub-network's multi-scale outputs, coarse -> fine."""
        model = self.module_for(spec).train(self.training)
        return functional_call(_Pyramid(model), {f"model.{k}": v for k, v in self.sub_state(spec).items()}, (x,))

    def extract(self, spec: ArchSpec) -> nn.Module:
        """A standalone Generator of ``spec`` with the inherited weights (CPU, eval mode)."""
        from mobile_pipeline.nets.generator import build_generator

        generator = build_generator(spec)
        with torch.no_grad():
            state = {name: tensor.detach().clone() for name, tensor in self.sub_state(spec).items()}
        generator.load_state_dict(state, strict=True)
        return generator.eval()

    @torch.no_grad()
    def _write_slot(self, slot: _Slot, value: Tensor) -> None:
        """Store a sub-network tensor into its place in the bank (inverse of :meth:`_index`)."""
        bank = self._tensor(slot.key)
        if not slot.shape:
            bank.copy_(value)
        elif slot.parts is not None:
            offsets = self._offsets[slot.key]
            for i, (part, size) in enumerate(slot.parts):
                bank[: slot.shape[0], offsets[part]: offsets[part] + size] = value[:, i * size:(i + 1) * size]
        elif len(slot.shape) > 1:
            bank[: slot.shape[0], : slot.shape[1]] = value
        else:
            bank[: slot.shape[0]] = value

    @torch.no_grad()
    def _init_from_generators(self) -> None:
        """Copy the generator's own initialisation (identity-like heads, zeroed residual BNs)
        of every variant into the bank, so sub-networks start like freshly built generators."""
        from mobile_pipeline.nets.generator import build_generator

        done: set[str] = set()
        torch.manual_seed(0)
        for spec in list(self._cover_specs(0, 0)):
            model = build_generator(spec)
            for slot in self.slots(spec):
                if slot.key in done:
                    continue
                done.add(slot.key)
                self._write_slot(slot, model.state_dict()[slot.name])

    def contains(self, spec: ArchSpec) -> bool:
        """Whether ``spec`` is a sub-network of this supernet (inside its grid)."""
        from mobile_pipeline.search.space import spec_to_sample
        from mobile_pipeline.nets.spec import SpecError

        try:
            spec_to_sample(spec, self.choices)
        except SpecError:
            return False
        return True

    @torch.no_grad()
    def warm_start(self, generator: nn.Module) -> int:
        """Write a trained generator's weights into the bank (once-for-all's starting point).

        The generator's architecture must lie inside the grid. Every sub-network then
        inherits the trained tensors wherever it shares them (leading channel slices, the
        same branches, fusions and scales) and keeps its fresh initialisation elsewhere,
        so the sandwich training starts from a working stylizer instead of the identity.
        Returns the number of tensors written.
        """
        spec = generator.spec
        if not self.contains(spec):
            raise ValueError(f"warm start: {spec.to_string()} is outside the supernet's grid")
        state = generator.state_dict()
        slots = self.slots(spec)
        for slot in slots:
            self._write_slot(slot, state[slot.name].detach().to(self._tensor(slot.key).dtype))
        return len(slots)


class _Pyramid(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> list[Tensor]:
        return self.model.forward_pyramid(x)


def _default_init(key: str, shape: list[int], gen: torch.Generator) -> Tensor:
    """PyTorch's default init at the bank's (max) shape; the generator's own init then
    overwrites every slot a variant of the largest spec uses."""
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "running_var":
        return torch.ones(shape)
    if leaf in ("running_mean", "bias", "num_batches_tracked"):
        return torch.zeros(shape, dtype=torch.long if leaf == "num_batches_tracked" else torch.float32)
    if len(shape) == 1:  # BatchNorm weight
        return torch.ones(shape)
    fan_in = shape[1] * math.prod(shape[2:])
    bound = 1.0 / math.sqrt(max(fan_in, 1))
    return (torch.rand(shape, generator=gen) * 2 - 1) * bound


# -------------------------------------------------------------------- training
def paired_loss(outputs: list[Tensor], target: Tensor, weight_multiscale: float = 0.5) -> Tensor:
    """L1 on the finest output + mean L1 over the coarser pyramid levels (avg-pooled targets)."""
    from mobile_pipeline.nets.generator import image_pyramid

    targets = image_pyramid(target, len(outputs))
    loss = F.l1_loss(outputs[-1], targets[-1])
    if len(outputs) > 1 and weight_multiscale > 0:
        coarse = sum(F.l1_loss(o, t) for o, t in zip(outputs[:-1], targets[:-1])) / (len(outputs) - 1)
        loss = loss + weight_multiscale * coarse
    return loss


def train_supernet(supernet: Supernet, batches: Callable[[int], tuple[Tensor, Tensor]], steps: int, *,
                   lr: float = 2e-3, n_random: int = 1, seed: int = 0, weight_multiscale: float = 0.5,
                   progress: bool = True, log: Callable[[dict], None] | None = None,
                   loss_fn: Callable[[list[Tensor], Tensor], Tensor] | None = None,
                   reference: nn.Module | None = None, weight_reference: float = 0.0,
                   weight_inplace: float = 0.0) -> list[float]:
    """Sandwich-rule training: per step, largest + smallest + ``n_random`` random sub-networks.

    Distillation makes the shared weights rank sub-networks more like stand-alone training
    would (once-for-all, BigNAS): every sub-network also fits the frozen ``reference``
    model's output (``weight_reference``), and every sub-network but the largest fits the
    largest one's output of the same step, detached (``weight_inplace``, in-place
    distillation). Both targets are smoother than the teacher's, so small sub-networks are
    not pulled around by detail they cannot represent, which is what scrambles rankings.

    Args:
        supernet: the bank to train.
        batches: ``step -> (photos, targets)`` float tensors N,3,p,p in [0, 1].
        steps: optimizer steps.
        lr: Adam learning rate (cosine-decayed to 10 %).
        n_random: random sub-networks per step besides the two extremes.
        seed: seed of the random sub-network draws.
        weight_multiscale: weight of the coarse pyramid levels in the loss.
        progress: tqdm bar.
        log: called with {step, loss} every step.
        loss_fn: ``(pyramid, target) -> loss``; default :func:`paired_loss` (L1 + multiscale).
        reference: a frozen generator whose outputs are extra targets (None: none).
        weight_reference: weight of the reference term.
        weight_inplace: weight of the in-place distillation term.

    Returns:
        The mean loss of each step.
    """
    from tqdm import tqdm

    if loss_fn is None:
        loss_fn = lambda pyramid, target: paired_loss(pyramid, target, weight_multiscale)  # noqa: E731
    rng = random.Random(seed)
    big, small = largest_spec(supernet.choices), smallest_spec(supernet.choices)
    params = [p for p in supernet.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s / max(steps, 1), 1.0))))
    supernet.train()
    losses = []
    bar = tqdm(range(steps), desc="supernet", disable=not progress, leave=False)
    for step in bar:
        photos, targets = batches(step)
        optimizer.zero_grad(set_to_none=True)
        specs = [big, small] + [random_spec(supernet.choices, rng) for _ in range(n_random)]
        reference_out = None
        if reference is not None and weight_reference > 0:
            with torch.no_grad():
                reference_out = reference(photos)
        largest_out = None
        total = 0.0
        for index, spec in enumerate(specs):
            pyramid = supernet.forward_pyramid(photos, spec)
            loss = loss_fn(pyramid, targets)
            if reference_out is not None:
                loss = loss + weight_reference * loss_fn(pyramid, reference_out)
            if index == 0:
                largest_out = pyramid[-1].detach()
            elif weight_inplace > 0:
                loss = loss + weight_inplace * loss_fn(pyramid, largest_out)
            loss = loss / len(specs)
            loss.backward()
            total += loss.item()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        optimizer.step()
        schedule.step()
        losses.append(total)
        bar.set_postfix(loss=f"{total:.4f}")
        if log is not None:
            log({"event": "supernet_step", "step": step, "loss": total})
    supernet.eval()
    return losses


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[Tensor]) -> nn.Module:
    """Re-estimate BatchNorm running statistics of ``model`` (cumulative average over
    ``batches``); the shared supernet statistics belong to no particular sub-network."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return model.eval()
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    for x in batches:
        model(x)
    for bn, momentum in zip(bns, saved):
        bn.momentum = momentum
    return model.eval()


