"""Cost of a generator: MACs, parameters, peak activation memory, and width scaling to a MAC target.

Counting runs the model's exported path (:meth:`Generator.forward`, batch 1) with forward
hooks, so the numbers are those of the real graph, not of a formula that can drift from it.
For a spec, the model is built once and run at the smallest valid input
(``downsample_factor`` squared): every layer's spatial size is proportional to the (padded)
input area, so MACs and activation sizes at H x W are that count times ``(H/f) * (W/f)``
exactly. A spec costs ~0.05-0.2 s, cheap enough for the search to call per candidate;
MACs, params and peak come from the same run and are cached per spec. (The ``meta``
device would skip weight init but costs ~3 s on first use, more than it saves.)

Convention: MACs count Conv2d, ConvTranspose2d and Linear multiply-accumulates (BatchNorm is
folded into the conv at export; resizes, adds, muls, sigmoid and clamp are element-wise and
left out, as in the usual "FLOPs" tables of mobile papers). Grouped/depthwise convs count
``k*k*C_in/groups`` MACs per output element.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from mobile_pipeline.nets.spec import ArchSpec, SpecError

ModelOrSpec = nn.Module | ArchSpec | str


def _conv_macs(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> int:
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        per_out = kh * kw * module.in_channels // module.groups
        return int(output[0].numel()) * per_out
    if isinstance(module, nn.ConvTranspose2d):
        # Each input element scatters into k*k*C_out/groups outputs.
        kh, kw = module.kernel_size
        per_in = kh * kw * module.out_channels // module.groups
        return int(inputs[0][0].numel()) * per_in
    if isinstance(module, nn.Linear):
        return int(output[0].numel() // module.out_features) * module.in_features * module.out_features
    return 0


def _as_model(model_or_spec: ModelOrSpec) -> nn.Module:
    if isinstance(model_or_spec, nn.Module):
        return model_or_spec
    from mobile_pipeline.nets.generator import build_generator

    return build_generator(model_or_spec)


def _unit_and_repeats(spec: ArchSpec, input_hw: tuple[int, int]) -> tuple[tuple[int, int], int]:
    """Smallest valid input for ``spec`` and how many of it tile the padded ``input_hw``."""
    f = spec.downsample_factor
    height, width = input_hw
    return (f, f), (-(-height // f)) * (-(-width // f))


def _spec_key(model_or_spec: ModelOrSpec) -> ArchSpec | None:
    if isinstance(model_or_spec, ArchSpec):
        return model_or_spec
    if isinstance(model_or_spec, str):
        from mobile_pipeline.nets.registry import get_spec

        return get_spec(model_or_spec)
    return None


def _check_hw(input_hw: tuple[int, int]) -> tuple[int, int]:
    height, width = (int(v) for v in input_hw)
    if height < 1 or width < 1:
        raise ValueError(f"input_hw must be positive, got {input_hw}")
    return height, width


def _sample_input(model: nn.Module, input_hw: tuple[int, int]) -> Tensor:
    try:
        param = next(model.parameters())
        device, dtype = param.device, param.dtype
    except StopIteration:
        device, dtype = torch.device("cpu"), torch.float32
    return torch.zeros(1, 3, *input_hw, device=device, dtype=dtype)


def _run_with_hooks(model: nn.Module, x: Tensor,
                    hook: Callable[[nn.Module, tuple[Tensor, ...], Any], None]) -> None:
    """Run ``model`` once on ``x`` with ``hook`` on every leaf module (eval mode, no grad)."""
    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()


def _scaled_model_cost(cost: Callable[[nn.Module, tuple[int, int]], int], model: nn.Module,
                       input_hw: tuple[int, int]) -> int:
    """``cost`` at ``input_hw``; for a Generator, from one run at its unit input (see top)."""
    spec = getattr(model, "spec", None)
    if isinstance(spec, ArchSpec):
        unit, repeats = _unit_and_repeats(spec, input_hw)
        return cost(model, unit) * repeats
    return cost(model, input_hw)


# ------------------------------------------------------------------------ MACs
def count_macs(model_or_spec: ModelOrSpec, input_hw: tuple[int, int] = (256, 256)) -> int:
    """Multiply-accumulates of one forward pass (batch 1) at ``input_hw``.

    Args:
        model_or_spec: a module (any nn.Module taking N,3,H,W), an ArchSpec, a registered
            name or an architecture string.
        input_hw: input height and width.
    """
    input_hw = _check_hw(input_hw)
    spec = _spec_key(model_or_spec)
    if spec is not None:
        return _count_macs_spec(spec, input_hw)
    return _scaled_model_cost(_count_macs_model, model_or_spec, input_hw)  # type: ignore[arg-type]


def _count_macs_spec(spec: ArchSpec, input_hw: tuple[int, int]) -> int:
    unit, repeats = _unit_and_repeats(spec, input_hw)
    return _unit_costs(spec)[0] * repeats


@functools.lru_cache(maxsize=4096)
def _unit_costs(spec: ArchSpec) -> tuple[int, int, int]:
    """(MACs, peak activation elements) at the unit input, and parameters, from one build."""
    model = _as_model(spec)
    unit, _ = _unit_and_repeats(spec, (1, 1))
    params = sum(p.numel() for p in model.parameters())
    return _count_macs_model(model, unit), _peak_elements_model(model, unit), params


def _count_macs_model(model: nn.Module, input_hw: tuple[int, int]) -> int:
    total = 0

    def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Any) -> None:
        nonlocal total
        total += _conv_macs(module, inputs, output)

    _run_with_hooks(model, _sample_input(model, input_hw), hook)
    return total


def count_params(model_or_spec: ModelOrSpec) -> int:
    """Trainable-or-not parameter count (BatchNorm affine included, buffers excluded)."""
    spec = _spec_key(model_or_spec)
    if spec is not None:
        return _count_params_spec(spec)
    return sum(p.numel() for p in model_or_spec.parameters())  # type: ignore[union-attr]


def _count_params_spec(spec: ArchSpec) -> int:
    return _unit_costs(spec)[2]


# ---------------------------------------------------------------- activations
def peak_activation_bytes(model_or_spec: ModelOrSpec, input_hw: tuple[int, int] = (256, 256),
                          bytes_per_element: int = 4) -> int:
    """Approximate peak of simultaneously live activation memory in one forward (batch 1).

    Method: run the forward with hooks on leaf modules. Every tensor seen (as a leaf input
    or output) gets a lifetime from its first appearance to its last use as an input (the
    final output lives to the end). The peak is the largest sum of sizes of tensors alive at
    any leaf call. Approximations: a tensor made by a functional op (add, interpolate, cat)
    counts from its first use rather than its creation; in-place activations are taken as
    free; runtime buffer reuse and operator fusion (which only lower the peak) are ignored.
    Skip connections held across the decoder — the term that matters for a U-Net on a
    phone — are counted exactly.

    Args:
        model_or_spec: module, ArchSpec, registered name or architecture string.
        input_hw: input height and width.
        bytes_per_element: 4 for fp32, 2 for fp16, 1 for int8 artifacts.
    """
    input_hw = _check_hw(input_hw)
    spec = _spec_key(model_or_spec)
    if spec is not None:
        elements = _peak_elements_spec(spec, input_hw)
    else:
        elements = _scaled_model_cost(_peak_elements_model, model_or_spec, input_hw)  # type: ignore[arg-type]
    return elements * bytes_per_element


def _peak_elements_spec(spec: ArchSpec, input_hw: tuple[int, int]) -> int:
    unit, repeats = _unit_and_repeats(spec, input_hw)
    return _unit_costs(spec)[1] * repeats


def _peak_elements_model(model: nn.Module, input_hw: tuple[int, int]) -> int:
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    size: dict[int, int] = {}
    keep: list[Tensor] = []  # holds references so ids stay unique during the run
    x = _sample_input(model, input_hw)
    step = 0

    def see(t: Tensor, used_as_input: bool) -> None:
        key = id(t)
        if key == id(x):
            return  # the network input: counted once, below, for the whole run
        if key not in first:
            first[key], size[key] = step, t.numel()
            keep.append(t)
        last[key] = step if used_as_input else max(last.get(key, step), step)

    def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Any) -> None:
        nonlocal step
        step += 1
        for t in inputs:
            if isinstance(t, Tensor):
                see(t, True)
        outs = output if isinstance(output, (tuple, list)) else (output,)
        for t in outs:
            if isinstance(t, Tensor) and id(t) not in {id(i) for i in inputs}:
                see(t, False)

    _run_with_hooks(model, x, hook)
    # The network output (the last tensor produced) lives to the end.
    if first:
        final = max(first, key=lambda k: first[k])
        last[final] = step
    live = [0] * (step + 2)
    for key, start in first.items():
        for t in range(start, last[key] + 1):
            live[t] += size[key]
    return max(live) + x.numel()  # + the input image, alive throughout (the residual needs it)


# ------------------------------------------------------------------- scaling
def scale_widths(spec: ArchSpec, factor: float, multiple: int = 4) -> ArchSpec:
    """Multiply every width (stem and encoder) by ``factor``, rounded to ``multiple`` (>= 4).

    Structure (stages, blocks, branches, fusion, upsampling) is kept.
    """
    def scale(width: int) -> int:
        return max(4, multiple * max(1, round(width * factor / multiple)))

    data = spec.to_dict()
    data["stem_width"] = scale(spec.stem_width)
    data["encoder_widths"] = [scale(w) for w in spec.encoder_widths]
    return ArchSpec.from_dict(data)


def scale_to_macs(spec: ArchSpec, target_macs: int, input_hw: tuple[int, int] = (256, 256),
                  tolerance: float = 0.05) -> ArchSpec:
    """Scale widths (keeping the structure) so MACs land within ``tolerance`` of the target.

    Used to compare blocks/fusions at equal MACs. Search: bisection on a common width factor
    with widths rounded to multiples of 4, then of 2, then of 1 (hardware-friendly first);
    if rounding still misses, a greedy pass nudges single widths by one channel.

    Args:
        spec: the structure to keep.
        target_macs: MACs to hit at ``input_hw``.
        input_hw: resolution the MACs are counted at.
        tolerance: allowed relative error, e.g. 0.05 for 5%.

    Raises:
        SpecError: the target cannot be reached within width limits (message says how close).
    """
    if target_macs <= 0:
        raise ValueError(f"target_macs must be positive, got {target_macs}")
    input_hw = _check_hw(input_hw)

    def err(candidate: ArchSpec) -> float:
        return abs(count_macs(candidate, input_hw) - target_macs) / target_macs

    # Fail fast when even the narrowest spec (all widths 4) is too expensive.
    narrowest = scale_widths(spec, 0.0)
    if count_macs(narrowest, input_hw) > target_macs * (1 + tolerance):
        raise SpecError(
            f"scale_to_macs: cannot bring {spec.to_string()} within {tolerance:.0%} of {target_macs:,} MACs "
            f"at {input_hw}; closest is {narrowest.to_string()} at {count_macs(narrowest, input_hw):,} MACs "
            "(all widths at the minimum 4): lower num_blocks or encoder stages"
        )
    best = spec
    for multiple in (4, 2, 1):
        low, high = 0.01, 64.0
        for _ in range(40):
            mid = math.sqrt(low * high)
            try:
                candidate = scale_widths(spec, mid, multiple)
            except SpecError:  # widths beyond the spec limits: too big
                high = mid
                continue
            if err(candidate) < err(best):
                best = candidate
            if count_macs(candidate, input_hw) < target_macs:
                low = mid
            else:
                high = mid
            if high / low < 1.0005:
                break
        if err(best) <= tolerance:
            return best
    best = _nudge(best, target_macs, input_hw, err)
    if err(best) <= tolerance:
        return best
    raise SpecError(
        f"scale_to_macs: cannot bring {spec.to_string()} within {tolerance:.0%} of {target_macs:,} MACs "
        f"at {input_hw}; closest is {best.to_string()} at {count_macs(best, input_hw):,} MACs"
    )


def _nudge(spec: ArchSpec, target: int, input_hw: tuple[int, int],
           err: Callable[[ArchSpec], float]) -> ArchSpec:
    """Greedy single-width +-1..4 steps while the error shrinks (fine tuning after rounding)."""
    improved = True
    while improved:
        improved = False
        data = spec.to_dict()
        fields = [("stem_width", None)] + [("encoder_widths", i) for i in range(len(spec.encoder_widths))]
        for name, index in fields:
            for delta in (-4, -2, -1, 1, 2, 4):
                trial = {**data, "encoder_widths": list(data["encoder_widths"])}
                if index is None:
                    trial[name] += delta
                else:
                    trial[name][index] += delta
                try:
                    candidate = ArchSpec.from_dict(trial)
                except SpecError:
                    continue
                if err(candidate) < err(spec):
                    spec, improved = candidate, True
                    break
            if improved:
                break
    return spec
