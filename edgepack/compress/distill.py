"""Knowledge distillation: a shallower student initialised from a subset of the teacher's layers, trained on unlabelled
text to match the teacher (pooled embeddings for feature-extraction, logits for text-classification).

Reproducible: seeds are fixed and batches are drawn from a seeded generator, so the same texts, spec and torch build
give the same weights. A time budget can cut training short; the number of steps actually run is recorded, and a
step budget alone is what makes two runs identical.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import UsageError

_SPEC_HELP = "e.g. --distill layers=3 or --distill layers=3,steps=2000,minutes=12,lr=1e-4,batch=32,seed=0"
# Files a sentence-transformers model folder carries besides the transformer itself (pooling, normalisation).
_SENTENCE_TRANSFORMERS_FILES = ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json",
                                "1_Pooling", "2_Normalize", "README.md")


@dataclass(frozen=True)
class DistillSpec:
    layers: int
    steps: int = 1000
    minutes: float | None = None  # a wall-clock cap on training; None = the step budget alone
    lr: float = 1e-4
    batch: int = 32
    max_length: int = 128
    temperature: float = 2.0  # text-classification: softened logits
    seed: int = 0


def parse_spec(text: str) -> DistillSpec:
    """`layers=3,steps=500,minutes=10` -> DistillSpec; a UsageError naming the bad part otherwise."""
    kinds = {"layers": int, "steps": int, "minutes": float, "lr": float, "batch": int, "max_length": int,
             "temperature": float, "seed": int}
    values: dict = {}
    for part in [p.strip() for p in str(text).split(",")]:
        key, sep, raw = part.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not raw.strip():
            raise UsageError(f"--distill: expected key=value, got {part!r}", _SPEC_HELP)
        if key not in kinds:
            raise UsageError(f"--distill: unknown setting {key!r}", f"choose from: {', '.join(kinds)}")
        if key in values:
            raise UsageError(f"--distill: {key} given twice", _SPEC_HELP)
        try:
            values[key] = kinds[key](raw.strip())
        except ValueError:
            raise UsageError(f"--distill: {key} must be a number, got {raw.strip()!r}", _SPEC_HELP) from None
        minimum = 0 if key == "seed" else 1 if kinds[key] is int else 0.0
        if values[key] < minimum or (kinds[key] is float and values[key] <= 0):
            raise UsageError(f"--distill: {key} must be positive, got {raw.strip()!r}", _SPEC_HELP)
    if "layers" not in values:
        raise UsageError("--distill: the number of student layers is required", _SPEC_HELP)
    return DistillSpec(**values)


def pick_layers(teacher_layers: int, student_layers: int) -> list[int]:
    """Evenly spaced teacher layers, always including the top one: 6 -> 3 keeps layers 1, 3 and 5."""
    if not 1 <= student_layers < teacher_layers:
        raise UsageError(f"--distill layers={student_layers}: the teacher has {teacher_layers} layers",
                         f"choose 1 to {teacher_layers - 1} student layers")
    return [round((i + 1) * teacher_layers / student_layers) - 1 for i in range(student_layers)]


def _layer_list(model):
    """The encoder's list of transformer blocks (BERT-like models: model.<base>.encoder.layer)."""
    base = getattr(model, model.base_model_prefix, model)
    for path in ("encoder.layer", "transformer.layer", "layers", "encoder.layers"):
        obj = base
        for attr in path.split("."):
            obj = getattr(obj, attr, None)
            if obj is None:
                break
        if obj is not None:
            return obj
    return None


def build_student(teacher, layers: list[int]):
    """A copy of `teacher` keeping only `layers` of its transformer blocks (embeddings and heads are kept whole)."""
    import copy

    import torch

    blocks = _layer_list(teacher)
    if blocks is None:
        raise UsageError(f"--distill does not know where {type(teacher).__name__} keeps its layers",
                         "supported: BERT-like encoders (encoder.layer)")
    student = copy.deepcopy(teacher)
    kept = torch.nn.ModuleList([copy.deepcopy(blocks[i]) for i in layers])
    base = getattr(student, student.base_model_prefix, student)
    holder = base.encoder if hasattr(base, "encoder") and hasattr(base.encoder, "layer") else base
    holder.layer = kept
    student.config.num_hidden_layers = len(layers)
    return student


