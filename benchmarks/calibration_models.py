"""Regenerate edgepack/estimate/model_costs.json: per-op costs of the calibration networks.

The published latencies in ../shared/device-calibration/measurements.csv are of standard networks. Latency does not
depend on weight values, so each network is rebuilt here with random weights (transformers configs where transformers
has the architecture, short torch definitions otherwise), exported to ONNX and costed op by op with edgepack's own
counter (`edgepack.estimate.count_onnx.count_onnx_costs`). The result is cached as a data file because exporting and running
ResNet-50, ViT-B/32 and friends takes minutes, while the fit that reads them takes about a second.

Usage: flock /tmp/edgepack-heavy.lock .venv/bin/python benchmarks/calibration_models.py [--only KEY ...]
Keys are the `COST_KEYS` of edgepack/estimate/data.py (model name + input size).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgepack.estimate.data import COSTS_FILE, compact  # noqa: E402
from edgepack.estimate.count_onnx import count_onnx_costs  # noqa: E402


# ---- short definitions of networks transformers lacks ------------------------------------------------------------

def _conv_bn(cin, cout, k, s, groups=1, act=nn.ReLU):
    layers = [nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, act()) if act else nn.Sequential(*layers)


class Fire(nn.Module):
    def __init__(self, cin, squeeze, expand):
        super().__init__()
        self.squeeze = nn.Sequential(nn.Conv2d(cin, squeeze, 1), nn.ReLU())
        self.e1 = nn.Sequential(nn.Conv2d(squeeze, expand, 1), nn.ReLU())
        self.e3 = nn.Sequential(nn.Conv2d(squeeze, expand, 3, padding=1), nn.ReLU())

    def forward(self, x):
        x = self.squeeze(x)
        return torch.cat([self.e1(x), self.e3(x)], 1)


def squeezenet(version: str) -> nn.Module:
    """SqueezeNet 1.0 / 1.1 (Iandola et al. 2016; the 1.1 layout of the reference Caffe model)."""
    pool = lambda: nn.MaxPool2d(3, 2, ceil_mode=True)  # noqa: E731
    if version == "1.0":
        features = [nn.Conv2d(3, 96, 7, 2), nn.ReLU(), pool(), Fire(96, 16, 64), Fire(128, 16, 64), Fire(128, 32, 128),
                    pool(), Fire(256, 32, 128), Fire(256, 48, 192), Fire(384, 48, 192), Fire(384, 64, 256), pool(),
                    Fire(512, 64, 256)]
    else:
        features = [nn.Conv2d(3, 64, 3, 2), nn.ReLU(), pool(), Fire(64, 16, 64), Fire(128, 16, 64), pool(),
                    Fire(128, 32, 128), Fire(256, 32, 128), pool(), Fire(256, 48, 192), Fire(384, 48, 192),
                    Fire(384, 64, 256), Fire(512, 64, 256)]
    return nn.Sequential(*features, nn.Conv2d(512, 1000, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())


class SqueezeExcite(nn.Module):
    def __init__(self, channels, reduced):
        super().__init__()
        self.fc = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, reduced, 1), nn.ReLU(),
                                nn.Conv2d(reduced, channels, 1), nn.Hardsigmoid())

    def forward(self, x):
        return x * self.fc(x)


class InvertedResidual(nn.Module):
    def __init__(self, cin, k, expand, cout, se, act, stride):
        super().__init__()
        layers = [] if expand == cin else [_conv_bn(cin, expand, 1, 1, act=act)]
        layers.append(_conv_bn(expand, expand, k, stride, groups=expand, act=act))
        if se:
            layers.append(SqueezeExcite(expand, _make_divisible(expand // 4)))
        layers.append(_conv_bn(expand, cout, 1, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.block(x) if self.residual else self.block(x)


def _make_divisible(v, divisor=8):
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


# MobileNetV3 (Howard et al. 2019, tables 1 and 2): kernel, expansion, out, SE, hard-swish, stride.
V3_LARGE = [(3, 16, 16, 0, 0, 1), (3, 64, 24, 0, 0, 2), (3, 72, 24, 0, 0, 1), (5, 72, 40, 1, 0, 2),
            (5, 120, 40, 1, 0, 1), (5, 120, 40, 1, 0, 1), (3, 240, 80, 0, 1, 2), (3, 200, 80, 0, 1, 1),
            (3, 184, 80, 0, 1, 1), (3, 184, 80, 0, 1, 1), (3, 480, 112, 1, 1, 1), (3, 672, 112, 1, 1, 1),
            (5, 672, 160, 1, 1, 2), (5, 960, 160, 1, 1, 1), (5, 960, 160, 1, 1, 1)]
V3_SMALL = [(3, 16, 16, 1, 0, 2), (3, 72, 24, 0, 0, 2), (3, 88, 24, 0, 0, 1), (5, 96, 40, 1, 1, 2),
            (5, 240, 40, 1, 1, 1), (5, 240, 40, 1, 1, 1), (5, 120, 48, 1, 1, 1), (5, 144, 48, 1, 1, 1),
            (5, 288, 96, 1, 1, 2), (5, 576, 96, 1, 1, 1), (5, 576, 96, 1, 1, 1)]


def mobilenet_v3(size: str) -> nn.Module:
    config, last, head = (V3_LARGE, 960, 1280) if size == "large" else (V3_SMALL, 576, 1024)
    layers, cin = [_conv_bn(3, 16, 3, 2, act=nn.Hardswish)], 16
    for k, exp, out, se, hs, stride in config:
        layers.append(InvertedResidual(cin, k, exp, out, se, nn.Hardswish if hs else nn.ReLU, stride))
        cin = out
    layers += [_conv_bn(cin, last, 1, 1, act=nn.Hardswish), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
               nn.Linear(last, head), nn.Hardswish(), nn.Linear(head, 1000)]
    return nn.Sequential(*layers)


class ShuffleBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        half = cout // 2
        self.stride = stride
        if stride == 2:
            self.left = nn.Sequential(_conv_bn(cin, cin, 3, 2, groups=cin, act=None), _conv_bn(cin, half, 1, 1))
        self.right = nn.Sequential(_conv_bn(cin if stride == 2 else half, half, 1, 1),
                                   _conv_bn(half, half, 3, stride, groups=half, act=None), _conv_bn(half, half, 1, 1))

    def forward(self, x):
        if self.stride == 2:
            out = torch.cat([self.left(x), self.right(x)], 1)
        else:
            a, b = x.chunk(2, dim=1)
            out = torch.cat([a, self.right(b)], 1)
        n, c, h, w = out.shape
        return out.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)  # channel shuffle


def shufflenet_v2() -> nn.Module:
    """ShuffleNetV2 x1.0 (Ma et al. 2018): stages of 4/8/4 blocks, 116/232/464 channels."""
    layers, cin = [_conv_bn(3, 24, 3, 2), nn.MaxPool2d(3, 2, 1)], 24
    for repeats, cout in ((4, 116), (8, 232), (4, 464)):
        layers += [ShuffleBlock(cin, cout, 2)] + [ShuffleBlock(cout, cout, 1) for _ in range(repeats - 1)]
        cin = cout
    layers += [_conv_bn(cin, 1024, 1, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1024, 1000)]
    return nn.Sequential(*layers)


# ---- networks transformers has ------------------------------------------------------------------------------------

def _hf(config_name: str, model_name: str, **config):
    import transformers

    return getattr(transformers, model_name)(getattr(transformers, config_name)(**config))


EFFICIENTNET_LITE = {  # (width, depth) multipliers of EfficientNet-Lite0..4 (tensorflow/tpu efficientnet_lite_builder)
    "lite0": (1.0, 1.0), "lite1": (1.0, 1.1), "lite2": (1.1, 1.2), "lite3": (1.2, 1.4), "lite4": (1.4, 1.8)}


def build(key: str):
    """(module, example inputs, input names) for one cost key."""
    name, _, size = key.partition("@")
    image = lambda s: (torch.randn(1, 3, s, s),)  # noqa: E731
    if name == "SqueezeNet-1.0":
        return squeezenet("1.0"), image(int(size)), ["image"]
    if name == "SqueezeNet-1.1":
        return squeezenet("1.1"), image(int(size)), ["image"]
    if name == "MobileNetV3-Large":
        return mobilenet_v3("large"), image(int(size)), ["image"]
    if name == "MobileNetV3-Small":
        return mobilenet_v3("small"), image(int(size)), ["image"]
    if name == "ShuffleNetV2":
        return shufflenet_v2(), image(int(size)), ["image"]
    if name == "MobileNetV1":
        return _hf("MobileNetV1Config", "MobileNetV1ForImageClassification", num_labels=1000,
                   image_size=int(size), tf_padding=False), image(int(size)), ["pixel_values"]
    if name == "MobileNetV2":
        return _hf("MobileNetV2Config", "MobileNetV2ForImageClassification", num_labels=1000,
                   image_size=int(size), tf_padding=False), image(int(size)), ["pixel_values"]
    if name.startswith("EfficientNet-"):
        # transformers' defaults are B7's; B0 is width = depth = 1. Lite drops squeeze-excite and uses ReLU6;
        # transformers' EfficientNet keeps SE (a few % of the FLOPs).
        lite = name.startswith("EfficientNet-Lite")
        width, depth = EFFICIENTNET_LITE[name.split("-")[1].lower()] if lite else (1.0, 1.0)
        head = int(1280 * width + 4) // 8 * 8  # round_filters of the 1280-channel head
        return _hf("EfficientNetConfig", "EfficientNetForImageClassification", num_labels=1000, image_size=int(size),
                   width_coefficient=width, depth_coefficient=depth, hidden_dim=head,
                   hidden_act="relu" if lite else "swish"), image(int(size)), ["pixel_values"]
    if name in ("ResNet-18", "ResNet-50", "ResNet-101"):
        depths = {"ResNet-18": [2, 2, 2, 2], "ResNet-50": [3, 4, 6, 3], "ResNet-101": [3, 4, 23, 3]}[name]
        layer = "basic" if name == "ResNet-18" else "bottleneck"
        hidden = [64, 128, 256, 512] if layer == "basic" else [256, 512, 1024, 2048]
        return _hf("ResNetConfig", "ResNetForImageClassification", num_labels=1000, depths=depths, layer_type=layer,
                   hidden_sizes=hidden), image(int(size)), ["pixel_values"]
    if name in ("ViT-B/32", "DeiT-Tiny"):
        kw = dict(patch_size=32) if name == "ViT-B/32" else dict(patch_size=16, hidden_size=192, num_attention_heads=3,
                                                                  intermediate_size=768)
        return _hf("ViTConfig", "ViTForImageClassification", num_labels=1000, image_size=int(size), **kw), \
            image(int(size)), ["pixel_values"]
    if name == "MobileBERT":
        seq = int(size)
        ids = torch.randint(0, 30522, (1, seq))
        return _hf("MobileBertConfig", "MobileBertForQuestionAnswering"), (ids, torch.ones_like(ids)), \
            ["input_ids", "attention_mask"]
    raise KeyError(key)


def cost_one(key: str, folder: Path) -> list[list]:
    torch.manual_seed(0)
    module, args, names = build(key)
    module.eval()
    path = folder / "model.onnx"
    with torch.no_grad():
        torch.onnx.export(module, args, str(path), input_names=names, opset_version=17, dynamo=False)
    feeds = {n: a.numpy() for n, a in zip(names, args)}
    return compact(count_onnx_costs(path, feeds))


def main() -> None:
    from edgepack.estimate.data import COST_KEYS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="cost keys to (re)compute; the others are kept")
    args = parser.parse_args()
    cached = json.loads(COSTS_FILE.read_text()) if COSTS_FILE.exists() else {}
    keys = args.only or COST_KEYS
    for key in keys:
        started = time.time()
        with tempfile.TemporaryDirectory() as tmp:
            cached[key] = cost_one(key, Path(tmp))
        total = sum(op[1] * op[3] for op in cached[key])
        print(f"{key:28} {len(cached[key]):4} op groups {total / 1e9:7.2f} GFLOP  {time.time() - started:5.1f} s",
              flush=True)
    COSTS_FILE.write_text(json.dumps(dict(sorted(cached.items())), separators=(",", ":")) + "\n")
    print(f"wrote {COSTS_FILE.relative_to(ROOT)}")


if __name__ == "__main__":
    np.random.seed(0)
    main()
