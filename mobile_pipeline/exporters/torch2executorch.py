"""PyTorch -> ExecuTorch ``.pte`` (torch.export -> to_edge_transform_and_lower -> to_executorch).

ExecuTorch runs one ``torch.export`` graph on device with no conversion through another
framework; the part of the graph a backend accepts is lowered into a delegate blob inside the
``.pte``, the rest runs on ExecuTorch's portable CPU kernels. The delegate is therefore part of
the artifact, chosen by the recipe:

* ``xnnpack`` fp32: ``XnnpackPartitioner`` (CPU, Android and iOS; runs here too).
* ``xnnpack`` int8: PT2E static quantization first (``XNNPACKQuantizer``, symmetric int8
  weights per output channel, activations calibrated on the same photos as every other int8
  variant), then the same partitioner, which takes the quantized patterns.
* ``coreml`` fp16 (or fp32): ``CoreMLPartitioner``; the delegate holds a Core ML ML Program
  that only Apple's runtime executes. It cannot run on this machine, so its gate is a check
  of that embedded program (compute dtype, I/O, ops), exactly as for the ``coreml`` format.

I/O convention: input (1,3,H,W) float32 NCHW in [0,1], output the same, fixed shapes.

Not every op is delegated: XNNPACK has no nearest-neighbour resize, so the decoder's 2x
nearest upsampling runs on portable kernels between XNNPACK partitions. Two exact rewrites
were measured and dropped (stylizer-tiny, 256 px, 1 thread, timed in turns with the original):
unsqueeze/cat/view splits the graph further (about 2x slower), and a depthwise 2x2 transposed
conv of ones is delegated whole but XNNPACK's depthwise deconvolution is slow (15.0 -> 26.5 ms).
The report lists the non-delegated ops so they stay visible.

Determinism: XNNPACK ``.pte`` files are byte-identical across exports of the same module;
the Core ML delegate embeds a random model identifier (ExecuTorch's on-device compile cache
key), so Core ML-delegated files differ run to run.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from mobile_pipeline.exporters.recipes import ExecutorchRecipe
from mobile_pipeline.exporters.report import TensorSpec

INPUT_NAME = "input"
OUTPUT_NAME = "output"
METHOD = "forward"
# Backend ids as ExecuTorch records them in the program (``BackendDelegate.id``).
BACKEND_IDS = {"xnnpack": "XnnpackBackend", "coreml": "CoreMLBackend"}
_DTYPES = {"FLOAT": "float32", "HALF": "float16", "CHAR": "int8", "BYTE": "uint8"}
_COMPUTE_UNITS = {"all": "ALL", "cpu_and_ne": "CPU_AND_NE", "cpu_and_gpu": "CPU_AND_GPU", "cpu_only": "CPU_ONLY"}
COREML_DELEGATE_NOT_RUNNABLE = ("not runnable here: the .pte's Core ML delegate needs Apple's Core ML runtime "
                                "(macOS/iOS); this machine's ExecuTorch runtime has no CoreMLBackend")


def io_specs(input_hw: tuple[int, int]) -> tuple[TensorSpec, TensorSpec]:
    """Input and output specs of every ``.pte`` variant (float32 NCHW I/O for all precisions)."""
    shape = [1, 3, int(input_hw[0]), int(input_hw[1])]
    return (TensorSpec(name=INPUT_NAME, shape=shape, layout="NCHW", dtype="float32"),
            TensorSpec(name=OUTPUT_NAME, shape=shape, layout="NCHW", dtype="float32"))


def convert(model, input_hw: tuple[int, int], recipe: ExecutorchRecipe, calibration: np.ndarray | None) -> bytes:
    """The ``.pte`` bytes for ``recipe``.

    Args:
        model: the generator (eval mode), N,3,H,W [0,1] -> same.
        input_hw: fixed input side.
        recipe: validated ExecuTorch recipe (precision, delegate).
        calibration: N,3,H,W float32 photos; required for int8.
    """
    import torch
    from executorch.exir import to_edge_transform_and_lower

    from mobile_pipeline.exporters._quiet import quiet

    sample = torch.rand(1, 3, *input_hw, generator=torch.Generator().manual_seed(0))
    with quiet(), torch.no_grad():
        program = torch.export.export(model.eval(), (sample,))
        if recipe.precision == "int8":
            program = _quantize_pt2e(program, sample, recipe, calibration)
        lowered = to_edge_transform_and_lower(program, partitioner=[_partitioner(recipe)])
        return bytes(lowered.to_executorch().buffer)


def _quantize_pt2e(program, sample, recipe: ExecutorchRecipe, calibration: np.ndarray | None):
    """PT2E: annotate with the XNNPACK quantizer, calibrate on the photos, convert, re-export."""
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    if calibration is None or len(calibration) == 0:
        raise ValueError("ExecuTorch int8 needs calibration photos (N,3,H,W float32 in [0,1]); none were given")
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=recipe.per_channel))
    prepared = prepare_pt2e(program.module(), quantizer)
    for index in range(len(calibration)):
        prepared(torch.from_numpy(np.ascontiguousarray(calibration[index:index + 1], dtype=np.float32)))
    converted = convert_pt2e(prepared)
    quant_nodes = sum(1 for node in converted.graph.nodes if "quantize_per" in str(node.target))
    if quant_nodes == 0:  # a silently float "int8" model would still pass the 30 dB gate
        raise ValueError("PT2E quantization inserted no quantize/dequantize ops: the XNNPACK quantizer "
                         "annotated nothing in this generator")
    return torch.export.export(converted, (sample,))


def _partitioner(recipe: ExecutorchRecipe):
    if recipe.delegate == "xnnpack":
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

        return XnnpackPartitioner()
    import coremltools as ct
    from executorch.backends.apple.coreml.compiler import CoreMLBackend
    from executorch.backends.apple.coreml.partition import CoreMLPartitioner

    specs = CoreMLBackend.generate_compile_specs(
        compute_unit=getattr(ct.ComputeUnit, _COMPUTE_UNITS[recipe.compute_unit]),
        minimum_deployment_target=getattr(ct.target, recipe.minimum_deployment_target),
        compute_precision=ct.precision.FLOAT16 if recipe.precision == "fp16" else ct.precision.FLOAT32,
        model_type=CoreMLBackend.MODEL_TYPE.MODEL,
    )
    # The generator has no mutable buffers; keeping them out of Core ML state keeps iOS 16/17 working.
    return CoreMLPartitioner(compile_specs=specs, take_over_mutable_buffer=False)


# ----------------------------------------------------------------------------- inspection
def inspect_pte(artifact: Path | bytes) -> dict[str, Any]:
    """What the program holds, readable without running it (any OS, any delegate).

    Returns ``operators`` (kernels that run outside every delegate, in order),
    ``delegates`` (backend id per delegate call), ``inputs`` / ``outputs`` ((shape, dtype)
    per tensor of ``forward``) and ``coreml_payloads`` (the processed bytes of each Core ML
    delegate).
    """
    from executorch.exir._serialize._program import deserialize_pte_binary

    data = artifact if isinstance(artifact, bytes) else Path(artifact).read_bytes()
    program = deserialize_pte_binary(data).program
    plans = {plan.name: plan for plan in program.execution_plan}
    if METHOD not in plans:
        raise ValueError(f"the program has no {METHOD!r} method (has {sorted(plans)})")
    plan = plans[METHOD]

    def tensor(index: int) -> tuple[list[int], str]:
        value = plan.values[index].val
        name = getattr(getattr(value, "scalar_type", None), "name", str(getattr(value, "scalar_type", "?")))
        return [int(s) for s in getattr(value, "sizes", [])], _DTYPES.get(name, name.lower())

    kernels = []
    for chain in plan.chains:
        for instruction in chain.instructions:
            args = instruction.instr_args
            if hasattr(args, "op_index"):  # KernelCall: a portable/optimized kernel outside any delegate
                op = plan.operators[args.op_index]
                kernels.append(op.name)
    payloads = []
    for delegate in plan.delegates:
        if delegate.id == BACKEND_IDS["coreml"]:
            payloads.append(bytes(program.backend_delegate_data[delegate.processed.index].data))
    return {
        "operators": kernels,
        "delegates": [delegate.id for delegate in plan.delegates],
        "inputs": [tensor(i) for i in plan.inputs],
        "outputs": [tensor(i) for i in plan.outputs],
        "coreml_payloads": payloads,
    }


def coreml_program_report(payload: bytes) -> dict[str, Any]:
    """``torch2coreml.inspect_program`` of the ML Program inside one Core ML delegate blob."""
    from mobile_pipeline.exporters._quiet import quiet

    with quiet():  # coremltools announces its missing macOS libraries at import
        from executorch.backends.apple.coreml import executorchcoreml

        from mobile_pipeline.exporters.torch2coreml import inspect_program
    folder = Path(tempfile.mkdtemp(prefix="mp_pte_coreml_"))
    try:
        if not executorchcoreml.unflatten_directory_contents(payload, str(folder)):
            raise ValueError("the Core ML delegate payload could not be unpacked")
        packages = sorted(folder.rglob("*.mlpackage"))
        if not packages:
            raise ValueError("the Core ML delegate payload holds no .mlpackage")
        return inspect_program(packages[0])
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def list_ops(artifact: Path | bytes) -> tuple[list[str], list[str]]:
    """(ops, float compute ops): ``delegate:<Backend>`` per delegate call, the non-delegated
    kernels, and the MIL ops of every Core ML delegate (checked against the tier's Core ML
    ``forbidden_ops``). No int8-only tier takes ExecuTorch variants, so no float list."""
    info = inspect_pte(artifact)
    ops = [f"delegate:{backend}" for backend in info["delegates"]] + list(info["operators"])
    for payload in info["coreml_payloads"]:
        ops += coreml_program_report(payload)["ops"]
    return ops, []


def check_program(artifact: Path, recipe: ExecutorchRecipe, input_hw: tuple[int, int]) -> list[str]:
    """Problems with the program itself (empty when it is what the recipe asked for).

    Always: one float32 (1,3,H,W) input and output, and the recipe's delegate present (a
    ``.pte`` whose graph fell entirely to portable kernels is far slower than its peers).
    Core ML: nothing left outside the delegate (portable kernels would bounce every frame
    between Core ML and the CPU), and the embedded ML Program computes in the recipe's
    precision: the checks the coreml format gets where it cannot be run.
    """
    info = inspect_pte(artifact)
    problems: list[str] = []
    expected = ([1, 3, int(input_hw[0]), int(input_hw[1])], "float32")
    for kind in ("inputs", "outputs"):
        tensors = info[kind]
        if len(tensors) != 1:
            problems.append(f"{METHOD} has {len(tensors)} {kind}, expected 1")
        elif tuple(tensors[0]) != expected:
            problems.append(f"{kind[:-1]} {tensors[0][0]} {tensors[0][1]} != {expected[0]} {expected[1]}")
    backend = BACKEND_IDS[recipe.delegate]
    if backend not in info["delegates"]:
        problems.append(f"no {backend} delegate in the program: the whole graph would run on portable kernels")
    if recipe.delegate == "coreml":
        if info["operators"]:
            problems.append(f"{len(info['operators'])} op(s) outside the Core ML delegate: "
                            f"{', '.join(sorted(set(info['operators'])))}")
        want = "FLOAT16" if recipe.precision == "fp16" else "FLOAT32"
        for payload in info["coreml_payloads"]:
            program = coreml_program_report(payload)
            if program["compute_dtypes"] != [want]:
                problems.append(f"Core ML delegate computes in {program['compute_dtypes'] or 'nothing'}, "
                                f"expected [{want}]")
    return problems


# ----------------------------------------------------------------------------- running
def registered_backends() -> set[str]:
    """Delegates this machine's ExecuTorch runtime can execute (XNNPACK here, never Core ML)."""
    from mobile_pipeline.exporters._quiet import quiet

    with quiet():  # the runtime's cpuinfo probes print to stderr when it is first imported
        from executorch.extension.pybindings import portable_lib

        return set(portable_lib._get_registered_backend_names())


def missing_backends(delegates: list[str]) -> list[str]:
    return sorted(set(delegates) - registered_backends())


def set_threads(num_threads: int) -> None:
    """Size ExecuTorch's process-wide CPU thread pool (XNNPACK's threads) when it differs.

    The pool is global and resetting it while a method runs is unsafe, so callers do it
    before loading a method, as the runners here do.
    """
    from mobile_pipeline.exporters._quiet import quiet

    threads = max(int(num_threads), 1)
    with quiet():
        from executorch.extension.pybindings import portable_lib

        if portable_lib._threadpool_get_thread_count() != threads:
            portable_lib._unsafe_reset_threadpool(threads)


def load_method(artifact: Path, num_threads: int = 1):
    """``forward`` of a ``.pte`` through ``executorch.runtime`` (the Python face of the C++ runtime)."""
    from executorch.runtime import Runtime, Verification

    from mobile_pipeline.exporters._quiet import quiet

    set_threads(num_threads)
    with quiet():  # cpuinfo probes print a dozen lines to stderr on first load
        program = Runtime.get().load_program(Path(artifact), verification=Verification.Minimal)
        method = program.load_method(METHOD)
    if method is None:
        raise ValueError(f"{Path(artifact).name} has no {METHOD!r} method")
    return method