def distill(task, texts: list[str], spec: DistillSpec, dest: Path, progress=None) -> dict:
    """Train a student for `task`'s source model on `texts`; save it as a model folder at `dest`. Returns the
    training record for the report. `progress` is edgepack's Progress (a bar over steps)."""
    import torch
    import transformers

    if len(texts) < 2:
        raise UsageError("--distill needs unlabelled text to train on", "pass --data FILE with a text column")
    teacher = task._load_torch(getattr(transformers, task.auto_model))
    torch.manual_seed(spec.seed)  # after loading, which seeds 0: the student's dropout follows spec.seed
    teacher_layers = int(teacher.config.num_hidden_layers)
    chosen = pick_layers(teacher_layers, spec.layers)
    student = build_student(teacher, chosen).train()
    for p in teacher.parameters():
        p.requires_grad_(False)
    classify = task.name == "text-classification"
    pooling = getattr(task, "pooling", "mean")
    from ..tasks.torch_module import Pooler

    pool = Pooler(pooling, normalize=False)  # the same pooling the exported graphs build in
    optim = torch.optim.AdamW(student.parameters(), lr=spec.lr, weight_decay=0.01)
    warm = max(1, spec.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(optim, lambda s: min(1.0, (s + 1) / warm) * max(0.05, 1 - s / spec.steps))
    rng = np.random.default_rng(spec.seed)
    batch = min(spec.batch, len(texts))
    deadline = time.monotonic() + spec.minutes * 60 if spec.minutes else None
    start, losses, steps_run, stopped = time.monotonic(), [], 0, "step budget"

    def loss_for(enc) -> torch.Tensor:
        with torch.no_grad():
            target = teacher(**enc)
        out = student(**enc)
        if classify:
            t = spec.temperature
            soft = torch.nn.functional.log_softmax(target.logits / t, -1)
            return torch.nn.functional.kl_div(torch.nn.functional.log_softmax(out.logits / t, -1), soft,
                                              log_target=True, reduction="batchmean") * t * t
        mask = enc["attention_mask"]
        want, got = pool(target, mask), pool(out, mask)  # the task's own pooling (cls, max, mean, mean_sqrt_len)
        cosine = torch.nn.functional.cosine_similarity(got, want, dim=-1).mean()
        # Match direction (what similarity search uses) and scale (what a probe or a distance threshold sees).
        return (1 - cosine) + torch.nn.functional.mse_loss(got, want) / want.pow(2).mean().clamp(min=1e-9)

    from ..progress import Progress

    progress = progress or Progress()
    with progress.bar(spec.steps, f"distilling {teacher_layers} -> {spec.layers} layers") as step:
        for _ in range(spec.steps):
            if deadline is not None and time.monotonic() > deadline:
                stopped = f"time budget ({spec.minutes:g} min)"
                break
            pick = rng.choice(len(texts), size=batch, replace=False)
            enc = task.tokenizer([texts[i] for i in pick], truncation=True, max_length=spec.max_length,
                                 padding=True, return_tensors="pt")
            loss = loss_for(dict(enc))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
            optim.step()
            sched.step()
            optim.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
            steps_run += 1
            step(1)

    save_student(student.eval(), task, dest)
    record = {"teacher_layers": teacher_layers, "student_layers": spec.layers, "layers_kept": chosen,
              "objective": "KL divergence on temperature-softened logits" if classify else
              f"1 - cosine + normalised MSE on {pooling}-pooled embeddings", "steps_run": steps_run,
              "stopped_by": stopped, "train_seconds": round(time.monotonic() - start, 1), "texts": len(texts),
              "loss_first": losses[0] if losses else None,
              "loss_last50_mean": float(np.mean(losses[-50:])) if losses else None,
              "teacher_parameters": sum(p.numel() for p in teacher.parameters()),
              "student_parameters": sum(p.numel() for p in student.parameters()), "spec": asdict(spec),
              "torch": torch.__version__}
    (dest / "distillation.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def save_student(student, task, dest: Path) -> None:
    """A model folder like the teacher's: weights (safetensors), config, tokenizer and sentence-transformers files."""
    dest.mkdir(parents=True, exist_ok=True)
    student.save_pretrained(str(dest), safe_serialization=True)
    task.tokenizer.save_pretrained(str(dest))
    for name in _SENTENCE_TRANSFORMERS_FILES:
        src = task.source.path / name
        if src.is_dir():
            shutil.copytree(src, dest / name, dirs_exist_ok=True)
        elif src.is_file():
            shutil.copyfile(src, dest / name)


def distill_for_pack(p, dest: Path, progress):
    """`pack --distill`: train on the unlabelled rows of the data file that are not evaluation samples, then
    return (the student's task, the training record)."""
    from ..registry import TASKS
    from ..source import resolve
    from .corpus import training_texts

    texts, origin = training_texts(p)
    progress.stage(f"Distilling: {p.distill.layers}-layer student on {origin}")
    record = distill(p.task, texts, p.distill, dest, progress)
    record["training_texts"] = origin
    student = TASKS.get(p.task.name)(resolve(str(dest)))
    return student, record
