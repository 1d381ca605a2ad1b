"""Targets export the source model to a file format and build that format's precisions: the contract (`Target`,
what it returns, `Exported`, and what the search varies, `Tuning`) is written down here, once.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import logging
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import MissingExtra


@dataclass
class ExportSettings:
    """What every target's export may need from the plan."""

    sequence_length: int
    buckets: list[int]  # fixed-shape targets: one entry point per sequence length
    opset: int | None = None
    calibration: list = field(default_factory=list)  # samples (texts, image paths) static quantization calibrates on
    calibration_origin: str = ""
    weight_only: dict = field(default_factory=dict)  # int8/int4-weight options (the recipe's `weight_only`)


@dataclass
class Exported:
    """What `Target.export` returns: the float program every precision of the target derives from, and what it was
    made from. `state` holds what the target's own `build` and `check` read back (a traced program, sample inputs,
    cached calibration); nothing else looks inside it."""

    folder: Path
    source: object  # source.Source
    task: object    # tasks.base.Task
    settings: ExportSettings
    state: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Tuning:
    """How a calibrated precision is built, as the accuracy-aware search varies it: the calibration sample size,
    the layers left in float, and the target's own knobs (e.g. calibration method) as sorted (name, value) pairs."""

    samples: int = 128
    exclude: tuple[str, ...] = ()
    knobs: tuple[tuple[str, object], ...] = ()

    def knob(self, name: str, default=None):
        return dict(self.knobs).get(name, default)

    def with_knob(self, name: str, value) -> "Tuning":
        return replace(self, knobs=tuple(sorted({**dict(self.knobs), name: value}.items())))

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in self.knobs] + [f"{self.samples} calibration samples"]
        if self.exclude:
            parts.append(f"{len(self.exclude)} layer(s) in float")
        return ", ".join(parts)


class Target:
    """The contract between the pipeline and a file format. One file per target subclasses this and registers with
    `@TARGETS.register(name)`; the registry finds the file itself. Heavy toolchains are imported inside methods.

    Class attributes:
      precisions  the precision names it builds (edgepack/precisions.py says what each means);
      suffix      the artifact's file suffix (".onnx"); runtime: the RUNTIMES name that executes it;
      tunable     precisions the accuracy-aware search can tune (calibrated ones: layers left in float, variants).

    The pipeline calls, in this order:
      require()                  check the optional toolchain is installed, or raise MissingExtra naming the extra
                                 (before any download);
      unsupported(source, task)  why this model cannot go to this target, known before exporting (None: it may);
      export(source, task, settings) -> Exported
                                 trace/convert once to the float program all precisions derive from; preflight of
                                 unsupported ops happens here (ExportError naming the op); it does not mutate the
                                 target: everything later steps need is in the returned record;
      build(precision, exported, dest, tuning=None) -> dict
                                 write one artifact to `dest`; returns how it was built (the report's `settings`);
                                 a precision that silently quantized nothing must raise (read the file back);
                                 `tuning` (tunable precisions only) sets calibration variant and layers in float;
      check(path, exported)      format checks on the written file: one detail line or [(check name, detail)];
                                 failures raise;
      inputs_outputs(path)       names, dtypes and shapes an app feeds and reads (the manifest);
      deployment(precision)      what an app's build must know beyond that (e.g. a minimum OS);
      runs_here()                why artifacts cannot execute on this host (None: they can; then accuracy, latency
                                 and memory are measured through the runtime, else only file checks and size gates).
    The search additionally calls default_tuning, tuning_variants, quantizable_layers and calibration_samples.
    """

    precisions: tuple[str, ...] = ()
    suffix = ""
    runtime = ""
    tunable: tuple[str, ...] = ()
    not_for_tasks: dict[str, tuple[str, ...]] = {}  # precision -> tasks it is not built for (plan leaves it out)

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)

    @staticmethod
    def require() -> None:
        """Check the target's optional toolchain is installed, or raise MissingExtra naming the extra."""

    @staticmethod
    def unsupported(source, task_name: str) -> str | None:
        """Why this model cannot go to this target, known before exporting; None when it may."""
        return None

    @staticmethod
    def runs_here() -> str | None:
        """Why artifacts of this target cannot execute on this host; None when they can."""
        return None

    def deployment(self, precision: str, exported: Exported | None = None) -> dict:
        """What an app's build must know beyond inputs and outputs (e.g. a minimum OS), for the manifest."""
        return {}

    def export(self, source, task, settings: ExportSettings) -> Exported:
        raise NotImplementedError

    def build(self, precision: str, exported: Exported, dest: Path, tuning: Tuning | None = None) -> dict:
        raise NotImplementedError

    def check(self, path: Path, exported: Exported):
        raise NotImplementedError

    @staticmethod
    def inputs_outputs(path: Path) -> dict:
        raise NotImplementedError

    # ---- what the accuracy-aware search needs of a tunable precision ----

    def default_tuning(self, precision: str) -> Tuning:
        return Tuning()

    def tuning_variants(self, tuning: Tuning) -> list[Tuning]:
        """`tuning` first, then the variants worth trying when it misses the accuracy limit."""
        return [tuning]

    def quantizable_layers(self, precision: str, exported: Exported) -> list[str]:
        """The layers the precision quantizes, by the names `Tuning.exclude` takes, in graph order."""
        return []

    def calibration_samples(self, exported: Exported, tuning: Tuning) -> list:
        """The samples a build with `tuning` calibrates on (the search scores candidates on other rows)."""
        return calibration_sample(exported.settings.calibration, tuning.samples)


def calibration_sample(samples: list, size: int, seed: int = 0) -> list:
    """The seeded sample of `size` calibration samples a calibrated precision uses."""
    import numpy as np

    return list(samples) if len(samples) <= size else [samples[i] for i in sorted(
        np.random.default_rng(seed).choice(len(samples), size=size, replace=False))]


def no_kv_cache(target: str, task_name: str) -> str | None:
    """`unsupported()` of the targets that export no decoder with a KV cache: text-generation, said before export."""
    if task_name == "text-generation":
        return f"the {target} target has no KV-cache export for text-generation yet; use --target onnx"
    return None


def require(what: str, extra: str, *modules: str) -> None:
    """Check that the toolchain a target needs is installed, or say which extra installs it. Found, not imported:
    importing litert-torch alone takes seconds, and a preflight (or a cached `matrix` run) needs none of it."""
    for module in modules:
        try:
            found = importlib.util.find_spec(module)
        except (ImportError, ValueError):  # a parent package missing, or a module stubbed out as None
            found = None
        if found is None:
            raise MissingExtra(f"{what} ({module})", extra)


@contextlib.contextmanager
def quiet_toolchain():
    """Exporters and quantizers warn at length about things edgepack checks itself; keep the terminal readable."""
    loggers = [logging.getLogger(name) for name in ("", "optimum", "onnxruntime", "coremltools",
                                                        "absl", "jax", "torch._export", "torch.export")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_level = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover - transformers is a core dependency
        hf_logging = None
    try:
        # Converters and quantizers also print progress bars and summaries of their own; the report has the numbers.
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
        if hf_logging is not None:
            hf_logging.set_verbosity(hf_level)
