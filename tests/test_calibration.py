"""The calibrated estimate: the fit and its leave-one-out error, shipped data, `estimate`, `calibrate`, host profile."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml

from edgepack.estimate import host as host_mod
from edgepack.estimate.data import COST_KEYS, Measurement, model_costs, published
from edgepack.estimate.predict import error_for, shipped_fit
from edgepack.estimate.fit import (Params, Table, _prior, error_summary, fit, leave_device_out, leave_model_out,
                                      leave_one_out, predict_log)
from edgepack.cli import main
from edgepack.estimate.opcost import OpCost
from edgepack.devices import list_profiles, load_profile
from edgepack.estimate.predict import estimate_latency

def _cli(capsys, *args) -> tuple[int, str, str]:
    code = 0
    try:
        main(list(map(str, args)))
    except SystemExit as done:
        code = done.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


# ---- the fit, on a synthetic table whose answer is known ----------------------------------------------------------

DEVICES = ["raspberry-pi-4", "raspberry-pi-5", "jetson-nano"]
TRUE_OFFSETS = {"device:raspberry-pi-4": 0.3, "device:raspberry-pi-5": -0.2, "device:jetson-nano": 0.1,
                "runtime:fast": -0.4, "runtime:slow": 0.5}


def _synthetic(outlier: float = 1.0) -> list[Measurement]:
    rng = np.random.default_rng(0)
    shapes = [[("conv", int(f), int(b), n, "fp32"), ("depthwise", int(f) // 20, int(b), n, "fp32"),
               ("elementwise", 0, int(b) // 2, 2 * n, "fp32")]
              for f, b, n in zip(rng.uniform(2e7, 2e8, 6), rng.uniform(1e5, 5e6, 6), rng.integers(5, 40, 6))]
    rows = [Measurement(device=d, runtime=r, threads=t, precision="fp32", latency_ms=1.0, ops=tuple(map(tuple, s)))
            for d in DEVICES for r in ("fast", "slow") for t in (1, 4) for s in shapes]
    truth = Params(_prior(), TRUE_OFFSETS)
    table = Table(rows)
    latency = np.exp(predict_log(table, truth)) * 1e3
    latency[0] *= outlier
    return [Measurement(**{**m.__dict__, "latency_ms": float(v)}) for m, v in zip(rows, latency)]


def test_fit_recovers_a_known_model_and_leave_one_out_is_small():
    table = Table(_synthetic())
    params = fit(table)
    predicted = np.exp(predict_log(table, params) - table.log_y)
    assert np.allclose(predicted, 1.0, atol=0.02)  # ridge shrinks the offsets a little, the shape absorbs it
    loo = leave_one_out(table, params)
    assert np.all(np.abs(np.exp(loo) - 1) < 0.05)
    summary = error_summary(loo)
    assert summary["n"] == len(table.rows) and summary["within_25pct"] == 1.0


def test_leave_one_out_exposes_an_outlier():
    table = Table(_synthetic(outlier=3.0))
    loo = leave_one_out(table)
    assert abs(np.exp(loo[0]) - 1 / 3) < 0.1  # predicted from the others: about a third of the (tripled) measurement
    assert np.median(np.abs(np.exp(loo[1:]) - 1)) < 0.1


def test_error_summary_figures():
    errors = np.log([1.1, 0.8, 1.5, 1.0])
    summary = error_summary(errors)
    assert summary["within_25pct"] == 0.75 and math.isclose(summary["median_abs_error_pct"], 15.0)
    # four errors: the small-sample widening takes the range out to the extremes, asymmetric
    assert math.isclose(summary["log_error_low"], math.log(0.8)) and math.isclose(summary["log_error_high"],
                                                                                   math.log(1.5))
    assert math.isclose(summary["range_log_halfwidth"], math.log(1.5))
    many = np.random.default_rng(0).normal(0.2, 0.1, 2000)  # biased errors: the range is not centred on 0
    wide = error_summary(many)
    assert 0.0 < wide["log_error_low"] < 0.1 < 0.3 < wide["log_error_high"] < 0.4


def test_leave_model_out_holds_every_row_of_a_network_out():
    """A network whose rows are all 2x slower than the model says: leave-one-row-out lets its other rows teach the
    offsets nothing (no per-network term) but leave-one-model-out must not see any of them either."""
    rows = _synthetic()
    slow = [Measurement(**{**m.__dict__, "latency_ms": m.latency_ms * 2, "cost_key": "", "source": "slow-net"})
            for m in rows[:6]]
    others = [Measurement(**{**m.__dict__, "source": f"net-{i % 6}"}) for i, m in enumerate(rows[6:])]
    table = Table(slow + others)
    lomo = leave_model_out(table)
    assert np.all(np.abs(lomo[:6] - math.log(0.5)) < 0.15)  # predicted from the others: half the measurement
    loo = leave_one_out(table)
    assert np.all(np.abs(loo[:6]) < np.abs(lomo[:6]) - 0.05)  # its siblings pull the offsets: memorisation
    lodo = leave_device_out(table)
    assert lodo.shape == (len(table.rows),) and np.all(np.isfinite(lodo))


def test_core_types_map_to_families():
    from edgepack.estimate.cores import core_of

    assert core_of("Kryo 485 Gold (Cortex-A76 derived), 1x 2.84 GHz") == ("cortex-a76", "arm-v8.2")
    assert core_of("1x Cortex-X3 @ 3.2 GHz + 2x A715") == ("cortex-x3", "arm-v9")
    assert core_of("Cortex-A72") == ("cortex-a72", "arm-v8.0")
    assert core_of("Firestorm")[1] == "apple" and core_of("Willow Cove")[1] == "x86"
    assert core_of("Intel(R) Xeon(R) Platinum")[1] == "x86" and core_of("mystery")[1] == "unknown"


# ---- shipped data -------------------------------------------------------------------------------------------------

def test_published_rows_have_costs_profiles_and_sources():
    rows = published()
    assert len(rows) >= 250
    profiles = set(list_profiles())
    for m in rows:
        assert m.cost_key in model_costs() and m.device in profiles and m.source.startswith("http")
        assert m.latency_ms > 0 and m.threads >= 1 and m.precision in ("fp32", "fp16", "int8")
    assert set(model_costs()) == set(COST_KEYS)


def test_every_profile_has_a_stated_error():
    fit_data = shipped_fit()
    assert fit_data["errors"]["overall"]["n"] == len(published())
    for name in list_profiles():
        for runtime in ("xnnpack", "onnxruntime"):
            error = error_for(load_profile(name), runtime)
            assert error["n"] >= 8 and error["range_log_halfwidth"] > 0 and error["basis"]
            assert error["log_error_low"] < 0 < error["log_error_high"]
            assert ("leave-one-model-out" in error["basis"]) != ("leave-device-out" in error["basis"])
    # the shipped ranges are held-out-model errors, wider than the leave-one-row-out ones
    errors = fit_data["errors"]
    assert errors["overall"]["within_25pct"] <= errors["leave-one-row-out"]["within_25pct"]
    assert errors["leave-device-out"]["median_abs_error_pct"] > errors["overall"]["median_abs_error_pct"]


def test_a_device_without_rows_uses_its_core_family_and_says_so():
    names = {m.device for m in published()}
    without = [n for n in list_profiles() if n not in names]
    assert "dell-precision-5560" in without
    profile = load_profile("dell-precision-5560")
    error = error_for(profile, "xnnpack")
    assert "leave-device-out over x86 devices" in error["basis"] and "no published rows" in error["basis"]
    with_rows = error_for(load_profile("core-i7-11800h-laptop"), "xnnpack")
    assert "leave-one-model-out" in with_rows["basis"]
    costs = [OpCost("mm", "MatMul", "matmul", 10**9, 10**6, "fp32")]
    same_cores = [estimate_latency(costs, load_profile(n)) for n in ("dell-precision-5560", "core-i7-11800h-laptop")]
    assert "no published measurements for this device" in same_cores[0].note
    assert same_cores[0].high_ms / same_cores[0].low_ms > same_cores[1].high_ms / same_cores[1].low_ms


def test_devices_show_prints_the_leave_one_out_error(capsys):
    code, out, _ = _cli(capsys, "devices", "show", "raspberry-pi-4")
    assert code == 0
    assert "estimate_error" in out and "within +-25%" in out and "leave-one-model-out" in out


# ---- estimate -----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 16, 3, padding=1)
            self.dw = torch.nn.Conv2d(16, 16, 3, padding=1, groups=16)
            self.fc = torch.nn.Linear(16, 10)

        def forward(self, x):
            return self.fc(torch.relu(self.dw(self.conv(x))).mean((2, 3)))

    folder = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(0)
    net, x = Net().eval(), torch.randn(1, 3, 32, 32)
    onnx_path = folder / "net.onnx"
    torch.onnx.export(net, (x,), str(onnx_path), input_names=["image"], opset_version=17, dynamo=False)
    litert_torch = pytest.importorskip("litert_torch")
    tflite_path = folder / "net.tflite"
    litert_torch.convert(net, (x,)).export(str(tflite_path))
    flops = 2 * 32 * 32 * 16 * 27 + 2 * 32 * 32 * 16 * 9 + 2 * 16 * 10
    return {"onnx": onnx_path, "tflite": tflite_path, "flops": flops, "folder": folder}


@pytest.mark.parametrize("kind, runtime", [("onnx", "onnxruntime"), ("tflite", "xnnpack")])
def test_estimate_cli_on_any_file(tiny_files, capsys, kind, runtime):
    code, out, _ = _cli(capsys, "estimate", tiny_files[kind], "--device", "raspberry-pi-4", "--json")
    result = json.loads(out)
    assert code == 0 and result["runtime"] == runtime and result["threads"] == 4
    assert 0 < result["low_ms"] < result["estimate_ms"] < result["high_ms"]
    assert math.isclose(sum(result["by_class_ms"].values()), result["estimate_ms"], rel_tol=1e-9)
    assert {"conv", "depthwise", "matmul"} <= set(result["by_class_ms"])
    conv_gflops = 2 * 32 * 32 * 16 * 27 / 1e9
    assert result["gflops"] >= conv_gflops
    code, text, _ = _cli(capsys, "estimate", tiny_files[kind], "--device", "raspberry-pi-4", "--threads", "1")
    assert code == 0 and "1 threads" in text and "range" in text and "conv" in text


def test_tflite_costs_are_analytic(tiny_files):
    from edgepack.estimate.count import count_costs

    costs = count_costs(tiny_files["tflite"], {})
    by_type = {c.op_type: c for c in costs}
    assert by_type["CONV_2D"].flops == 2 * 32 * 32 * 16 * 27
    assert by_type["DEPTHWISE_CONV_2D"].flops == 2 * 32 * 32 * 16 * 9
    assert by_type["FULLY_CONNECTED"].flops == 2 * 10 * 16
    assert all(c.precision == "fp32" for c in costs)


def test_tflite_int4_weights_are_dequantized_on_every_run_int8_at_load(tiny_files, tmp_path):
    """XNNPACK folds constant fp16/int8 DEQUANTIZE at load but does not take int4: the interpreter expands int4
    weights on every run (measured: MiniLM's int4-weight file runs 5x slower than its fp32), so only those cost."""
    from ai_edge_quantizer import quantizer, recipe

    from edgepack.estimate.count import count_costs

    dequantized = {}
    for bits, built in [(8, recipe.weight_only_wi8_afp32()), (4, recipe.weight_only_wi4_afp32())]:
        out = tmp_path / f"w{bits}.tflite"
        quantizer.Quantizer(str(tiny_files["tflite"]), built).quantize().export_model(str(out), overwrite=True)
        dequantized[bits] = [c for c in count_costs(out, {}) if c.op_type == "DEQUANTIZE"]
    assert dequantized[8] == []
    assert dequantized[4] and all(c.kernel_class == "quantize" and c.flops > 0 for c in dequantized[4])


def _four_positions(folder):
    """An ONNX graph with a dynamic sequence axis that only runs at length 4 (like a model's position table)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["ids", "positions"], ["out"])], "four",
        [helper.make_tensor_value_info("ids", TensorProto.FLOAT, [1, "sequence"])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor("positions", TensorProto.FLOAT, [1, 4], [0.0] * 4)])
    path = folder / "four.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_onnx_static_int8_qdq_matmuls_are_costed_as_int8_kernels(tiny_files, tmp_path):
    """onnxruntime fuses DequantizeLinear -> MatMul/Gemm/Conv into one int8 kernel when it loads a QDQ model: no
    float matmul and no per-run weight dequantization to pay (the MiniLM classifier's estimate was 3x too slow)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    from edgepack.estimate.count import count_costs

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.feeds = iter([{"image": np.random.default_rng(i).standard_normal((1, 3, 32, 32), np.float32)}
                               for i in range(4)])

        def get_next(self):
            return next(self.feeds, None)

    qdq = tmp_path / "qdq.onnx"
    quantize_static(str(tiny_files["onnx"]), str(qdq), Reader(), quant_format=QuantFormat.QDQ, per_channel=True)
    feed = {"image": np.zeros((1, 3, 32, 32), np.float32)}
    costs, float_costs = count_costs(qdq, feed), count_costs(tiny_files["onnx"], feed)
    heavy = [c for c in costs if c.op_type in ("Conv", "Gemm", "MatMul")]
    assert heavy and all(c.precision == "int8" for c in heavy)
    assert sum(c.flops for c in heavy) == sum(c.flops for c in float_costs if c.op_type in ("Conv", "Gemm", "MatMul"))
    import onnx

    graph = onnx.load(str(qdq)).graph
    feeding = {i for n in graph.node if n.op_type in ("Conv", "Gemm", "MatMul") for i in n.input}
    units = {n.name for n in graph.node if n.op_type == "DequantizeLinear" and n.output[0] in feeding}
    assert units and not units & {c.name for c in costs}  # their dequantization is part of the int8 kernels


def test_estimate_errors_are_one_line(tiny_files, capsys, tmp_path):
    (tmp_path / "model.bin").write_bytes(b"x")
    (tmp_path / "fake.tflite").write_bytes(b"not a flatbuffer")
    (tmp_path / "fake.onnx").write_bytes(b"not a protobuf")
    for args, words in [((tmp_path / "missing.onnx", "--device", "raspberry-pi-4"), "not found"),
                        ((tmp_path / "model.bin", "--device", "raspberry-pi-4"), "cannot estimate"),
                        ((tmp_path, "--device", "raspberry-pi-4"), "is a folder"),
                        ((tmp_path / "fake.tflite", "--device", "raspberry-pi-4"), "not a TFLite flatbuffer"),
                        ((tmp_path / "fake.onnx", "--device", "raspberry-pi-4"), "cannot read the ONNX model"),
                        ((_four_positions(tmp_path), "--device", "raspberry-pi-4", "--sequence-length", "7"),
                         "could not run the model"),
                        ((tiny_files["onnx"], "--device", "raspberry-pi-9"), "unknown device")]:
        code, _, err = _cli(capsys, "estimate", *args)
        assert code == 2 and words in err and err.count("\n") == 1


def test_estimate_states_the_threads_it_counts(tiny_files, capsys):
    code, out, _ = _cli(capsys, "estimate", tiny_files["onnx"], "--device", "raspberry-pi-4", "--threads", "64",
                        "--json")
    result = json.loads(out)
    assert code == 0 and result["threads"] == 4 and "64 asked for" in result["note"]


def test_more_threads_and_faster_devices_are_faster(tiny_files):
    from edgepack.estimate.user import file_costs

    costs = file_costs(tiny_files["onnx"])
    pi4 = load_profile("raspberry-pi-4")
    times = [estimate_latency(costs, pi4, t).estimate_ms for t in (1, 2, 4)]
    assert times[0] > times[1] > times[2]


# ---- calibrate ----------------------------------------------------------------------------------------------------

def test_calibrate_refits_the_device_and_the_profile_is_usable(tiny_files, capsys, tmp_path):
    (tmp_path / "results.csv").write_text(f"file,latency_ms,threads\n{tiny_files['onnx']},0.8,1\n"
                                          f"{tiny_files['onnx']},0.3,4\n{tiny_files['onnx']},0.5,2\n")
    out = tmp_path / "my-pi.yaml"
    before = estimate_latency(_costs(tiny_files), load_profile("raspberry-pi-4"), 1).estimate_ms
    code, text, _ = _cli(capsys, "calibrate", "--device", "raspberry-pi-4", tmp_path / "results.csv", "--out", out)
    assert code == 0 and "leave-one-out over your 3 rows" in text
    profile = load_profile(str(out))
    assert profile.calibration is not None and profile.calibration.error.n == 3
    after = estimate_latency(_costs(tiny_files), profile, 1).estimate_ms
    assert abs(math.log(after / 0.8)) < abs(math.log(before / 0.8))  # moved towards the user's measurement
    assert "results.csv" in error_for(profile, "onnxruntime")["basis"]
    code, _, err = _cli(capsys, "calibrate", "--device", "raspberry-pi-4", tmp_path / "results.csv", "--out", out)
    assert code == 2 and "exists" in err


def test_calibrate_out_that_cannot_be_written_is_one_line_and_leaves_nothing(tiny_files, capsys, tmp_path):
    (tmp_path / "results.csv").write_text(f"file,latency_ms,threads\n{tiny_files['onnx']},0.8,1\n")
    (tmp_path / "a-folder").mkdir()
    for out, words in [(tmp_path / "a-folder", "is a folder"), (tmp_path / "no" / "pi.yaml", "does not exist")]:
        before = sorted(tmp_path.rglob("*"))
        code, _, err = _cli(capsys, "calibrate", "--device", "raspberry-pi-4", tmp_path / "results.csv", "--out",
                            out, "--force")
        assert code == 2 and words in err and err.count("\n") == 1
        assert sorted(tmp_path.rglob("*")) == before


def _costs(tiny_files):
    from edgepack.estimate.user import file_costs

    return file_costs(tiny_files["onnx"])


@pytest.mark.parametrize("body, words", [
    ("file,threads\nnet.onnx,1\n", "missing column latency_ms"),
    ("file,latency_ms,threads,colour\nnet.onnx,1,1,red\n", "unknown column 'colour'"),
    ("file,latency_ms,threads\nnet.onnx,1,1\nnet.onnx,fast,1\n", "row 3, column latency_ms: 'fast' is not a number"),
    ("file,latency_ms,threads\nnet.onnx,-2,1\n", "row 2, column latency_ms: -2 must be > 0"),
    ("file,latency_ms,threads\nnet.onnx,1,0\n", "row 2, column threads: 0 must be >= 1"),
    ("file,latency_ms,threads\nnet.onnx,1,2.5\n", "row 2, column threads: '2.5' is not an integer"),
    ("file,latency_ms,threads\nmissing.onnx,1,1\n", "row 2, column file"),
    ("file,latency_ms,threads\nnet.onnx,1\n", "row 2: expected 3 cells"),
    ("file,latency_ms,threads\n", "no measurements"),
])
def test_malformed_calibration_csv_is_one_line_naming_row_and_column(tiny_files, capsys, tmp_path, body, words):
    csv_path = tiny_files["folder"] / f"bad-{abs(hash(body))}.csv"
    csv_path.write_text(body)
    code, _, err = _cli(capsys, "calibrate", "--device", "raspberry-pi-4", csv_path, "--out", tmp_path / "o.yaml")
    assert code == 2 and words in err and err.count("\n") == 1
    assert not (tmp_path / "o.yaml").exists()


# ---- host profile -------------------------------------------------------------------------------------------------

def test_host_profile_is_measured_once_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEPACK_CACHE", str(tmp_path))
    calls = []
    real = host_mod.measure
    monkeypatch.setattr(host_mod, "measure", lambda cores: calls.append(cores) or real(cores))
    first = host_mod.host_profile()
    second = host_mod.host_profile()
    assert len(calls) == 1 and first == second
    cached = json.loads((tmp_path / "host.json").read_text())
    assert cached["gemm_gflops_1_thread"] > 0.5 and cached["int8_gemm_gflops_all_cores"] > 0.5 and cached["copy_bandwidth_gbps"] > 0.5
    assert first.name == "host" and first.peak_gflops.fp32 > 0 and "onnxruntime fp32 MatMul" in first.sources[
        "peak_gflops"]
    cached["cpu"]["model"] = "another CPU"  # a different machine sharing the cache folder: measured again
    (tmp_path / "host.json").write_text(json.dumps(cached))
    host_mod.host_profile()
    assert len(calls) == 2


def test_shipped_profiles_still_validate_with_calibration_blocks(tmp_path):
    from edgepack.config import data_dir

    raw = yaml.safe_load((data_dir("devices") / "raspberry-pi-4.yaml").read_text())
    raw["calibration"] = {"fitted_on": "x", "offsets": {"device:raspberry-pi-4": 0.1},
                          "error": {"n": 1, "median_abs_error_pct": 5.0, "within_25pct": 1.0, "range_log_halfwidth": 0.1}}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert load_profile(str(path)).calibration.error.n == 1


def test_estimate_on_the_host_and_on_an_ssh_device_profile(tiny_files, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEPACK_CACHE", str(tmp_path))
    code, out, _ = _cli(capsys, "estimate", tiny_files["onnx"], "--device", "host", "--json")
    result = json.loads(out)
    assert code == 0 and result["device"] == "host" and (tmp_path / "host.json").exists()
    assert "leave-device-out" in result["error"]["basis"]  # no published rows of its own: the wider error
    code, out, _ = _cli(capsys, "estimate", tiny_files["onnx"], "--device",
                        "ssh://pi@192.0.2.1?profile=raspberry-pi-5", "--json")
    assert code == 0 and json.loads(out)["device"] == "raspberry-pi-5"  # the profile only: nothing is contacted


def test_tflite_signatures_are_costed_one_bucket_at_a_time(tmp_path, capsys):
    """One .tflite with a signature per sequence bucket (as edgepack's TFLite target ships): each is costed alone,
    picked by name or by the inputs' shapes."""
    torch = pytest.importorskip("torch")
    litert_torch = pytest.importorskip("litert_torch")
    from edgepack.estimate.count import count_costs

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed, self.proj = torch.nn.Embedding(50, 8), torch.nn.Linear(8, 8)

        def forward(self, input_ids, attention_mask):
            return self.proj(self.embed(input_ids)) * attention_mask[..., None]

    model = Encoder().eval()
    feeds = {n: (torch.zeros(1, n, dtype=torch.int32), torch.ones(1, n, dtype=torch.int32)) for n in (16, 32)}
    path = tmp_path / "buckets.tflite"
    litert_torch.signature("seq_16", model, feeds[16]).signature("seq_32", model, feeds[32]).convert().export(str(path))
    fc = {s: next(c.flops for c in count_costs(path, {}, s) if c.op_type == "FULLY_CONNECTED") for s in ("seq_16", "seq_32")}
    assert fc == {"seq_16": 2 * 16 * 8 * 8, "seq_32": 2 * 32 * 8 * 8}
    by_shape = count_costs(path, {"input_ids": np.zeros((1, 32), np.int32), "attention_mask": np.ones((1, 32), np.int32)})
    assert next(c.flops for c in by_shape if c.op_type == "FULLY_CONNECTED") == fc["seq_32"]
    capsys.readouterr()  # the converter's progress lines
    code, out, _ = _cli(capsys, "estimate", path, "--device", "pixel-4", "--signature", "seq_32", "--json")
    result = json.loads(out)
    assert code == 0 and result["gflops"] * 1e9 >= fc["seq_32"] and "embedding" in result["by_class_ms"]
    code, _, err = _cli(capsys, "estimate", path, "--device", "pixel-4", "--signature", "seq_64")
    assert code != 0 and "seq_64" in err and err.count("\n") == 1
