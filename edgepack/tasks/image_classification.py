"""Image classification: images in (the model's own preprocessing), logits out; fidelity is top-1 agreement with the
source model and top-5 overlap, and accuracy when the images' folders name classes in config.json's id2label."""

from __future__ import annotations

import numpy as np

from ..errors import DataError
from ..registry import TASKS
from .base import preprocessor_errors
from .text_classification import TextClassification


@TASKS.register("image-classification")
class ImageClassification(TextClassification):
    optimum_task = "image-classification"
    auto_model = "AutoModelForImageClassification"
    data_kind = "image"
    input_names = ("pixel_values",)
    accuracy_details = TextClassification.accuracy_details + ("top5_overlap",)

    def __init__(self, source):
        super().__init__(source)
        self._processor = None

    @classmethod
    def matches(cls, source) -> bool:
        return any(a.endswith("ForImageClassification") for a in source.config.get("architectures") or [])

    def describe_output(self) -> str:
        return "logits: one score per class; labels in config.json id2label; preprocessing in preprocessor_config.json"

    @property
    def processor(self):
        if self._processor is None:
            from transformers import AutoImageProcessor

            with preprocessor_errors(self.source, "image processor"):
                self._processor = AutoImageProcessor.from_pretrained(str(self.source.path))
        return self._processor

    @property
    def max_length(self) -> int:
        return 1 << 30  # no sequence axis

    def save_preprocessor(self, dest) -> None:
        import shutil

        self.processor.save_pretrained(str(dest))
        shutil.copyfile(self.source.path / "config.json", dest / "config.json")

    def encode(self, images: list[str], max_length: int = 0, pad_to_max: bool = False) -> dict[str, np.ndarray]:
        from PIL import Image

        try:
            loaded = [Image.open(path).convert("RGB") for path in images]
        except OSError as exc:
            raise DataError(f"cannot read image: {exc}") from exc
        return {"pixel_values": self.processor(images=loaded, return_tensors="np")["pixel_values"].astype(np.float32)}

    def workload_lengths(self, images: list[str], max_length: int) -> dict | None:
        return None  # images have one size: the latency at it is the workload's

    def latency_inputs(self, images: list[str], seq_len: int) -> dict[str, np.ndarray]:
        return self.encode(images[:1])

    def torch_module(self):
        import transformers

        from .torch_module import ImageModule

        return ImageModule(self._load_torch(getattr(transformers, self.auto_model))).eval()

    def sample_inputs(self, length: int) -> dict:
        import torch

        shape = self.encode_shape()
        return {"pixel_values": torch.zeros(*shape, dtype=torch.float32)}

    def encode_shape(self) -> tuple[int, ...]:
        """The preprocessed image shape (1, channels, height, width), from the processor's settings."""
        size = self.processor.crop_size if getattr(self.processor, "do_center_crop", False) else self.processor.size
        height = size.get("height") or size.get("shortest_edge")
        width = size.get("width") or size.get("shortest_edge")
        return (1, int(self.source.config.get("num_channels", 3)), int(height), int(width))

    def compare(self, reference, candidate, labels):
        """Also the top-5 overlap: the share of the source's 5 best classes among the artifact's 5 best (a photo app
        shows its top guesses, not one)."""
        accuracy = super().compare(reference, candidate, labels)
        k = min(5, reference.shape[1])
        ref5, cand5 = np.argsort(-reference, axis=1)[:, :k], np.argsort(-candidate, axis=1)[:, :k]
        overlap = [len(set(r) & set(c)) / k for r, c in zip(ref5.tolist(), cand5.tolist())]
        accuracy.details["top5_overlap"] = float(np.mean(overlap))
        return accuracy
