"""The rebuilt AI Hub networks match the published parameter counts and trace into our op vocabulary."""

from __future__ import annotations

import pytest
import torch

from mobile_pipeline.bench.reference_nets import REFERENCE_NETS, reference_ops
from mobile_pipeline.search.device_latency import op_features
from mobile_pipeline.search.ops import Op


@pytest.mark.parametrize("model_id", sorted(REFERENCE_NETS))
def test_rebuild_matches_published_parameter_count_and_traces(model_id):
    net = REFERENCE_NETS[model_id]
    with torch.device("meta"):
        params = sum(p.numel() for p in net.build().parameters())
    # AI Hub rounds to three significant digits; a wrong width, depth or scale is off by far more
    assert params == pytest.approx(net.params, rel=0.006)
    ops = reference_ops(model_id)
    assert ops and all(Op.from_key(op.key) == op for op in ops)
    plain = sum(op.macs for op in ops if op.kind in ("conv", "deconv")) / 1e9
    features = op_features(ops, 1)
    assert features[1] >= plain * 0.999  # output channels padded to 32 never lower the MACs
    assert features[5] == len(ops)


def test_traced_structure_of_two_networks():
    kinds = [op.kind for op in reference_ops("quicksrnetsmall")]
    assert kinds == ["conv", "conv", "conv", "conv", "depth_to_space"]  # clipped ReLUs fuse into the convs
    last = reference_ops("quicksrnetsmall")[-2]
    assert (last.attr("cout"), last.shape) == (48, (32, 128, 128))  # 3 x 4^2 channels before the x4 shuffle
    unet = reference_ops("unet_segmentation")
    assert sum(op.kind == "pool" for op in unet) == 4 and sum(op.kind == "deconv" for op in unet) == 4
    assert unet[0].shape == (3, 640, 1280)
    with pytest.raises(KeyError, match="no rebuilt reference network"):
        reference_ops("llama_v3_8b_instruct")


def test_new_op_kinds_have_measurement_modules_with_the_traced_geometry():
    """pixel shuffle, pooling, non-ReLU activations ...: the LUT can time them, and the feature
    code's output shapes agree with what the module really produces."""
    from mobile_pipeline.search.device_latency import _out_channels, _out_hw
    from mobile_pipeline.search.ops import op_module

    seen = {}
    for model_id in ("quicksrnetsmall", "srgan", "unet_segmentation", "mobilenet_v3_small", "squeezenet1_1"):
        for op in reference_ops(model_id):
            seen.setdefault((op.kind, op.attr("fn"), op.attr("k") if op.kind == "pool" else None), op)
    kinds = {kind for kind, _, _ in seen}
    assert {"depth_to_space", "pool", "global_pool", "act", "deconv", "concat"} <= kinds
    for op in seen.values():
        small = op if op.shape[1] * op.shape[2] <= 64 * 64 else op.with_hw(op.shape[1] // 8, op.shape[2] // 8)
        module, inputs = op_module(small)
        out = module(*inputs)
        assert tuple(out.shape[1:]) == (_out_channels(small), *_out_hw(small)), small.key
