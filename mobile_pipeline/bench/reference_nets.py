"""Published networks that Qualcomm AI Hub measured on phones, rebuilt as plain PyTorch modules.

The device latency model (:mod:`mobile_pipeline.search.device_latency`) is fitted on AI Hub's
published per-phone latencies (``qai_hub_models/models/<id>/perf.yaml``). To use those numbers
the networks' cost must be counted in *our* op vocabulary (:mod:`mobile_pipeline.search.ops`),
so each one is rebuilt here layer for layer at the input size AI Hub profiled it at, and traced
like our generator. Only the architecture matters: no weights, nothing downloaded.

Sources, per network: the model code AI Hub runs (the ``qai_hub_models`` wheel's model.py /
``extern/basicsr`` and the repositories it pins: aimet-model-zoo for QuickSRNet / XLSR / SESR,
KAIR for DnCNN, SRGAN-PyTorch, milesial/Pytorch-UNet, torchvision for the classifiers). The
wrappers' scale factors and input sizes are AI Hub's defaults (super-resolution nets x4 on
128x128, DnCNN 1x256x256, U-Net 640x1280, classifiers 224x224). Each rebuild's parameter
count is checked against the count AI Hub publishes (``params``; tests/test_reference_nets.py),
which catches a wrong width, depth or scale factor. The SESR-M5 that AI Hub profiles is the
training-time (uncollapsed) form: its published 343K parameters are the uncollapsed count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _conv(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, bias: bool = True,
          dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=dilation * (k // 2), groups=groups, bias=bias,
                     dilation=dilation)


# ----------------------------------------------------------------------- super resolution
class QuickSRNet(nn.Module):
    """QuickSRNet (Berger et al. 2023): plain 3x3 convs with clipped ReLU, then pixel shuffle."""

    def __init__(self, channels: int, intermediate: int, ito: bool, scale: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = [_conv(3, channels), nn.Hardtanh(0.0, 1.0)]
        for _ in range(intermediate):
            layers += [_conv(channels, channels), nn.Hardtanh(0.0, 1.0)]
        self.cnn = nn.Sequential(*layers)
        self.conv_last = _conv(channels, 3 * scale**2)
        # input-to-output connection: a 1x1 conv that repeats the input channels (the "anchor")
        self.anchor = _conv(3, 3 * scale**2, 1) if ito else None
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv_last(self.cnn(x))
        if self.anchor is not None:
            y = y + self.anchor(x)
        return self.shuffle(F.hardtanh(y, 0.0, 1.0))


class XLSR(nn.Module):
    """XLSR (Ayazoglu 2021): grouped-conv G-blocks, a concatenated residual, pixel shuffle."""

    def __init__(self, scale: int = 4) -> None:
        super().__init__()
        self.residual = _conv(3, 16)
        self.head = nn.Sequential(_conv(3, 32), nn.ReLU(), _conv(32, 32, 1))
        self.gblocks = nn.Sequential(*[nn.Sequential(_conv(32, 32, groups=4), nn.ReLU(), _conv(32, 32, 1))
                                       for _ in range(3)])
        self.tail = nn.Sequential(_conv(48, 32, 1), nn.ReLU(), _conv(32, 3 * scale**2))
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x: Tensor) -> Tensor:
        y = torch.cat([self.gblocks(self.head(x)), self.residual(x)], dim=1)
        return F.hardtanh(self.shuffle(self.tail(y)), 0.0, 1.0)


class _Collapsible(nn.Module):
    """SESR's linear block before collapsing: a k x k expansion to 256 channels, a 1x1 squeeze."""

    def __init__(self, cin: int, cout: int, k: int, relu: bool, residual: bool = False) -> None:
        super().__init__()
        self.expand = _conv(cin, 256, k, bias=False)
        self.squeeze = _conv(256, cout, 1)
        self.relu, self.residual = relu, residual

    def forward(self, x: Tensor) -> Tensor:
        y = self.squeeze(self.expand(x))
        if self.residual:
            y = x + y
        return F.relu(y) if self.relu else y


