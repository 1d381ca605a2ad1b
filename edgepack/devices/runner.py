"""Self-contained runner copied to a device by edgepack (no edgepack import): times one model file with the device's
own onnxruntime or LiteRT and saves its outputs.

python3 runner.py MODEL INPUTS.npz OUT.npz THREADS WARMUP RUNS [SIGNATURE]
INPUTS.npz holds `timing/<input>` (the timed feed) and `sample<i>/<input>` (feeds whose outputs come back).
Prints one JSON line: p50/p90 ms, runs, threads, peak RSS in decimal MB (and the RSS before the runtime was
imported), runtime and version. Exit 3 with "missing runtime: ..." on stderr when the runtime is not installed.
"""

import json
import resource
import sys
import time


def rss_mb(field="VmHWM"):
    """Decimal MB, as edgepack's host probe counts them. VmHWM (peak RSS) starts afresh at exec; getrusage's
    ru_maxrss would carry over the peak of the shell that started this process."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS, kB elsewhere
    return (maxrss if sys.platform == "darwin" else maxrss * 1024) / 1e6


def onnx_runner(path, threads, signature):
    try:
        import onnxruntime as ort
    except ImportError:
        sys.stderr.write("missing runtime: onnxruntime (pip install onnxruntime on the device)\n")
        sys.exit(3)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return (lambda feeds: dict(zip(names, session.run(names, feeds)))), "onnxruntime", ort.__version__


def tflite_runner(path, threads, signature):
    try:
        from ai_edge_litert.interpreter import Interpreter
        import ai_edge_litert as module
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
            import tflite_runtime as module
        except ImportError:
            sys.stderr.write("missing runtime: ai_edge_litert (pip install ai-edge-litert on the device)\n")
            sys.exit(3)
    interpreter = Interpreter(model_path=path, num_threads=threads)
    signatures = interpreter.get_signature_list()
    runner = interpreter.get_signature_runner(signature or next(iter(signatures)))
    return (lambda feeds: runner(**feeds)), "litert", getattr(module, "__version__", "?")


def local_outputs(model, feeds, signature=None):
    """The outputs of one run of `model` on this machine, the same way the device runs it."""
    make = tflite_runner if model.endswith(".tflite") else onnx_runner
    run, _, _ = make(model, 1, signature)
    return run(feeds)


def main():
    model, inputs, out, threads, warmup, runs = sys.argv[1:7]
    signature = sys.argv[7] if len(sys.argv) > 7 else None
    threads, warmup, runs = int(threads), int(warmup), int(runs)
    import numpy as np

    before = rss_mb("VmRSS")
    make = tflite_runner if model.endswith(".tflite") else onnx_runner
    run, runtime, version = make(model, threads, signature)
    data = np.load(inputs)
    groups = {}
    for key in data.files:
        group, name = key.split("/", 1)
        groups.setdefault(group, {})[name] = data[key]
    timing = groups.pop("timing")
    for _ in range(warmup):
        run(timing)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run(timing)
        times.append((time.perf_counter() - start) * 1e3)
    outputs = {}
    for group in sorted(groups, key=lambda g: int(g[6:])):
        for name, value in run(groups[group]).items():
            outputs[f"{group}/{name}"] = np.asarray(value)
    np.savez(out, **outputs)
    # The same percentiles as the host probe (numpy's linear interpolation), so host and device rows compare.
    print(json.dumps({"p50": float(np.percentile(times, 50)), "p90": float(np.percentile(times, 90)), "runs": runs, "warmup": warmup, "threads": threads,
                      "peak_rss_mb": rss_mb(), "rss_before_runtime_mb": before, "runtime": runtime,
                      "runtime_version": version, "python": sys.version.split()[0]}))


if __name__ == "__main__":
    main()
