"""The source model as the TFLite and Core ML converters take it: named int32 inputs, the task's post-processing
inside, a dict of named outputs. Imported only by targets that convert from PyTorch (it imports torch)."""

from __future__ import annotations

import inspect

import torch


class TextModule(torch.nn.Module):
    """Token ids and attention mask in (int32, what mobile tokenizers produce), {output_name: head(...)} out.
    token_type_ids, when the model takes them, are zeros: one text segment, as the ONNX artifacts assume too."""

    def __init__(self, model: torch.nn.Module, head: torch.nn.Module, output_name: str):
        super().__init__()
        self.model, self.head, self.output_name = model, head, output_name
        self.takes_token_types = "token_type_ids" in inspect.signature(model.forward).parameters

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        ids, mask = input_ids.long(), attention_mask.long()
        if self.takes_token_types:
            raw = self.model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids))
        else:
            raw = self.model(input_ids=ids, attention_mask=mask)
        return {self.output_name: self.head(raw, mask)}


class Pooler(torch.nn.Module):
    """sentence-transformers' pooling (and normalisation) over last_hidden_state, as graph ops; mirrors
    feature_extraction._pool in numpy."""

    def __init__(self, mode: str, normalize: bool):
        super().__init__()
        self.mode, self.normalize = mode, normalize

    def forward(self, raw, mask: torch.Tensor) -> torch.Tensor:
        hidden = raw.last_hidden_state
        m = mask.unsqueeze(-1).to(hidden.dtype)
        if self.mode == "cls":
            pooled = hidden[:, 0]
        elif self.mode == "max":
            pooled = hidden.masked_fill(m == 0, -1e9).amax(dim=1)
        else:
            count = m.sum(dim=1).clamp(min=1e-9)
            pooled = (hidden * m).sum(dim=1) / (count.sqrt() if self.mode == "mean_sqrt_len" else count)
        return torch.nn.functional.normalize(pooled, p=2.0, dim=1) if self.normalize else pooled


class Logits(torch.nn.Module):
    def forward(self, raw, mask: torch.Tensor) -> torch.Tensor:
        return raw.logits


def sample_ids(names: tuple[str, ...], length: int) -> dict[str, torch.Tensor]:
    """Shape-fixing sample inputs for export (values do not matter to the converters)."""
    return {name: torch.ones(1, length, dtype=torch.int32) for name in names}


class ImageModule(torch.nn.Module):
    """pixel_values (float32, preprocessed as the model's image processor does) in, {"logits": ...} out."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.model(pixel_values=pixel_values).logits}


class SpanLogits(torch.nn.Module):
    """Extractive question answering's start and end scores as one output, [batch, tokens, 2]: converted files
    (TFLite, ExecuTorch) carry one named output per entry point."""

    def forward(self, raw, mask: torch.Tensor) -> torch.Tensor:
        return torch.stack([raw.start_logits, raw.end_logits], dim=-1)


class SegmentModule(TextModule):
    """TextModule for text pairs on BERT-style models: token_type_ids are an input (1 marks the second text, e.g.
    a question's context), not zeros."""

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        raw = self.model(input_ids=input_ids.long(), attention_mask=attention_mask.long(),
                         token_type_ids=token_type_ids.long())
        return {self.output_name: self.head(raw, attention_mask.long())}