class SESR(nn.Module):
    """SESR-M<n> (Bhardwaj et al. 2022), uncollapsed as AI Hub profiles it."""

    def __init__(self, blocks: int = 5, channels: int = 16, scale: int = 4) -> None:
        super().__init__()
        self.anchor = _conv(3, 3 * scale**2, 1)
        self.first = _Collapsible(3, channels, 5, relu=True)
        self.body = nn.Sequential(*[_Collapsible(channels, channels, 3, relu=True, residual=True)
                                    for _ in range(blocks)])
        self.last = _Collapsible(channels, 3 * scale**2, 5, relu=False)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x: Tensor) -> Tensor:
        first = self.first(x)
        y = self.last(self.body(first) + first)
        return self.shuffle(y + self.anchor(x))


class DnCNN(nn.Module):
    """DnCNN (Zhang et al. 2017, KAIR ``act_mode='R'``): 17 convs, predicts the noise."""

    def __init__(self, channels: int = 64, layers: int = 17, in_ch: int = 1) -> None:
        super().__init__()
        body: list[nn.Module] = [_conv(in_ch, channels), nn.ReLU()]
        for _ in range(layers - 2):
            body += [_conv(channels, channels), nn.ReLU()]
        body.append(_conv(channels, in_ch))
        self.body = nn.Sequential(*body)

    def forward(self, x: Tensor) -> Tensor:
        return torch.clamp(x - self.body(x), 0.0, 1.0)


class SRVGGNetCompact(nn.Module):
    """Real-ESRGAN-general-x4v3 (basicsr ``SRVGGNetCompact``): 32 convs with PReLU at low res."""

    def __init__(self, feat: int = 64, convs: int = 32, scale: int = 4) -> None:
        super().__init__()
        body: list[nn.Module] = [_conv(3, feat), nn.PReLU(feat)]
        for _ in range(convs):
            body += [_conv(feat, feat), nn.PReLU(feat)]
        body.append(_conv(feat, 3 * scale**2))
        self.body = nn.Sequential(*body)
        self.shuffle, self.scale = nn.PixelShuffle(scale), scale

    def forward(self, x: Tensor) -> Tensor:
        return self.shuffle(self.body(x)) + F.interpolate(x, scale_factor=self.scale, mode="nearest")


class _SRResBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv(c, c, bias=False), nn.BatchNorm2d(c), nn.PReLU(),
                                  _conv(c, c, bias=False), nn.BatchNorm2d(c))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class SRResNet(nn.Module):
    """SRGAN's generator (Ledig et al. 2017; SRGAN-PyTorch ``SRResNet``): 16 residual blocks, x4."""

    def __init__(self, c: int = 64, blocks: int = 16) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(_conv(3, c, 9), nn.PReLU())
        self.trunk = nn.Sequential(*[_SRResBlock(c) for _ in range(blocks)])
        self.conv2 = nn.Sequential(_conv(c, c, bias=False), nn.BatchNorm2d(c))
        self.upsample = nn.Sequential(*[nn.Sequential(_conv(c, 4 * c), nn.PixelShuffle(2), nn.PReLU())
                                        for _ in range(2)])
        self.conv3 = _conv(c, 3, 9)

    def forward(self, x: Tensor) -> Tensor:
        out1 = self.conv1(x)
        y = self.conv3(self.upsample(out1 + self.conv2(self.trunk(out1))))
        return torch.clamp(y, 0.0, 1.0)


