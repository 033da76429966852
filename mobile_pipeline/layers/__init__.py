"""Generator building blocks: small, typed, export-friendly (Conv/BN/ReLU/sigmoid/resize)."""

from mobile_pipeline.layers.blocks import BRANCH_KINDS, FSBlock, ResNetBlock, make_block, make_branch
from mobile_pipeline.layers.conv import ACT_NAMES, ConvNormAct, make_act
from mobile_pipeline.layers.fusion import FUSION_KINDS, AddFusion, ConcatFusion, make_fusion
from mobile_pipeline.layers.sta import STA
from mobile_pipeline.layers.upsample import UPSAMPLE_MODES, Upsample

__all__ = [
    "ACT_NAMES", "BRANCH_KINDS", "FUSION_KINDS", "UPSAMPLE_MODES",
    "AddFusion", "ConcatFusion", "ConvNormAct", "FSBlock", "ResNetBlock", "STA", "Upsample",
    "make_act", "make_block", "make_branch", "make_fusion",
]
