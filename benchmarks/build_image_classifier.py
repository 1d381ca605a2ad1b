"""An image classifier with trained weights, for the image-classification benchmarks: no PyPI package carries a
pretrained ImageNet model or a labelled photo set, so a small MobileNetV2 (the mobilenet-v2 recipe's model type) is
trained here on scikit-learn's bundled digits (1,797 real 8x8 grey handwritten digits, 10 classes), upscaled to
32x32 RGB PNGs in the ImageFolder layout edgepack's `--data FOLDER` reads (one subfolder per class, named as in
id2label). Not an ImageNet model: trained weights and batch norms (what int8 has to keep) on tiny images. A seeded
20% of the digits is held out; training reads the same PNGs through the model's own image processor.

    flock /tmp/edgepack-heavy.lock .venv/bin/python benchmarks/build_image_classifier.py [--epochs 30]

Writes (once; later calls reuse it) to $EDGEPACK_CACHE/digits-mobilenet-v2: model/, train/, heldout/, train.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_tweet_classifier import SEED, publish  # noqa: E402 - the same seed and publish-once

SIZE = 32  # pixels; the 8x8 digits upscaled 4x
LABELS = [str(d) for d in range(10)]
# MobileNetV2 with half the channels at 32x32 input: ~0.7M parameters, a few seconds an epoch on 2 cores.
CONFIG = dict(image_size=SIZE, depth_multiplier=0.5, num_channels=3)


def cache_dir() -> Path:
    return Path(os.environ.get("EDGEPACK_CACHE", Path.home() / ".cache" / "edgepack")) / "digits-mobilenet-v2"


def write_folders(dest: Path) -> tuple[list[Path], list[Path]]:
    """The digits as PNGs under dest/train/<label>/ and dest/heldout/<label>/; the held-out 20% is a seeded draw."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(SEED).permutation(len(digits.target))
    held = set(order[: len(order) // 5].tolist())
    paths = {"train": [], "heldout": []}
    for i, (image, label) in enumerate(zip(digits.images, digits.target)):
        part = "heldout" if i in held else "train"
        folder = dest / part / LABELS[label]
        folder.mkdir(parents=True, exist_ok=True)
        grey = Image.fromarray((image * (255 / 16)).astype(np.uint8))  # the digits' pixels are 0..16
        grey.resize((SIZE, SIZE), Image.BILINEAR).convert("RGB").save(folder / f"{i:04d}.png")
        paths[part].append(folder / f"{i:04d}.png")
    return paths["train"], paths["heldout"]


def _tensors(processor, files: list[Path]):
    import torch
    from PIL import Image

    pixels = processor(images=[Image.open(f).convert("RGB") for f in files], return_tensors="pt")["pixel_values"]
    return pixels, torch.tensor([LABELS.index(f.parent.name) for f in files])


def build(dest: Path, epochs: int, batch: int, lr: float, threads: int) -> dict:
    import torch
    from transformers import MobileNetV2Config, MobileNetV2ForImageClassification, MobileNetV2ImageProcessor

    torch.manual_seed(SEED)
    torch.set_num_threads(threads)
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    train_files, held_files = write_folders(partial)
    # The model's own processor at this size: resize to 32, centre crop 32 (a no-op here), scale, normalise.
    processor = MobileNetV2ImageProcessor(size={"shortest_edge": SIZE}, crop_size={"height": SIZE, "width": SIZE})
    config = MobileNetV2Config(**CONFIG, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
                               label2id={n: i for i, n in enumerate(LABELS)})
    model = MobileNetV2ForImageClassification(config)
    x, y = _tensors(processor, train_files)
    hx, hy = _tensors(processor, held_files)
    optim = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(optim, max_lr=lr, total_steps=epochs * -(-len(y) // batch))
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(y)).split(batch):
            loss = torch.nn.functional.cross_entropy(model(pixel_values=x[idx]).logits, y[idx])
            loss.backward()
            optim.step()
            sched.step()
            optim.zero_grad()
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        held_accuracy = float((model(pixel_values=hx).logits.argmax(1) == hy).float().mean())

    (partial / "model").mkdir()
    model.save_pretrained(str(partial / "model"), safe_serialization=True)
    processor.save_pretrained(str(partial / "model"))
    (partial / "model" / "README.md").write_text(
        "---\nlicense: bsd-3-clause\n---\n# MobileNetV2 (depth 0.5, 32x32) trained on scikit-learn's digits\n\n"
        "Built by edgepack's benchmarks/build_image_classifier.py for evaluation only; not an ImageNet model.\n")
    info = {"data": "sklearn.datasets.load_digits, upscaled 8x8 -> 32x32 RGB", "config": CONFIG, "seed": SEED,
            "epochs": epochs, "batch": batch, "lr": lr, "threads": threads, "train_images": len(train_files),
            "heldout_images": len(held_files), "train_seconds": round(seconds, 1),
            "final_loss": float(loss.detach()), "heldout_accuracy": round(held_accuracy, 4),
            "parameters": sum(p.numel() for p in model.parameters()), "torch": torch.__version__}
    return publish(partial, dest, info)


def ensure(epochs: int = 30, rebuild: bool = False) -> Path:
    """The cached folder (model/, train/, heldout/); batch 64, one-cycle lr 3e-3, 2 threads."""
    if rebuild or not (cache_dir() / "train.json").is_file():
        build(cache_dir(), epochs, batch=64, lr=3e-3, threads=2)
    return cache_dir()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    print((ensure(args.epochs, args.rebuild) / "train.json").read_text())


if __name__ == "__main__":
    main()