class _RDB(nn.Module):
    """Residual dense block: five convs on the growing concatenation, scaled residual."""

    def __init__(self, c: int, gc: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList([_conv(c + i * gc, gc) for i in range(4)] + [_conv(c + 4 * gc, c)])

    def forward(self, x: Tensor) -> Tensor:
        feats = [x]
        for conv in self.convs[:-1]:
            feats.append(F.leaky_relu(conv(torch.cat(feats, 1) if len(feats) > 1 else x), 0.2))
        return self.convs[-1](torch.cat(feats, 1)) * 0.2 + x


class _RRDB(nn.Module):
    def __init__(self, c: int, gc: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*[_RDB(c, gc) for _ in range(3)])

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(x) * 0.2 + x


class RRDBNet(nn.Module):
    """ESRGAN / Real-ESRGAN-x4plus (basicsr ``RRDBNet``): 23 RRDBs, two nearest x2 + conv steps."""

    def __init__(self, c: int = 64, blocks: int = 23, gc: int = 32) -> None:
        super().__init__()
        self.conv_first = _conv(3, c)
        self.body = nn.Sequential(*[_RRDB(c, gc) for _ in range(blocks)])
        self.conv_body = _conv(c, c)
        self.conv_up1, self.conv_up2, self.conv_hr = _conv(c, c), _conv(c, c), _conv(c, c)
        self.conv_last = _conv(c, 3)

    def forward(self, x: Tensor) -> Tensor:
        act = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = act(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = act(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(act(self.conv_hr(feat)))


class _DoubleConv(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(_conv(cin, cout, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                         _conv(cout, cout, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class UNet(nn.Module):
    """U-Net (milesial/Pytorch-UNet, ``bilinear=False``: transposed-conv upsampling), 2 classes."""

    def __init__(self, classes: int = 2) -> None:
        super().__init__()
        widths = (64, 128, 256, 512, 1024)
        self.inc = _DoubleConv(3, 64)
        self.downs = nn.ModuleList([_DoubleConv(a, b) for a, b in zip(widths, widths[1:])])
        self.ups = nn.ModuleList([nn.ConvTranspose2d(b, b // 2, 2, stride=2) for b in reversed(widths[1:])])
        self.up_convs = nn.ModuleList([_DoubleConv(b, b // 2) for b in reversed(widths[1:])])
        self.outc = _conv(64, classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(F.max_pool2d(skips[-1], 2)))
        y = skips.pop()
        for up, conv in zip(self.ups, self.up_convs):
            y = conv(torch.cat([skips.pop(), up(y)], dim=1))
        return self.outc(y)


# --------------------------------------------------------------------------- classifiers
def _make_divisible(v: float, divisor: int = 8) -> int:
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


class _ConvBNAct(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1,
                 act: Callable[[], nn.Module] | None = nn.ReLU6) -> None:
        layers: list[nn.Module] = [_conv(cin, cout, k, stride, groups, bias=False), nn.BatchNorm2d(cout)]
        if act is not None:
            layers.append(act())
        super().__init__(*layers)


class _InvertedResidual(nn.Module):
    """MobileNet v2 / v3 block: 1x1 expand, depthwise, (squeeze-excite), 1x1 project."""

    def __init__(self, cin: int, exp: int, cout: int, k: int, stride: int, se: bool,
                 act: Callable[[], nn.Module]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        if exp != cin:
            layers.append(_ConvBNAct(cin, exp, 1, act=act))
        layers.append(_ConvBNAct(exp, exp, k, stride, groups=exp, act=act))
        self.se = _SqueezeExcite(exp, _make_divisible(exp // 4)) if se else None
        self.pre = nn.Sequential(*layers)
        self.project = _ConvBNAct(exp, cout, 1, act=None)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = self.pre(x)
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)
        return x + y if self.residual else y


class _SqueezeExcite(nn.Module):
    def __init__(self, c: int, squeeze: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(c, squeeze, 1), nn.Conv2d(squeeze, c, 1)

    def forward(self, x: Tensor) -> Tensor:
        scale = F.hardsigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))
        return x * scale


class MobileNetV2(nn.Module):
    """torchvision ``mobilenet_v2`` (Sandler et al. 2018), 1000 classes."""

    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [_ConvBNAct(3, 32, stride=2)]
        cin = 32
        for t, c, n, s in self.SETTINGS:
            for i in range(n):
                layers.append(_InvertedResidual(cin, cin * t, c, 3, s if i == 0 else 1, False, nn.ReLU6))
                cin = c
        layers.append(_ConvBNAct(cin, 1280, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(1280, 1000)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


class MobileNetV3(nn.Module):
    """torchvision ``mobilenet_v3_large`` / ``_small`` (Howard et al. 2019), 1000 classes."""

    # (kernel, expanded, out, squeeze-excite, hardswish, stride)
    LARGE = ((3, 16, 16, 0, 0, 1), (3, 64, 24, 0, 0, 2), (3, 72, 24, 0, 0, 1), (5, 72, 40, 1, 0, 2),
             (5, 120, 40, 1, 0, 1), (5, 120, 40, 1, 0, 1), (3, 240, 80, 0, 1, 2), (3, 200, 80, 0, 1, 1),
             (3, 184, 80, 0, 1, 1), (3, 184, 80, 0, 1, 1), (3, 480, 112, 1, 1, 1), (3, 672, 112, 1, 1, 1),
             (5, 672, 160, 1, 1, 2), (5, 960, 160, 1, 1, 1), (5, 960, 160, 1, 1, 1))
    SMALL = ((3, 16, 16, 1, 0, 2), (3, 72, 24, 0, 0, 2), (3, 88, 24, 0, 0, 1), (5, 96, 40, 1, 1, 2),
             (5, 240, 40, 1, 1, 1), (5, 240, 40, 1, 1, 1), (5, 120, 48, 1, 1, 1), (5, 144, 48, 1, 1, 1),
             (5, 288, 96, 1, 1, 2), (5, 576, 96, 1, 1, 1), (5, 576, 96, 1, 1, 1))

    def __init__(self, variant: str = "large") -> None:
        super().__init__()
        settings, last = (self.LARGE, 1280) if variant == "large" else (self.SMALL, 1024)
        layers: list[nn.Module] = [_ConvBNAct(3, 16, stride=2, act=nn.Hardswish)]
        cin = 16
        for k, exp, cout, se, hs, s in settings:
            layers.append(_InvertedResidual(cin, exp, cout, k, s, bool(se), nn.Hardswish if hs else nn.ReLU))
            cin = cout
        layers.append(_ConvBNAct(cin, 6 * cin, 1, act=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(6 * cin, last), nn.Hardswish(), nn.Linear(last, 1000))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


class _BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_ConvBNAct(cin, width, 3, stride, act=nn.ReLU), _ConvBNAct(width, width, act=None))
        self.down = _ConvBNAct(cin, width, 1, stride, act=None) if stride != 1 or cin != width else None

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.body(x) + (self.down(x) if self.down is not None else x))


class _Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        out = width * 4
        self.body = nn.Sequential(_ConvBNAct(cin, width, 1, act=nn.ReLU), _ConvBNAct(width, width, 3, stride, act=nn.ReLU),
                                  _ConvBNAct(width, out, 1, act=None))
        self.down = _ConvBNAct(cin, out, 1, stride, act=None) if stride != 1 or cin != out else None

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.body(x) + (self.down(x) if self.down is not None else x))


class ResNet(nn.Module):
    """torchvision ``resnet18`` / ``resnet50`` (He et al. 2016), 1000 classes."""

    def __init__(self, depth: int = 18) -> None:
        super().__init__()
        block, counts = (_BasicBlock, (2, 2, 2, 2)) if depth == 18 else (_Bottleneck, (3, 4, 6, 3))
        self.stem = _ConvBNAct(3, 64, 7, 2, act=nn.ReLU)
        layers: list[nn.Module] = []
        cin = 64
        for i, (width, n) in enumerate(zip((64, 128, 256, 512), counts)):
            for j in range(n):
                layers.append(block(cin, width, 2 if i > 0 and j == 0 else 1))
                cin = width * block.expansion
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, 1000)

    def forward(self, x: Tensor) -> Tensor:
        y = self.layers(F.max_pool2d(self.stem(x), 3, 2, 1))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(y, 1), 1))


class _Fire(nn.Module):
    def __init__(self, cin: int, squeeze: int, expand: int) -> None:
        super().__init__()
        self.squeeze = _conv(cin, squeeze, 1)
        self.e1, self.e3 = _conv(squeeze, expand, 1), _conv(squeeze, expand, 3)

    def forward(self, x: Tensor) -> Tensor:
        s = F.relu(self.squeeze(x))
        return torch.cat([F.relu(self.e1(s)), F.relu(self.e3(s))], 1)


class SqueezeNet11(nn.Module):
    """torchvision ``squeezenet1_1`` (Iandola et al. 2016), 1000 classes."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, stride=2)
        self.stage1 = nn.Sequential(_Fire(64, 16, 64), _Fire(128, 16, 64))
        self.stage2 = nn.Sequential(_Fire(128, 32, 128), _Fire(256, 32, 128))
        self.stage3 = nn.Sequential(_Fire(256, 48, 192), _Fire(384, 48, 192), _Fire(384, 64, 256), _Fire(512, 64, 256))
        self.head = nn.Conv2d(512, 1000, 1)

    def forward(self, x: Tensor) -> Tensor:
        pool = lambda t: F.max_pool2d(t, 3, 2, ceil_mode=True)  # noqa: E731
        y = self.stage3(pool(self.stage2(pool(self.stage1(pool(F.relu(self.conv1(x))))))))
        return torch.flatten(F.adaptive_avg_pool2d(F.relu(self.head(y)), 1), 1)


# ------------------------------------------------------------------------------ registry
@dataclass(frozen=True)
class ReferenceNet:
    """One AI Hub model as we rebuild it.

    Args:
        model_id: folder name under ``qai_hub_models/models`` (the key of its perf.yaml).
        build: constructs the network (random init; only the architecture matters).
        input_chw: the input AI Hub profiled (channels, height, width).
        params: "Number of parameters" from AI Hub's manifest.yaml, the faithfulness check.
        group: architecture group for leave-one-out (models sharing an architecture, e.g.
            ESRGAN and Real-ESRGAN-x4plus, are left out together).
        kind: ``image-to-image`` (like our generator) or ``classifier`` (for scale).
    """

    model_id: str
    build: Callable[[], nn.Module]
    input_chw: tuple[int, int, int]
    params: int
    group: str
    kind: str = "image-to-image"


REFERENCE_NETS: dict[str, ReferenceNet] = {net.model_id: net for net in (
    ReferenceNet("quicksrnetsmall", lambda: QuickSRNet(32, 2, False), (3, 128, 128), 33_300, "quicksrnetsmall"),
    ReferenceNet("quicksrnetmedium", lambda: QuickSRNet(32, 5, False), (3, 128, 128), 61_000, "quicksrnetmedium"),
    ReferenceNet("quicksrnetlarge", lambda: QuickSRNet(64, 11, True), (3, 128, 128), 436_000, "quicksrnetlarge"),
    ReferenceNet("xlsr", XLSR, (3, 128, 128), 28_000, "xlsr"),
    ReferenceNet("sesr_m5", SESR, (3, 128, 128), 343_000, "sesr_m5"),
    ReferenceNet("dncnn", DnCNN, (1, 256, 256), 555_000, "dncnn"),
    ReferenceNet("real_esrgan_general_x4v3", SRVGGNetCompact, (3, 128, 128), 1_210_000, "real_esrgan_general_x4v3"),
    ReferenceNet("srgan", SRResNet, (3, 128, 128), 1_550_000, "srgan"),
    ReferenceNet("esrgan", RRDBNet, (3, 128, 128), 16_700_000, "rrdbnet"),
    ReferenceNet("real_esrgan_x4plus", RRDBNet, (3, 128, 128), 16_700_000, "rrdbnet"),
    ReferenceNet("unet_segmentation", UNet, (3, 640, 1280), 31_000_000, "unet_segmentation"),
    ReferenceNet("mobilenet_v2", MobileNetV2, (3, 224, 224), 3_490_000, "mobilenet_v2", "classifier"),
    ReferenceNet("mobilenet_v3_large", lambda: MobileNetV3("large"), (3, 224, 224), 5_470_000, "mobilenet_v3_large",
                 "classifier"),
    ReferenceNet("mobilenet_v3_small", lambda: MobileNetV3("small"), (3, 224, 224), 2_540_000, "mobilenet_v3_small",
                 "classifier"),
    ReferenceNet("resnet18", lambda: ResNet(18), (3, 224, 224), 11_700_000, "resnet18", "classifier"),
    ReferenceNet("resnet50", lambda: ResNet(50), (3, 224, 224), 25_500_000, "resnet50", "classifier"),
    ReferenceNet("squeezenet1_1", SqueezeNet11, (3, 224, 224), 1_240_000, "squeezenet1_1", "classifier"),
)}


def reference_ops(model_id: str) -> list:
    """Our runtime ops of an AI Hub model at its profiled input size (traced on the meta device)."""
    from mobile_pipeline.search.ops import trace_ops

    if model_id not in REFERENCE_NETS:
        raise KeyError(f"no rebuilt reference network for AI Hub model {model_id!r}; known: {sorted(REFERENCE_NETS)}")
    net = REFERENCE_NETS[model_id]
    with torch.device("meta"):
        model = net.build()
    ops, unknown = trace_ops(model, net.input_chw[1:], in_channels=net.input_chw[0])
    if unknown:
        raise ValueError(f"{model_id}: ops outside the latency vocabulary: {sorted(set(unknown))}")
    return ops
