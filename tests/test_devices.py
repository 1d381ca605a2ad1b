"""Device profiles, the fit check, per-op cost counting and the roofline latency estimate."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml

from edgepack.config import data_dir
from edgepack.devices import SOURCED_FIELDS, DeviceProfile, fits, list_profiles, load_profile
from edgepack.estimate.count_onnx import count_onnx_costs
from edgepack.estimate.predict import LatencyEstimate, estimate_latency
from edgepack.errors import ConfigError, UnknownName

REQUIRED = {"raspberry-pi-4", "raspberry-pi-5", "jetson-orin-nano", "x86-laptop"}

# Tiny BERT: hidden 32, 2 layers, 2 heads, intermediate 37, vocab 100; run on one sequence of SEQ tokens.
HIDDEN, LAYERS, HEADS, INTER, VOCAB, SEQ = 32, 2, 2, 37, 100, 8
PROJECTIONS = LAYERS * (4 * 2 * SEQ * HIDDEN * HIDDEN + 2 * 2 * SEQ * HIDDEN * INTER)  # Q, K, V, O + two FFN
SCORES = LAYERS * 2 * (2 * SEQ * SEQ * HIDDEN)  # Q.K^T and P.V over all heads
POOLER = 2 * HIDDEN * HIDDEN  # Gemm on the first token (+ HIDDEN for its bias in the fp32 graph)


# ---- profiles ---------------------------------------------------------------------------------------------------

def test_ships_the_required_profiles():
    names = set(list_profiles())
    assert REQUIRED <= names
    assert any(n.startswith("pixel-") for n in names) and any(n.startswith("iphone-") for n in names)


@pytest.mark.parametrize("name", list_profiles())
def test_shipped_profile_validates_and_is_sourced(name):
    profile = load_profile(name)
    assert profile.name == name
    for key in SOURCED_FIELDS:
        assert profile.sources[key].strip(), f"{name}: no source for {key}"
    assert profile.default_threads <= (profile.cpu.hardware_threads or profile.cpu.cores) + profile.cpu.efficiency_cores
    assert profile.budgets.as_gates().max_latency_ms == profile.budgets.max_latency_ms
    # Without fp16 or int8 arithmetic those run at the fp32 rate, never slower.
    assert profile.peak_gflops.fp16 >= profile.peak_gflops.fp32
    assert profile.peak_gflops.int8 >= profile.peak_gflops.fp32


def _write_variant(tmp_path, change) -> str:
    raw = yaml.safe_load((data_dir("devices") / "raspberry-pi-4.yaml").read_text())
    change(raw)
    path = tmp_path / "variant.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


@pytest.mark.parametrize("change, field", [
    (lambda raw: raw.update(colour="red"), "colour"),
    (lambda raw: raw["cpu"].update(turbo_ghz=1.8), "cpu.turbo_ghz"),
    (lambda raw: raw.update(ram_mb="lots"), "ram_mb"),
    (lambda raw: raw["peak_gflops"].update(int8="fast"), "peak_gflops.int8"),
    (lambda raw: raw["cpu"]["features"].append("neon2"), "cpu.features"),
    (lambda raw: raw["budgets"].pop("max_memory_mb"), "budgets.max_memory_mb"),
    (lambda raw: raw["sources"].pop("peak_gflops"), "peak_gflops"),
    (lambda raw: raw["sources"].update(memory_bandwidth_gbps="  "), "memory_bandwidth_gbps"),
    (lambda raw: raw["sources"].update(clock="somewhere"), "clock"),
])
def test_malformed_profile_names_the_field(tmp_path, change, field):
    with pytest.raises(ConfigError) as err:
        load_profile(_write_variant(tmp_path, change))
    assert field in str(err.value) and "variant.yaml" in str(err.value)
    assert "(top level)" not in str(err.value) and "Value error" not in str(err.value)  # pydantic's wording


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(UnknownName) as err:
        load_profile("raspberry-pi-9")
    assert "raspberry-pi-4" in str(err.value)


def test_fits():
    pi4 = load_profile("raspberry-pi-4")
    small = fits(pi4, 50 * 2**20, 200 * 2**20)
    assert small["fits"] and small["memory_measured"]
    too_big = fits(pi4, 50 * 2**20, 3 * 2**30)  # 3 GB peak on a 4 GB board: more than the half allowed
    assert not too_big["fits"] and too_big["storage_ok"] and not too_big["memory_ok"]
    guessed = fits(pi4, 3 * 2**30, None)  # no measured peak: the size stands in for it
    assert not guessed["fits"] and not guessed["memory_measured"]


# ---- cost counting ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bert_graphs(tmp_path_factory):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folder = tmp_path_factory.mktemp("bert")
    torch.manual_seed(0)
    config = transformers.BertConfig(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                                     intermediate_size=INTER, vocab_size=VOCAB, max_position_embeddings=64)
    model = transformers.BertModel(config).eval()
    names = ["input_ids", "attention_mask", "token_type_ids"]
    feeds = {"input_ids": np.arange(SEQ, dtype=np.int64)[None] % VOCAB,
             "attention_mask": np.ones((1, SEQ), np.int64), "token_type_ids": np.zeros((1, SEQ), np.int64)}
    fp32 = folder / "model.onnx"
    torch.onnx.export(model, tuple(torch.from_numpy(feeds[n]) for n in names), str(fp32), input_names=names,
                      output_names=["last_hidden_state", "pooler_output"], opset_version=17, dynamo=False,
                      dynamic_axes={n: {0: "batch", 1: "sequence"} for n in names})
    int8 = folder / "model_int8.onnx"
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    return feeds, fp32, int8


def _flops(costs, kernel_class, op_types=None):
    return sum(c.flops for c in costs if c.kernel_class == kernel_class and (op_types is None or c.op_type in op_types))


def test_fp32_bert_matmul_flops_are_analytic(bert_graphs):
    feeds, fp32, _ = bert_graphs
    costs = count_onnx_costs(fp32, feeds)
    assert _flops(costs, "matmul") == PROJECTIONS + SCORES + POOLER + HIDDEN
    assert all(c.precision == "fp32" for c in costs if c.kernel_class == "matmul")
    assert {"embedding", "normalization", "elementwise"} <= {c.kernel_class for c in costs}
    assert all(c.known for c in costs) and all(c.bytes >= 0 for c in costs)


def test_int8_bert_counts_integer_matmuls(bert_graphs):
    feeds, _, int8 = bert_graphs
    costs = count_onnx_costs(int8, feeds)
    assert _flops(costs, "matmul", {"MatMulInteger"}) == PROJECTIONS + POOLER
    assert _flops(costs, "matmul", {"MatMul"}) == SCORES  # attention scores stay fp32
    assert {c.precision for c in costs if c.op_type == "MatMulInteger"} == {"int8"}
    assert any(c.kernel_class == "quantize" for c in costs)
    weights = sum(c.bytes for c in costs if c.op_type == "MatMulInteger")
    fp32_weights = sum(c.bytes for c in count_onnx_costs(bert_graphs[1], feeds) if c.op_type in ("MatMul", "Gemm"))
    assert weights < fp32_weights


def test_fused_bert_graph(bert_graphs, tmp_path):
    from onnxruntime.transformers.optimizer import optimize_model

    feeds, fp32, _ = bert_graphs
    fused = tmp_path / "fused.onnx"
    optimize_model(str(fp32), model_type="bert", num_heads=HEADS, hidden_size=HIDDEN, opt_level=1
                   ).save_model_to_file(str(fused))
    costs = count_onnx_costs(fused, feeds)
    types = {c.op_type for c in costs}
    assert {"Attention", "SkipLayerNormalization", "EmbedLayerNormalization"} <= types
    qkv = LAYERS * (3 * 2 * SEQ * HIDDEN * HIDDEN + SEQ * 3 * HIDDEN)  # projection + bias
    softmax = LAYERS * 5 * HEADS * SEQ * SEQ
    assert _flops(costs, "attention") == qkv + SCORES + softmax


def test_conv_net_costs(tmp_path):
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, padding=1, groups=8), torch.nn.ReLU6(),
        torch.nn.MaxPool2d(2), torch.nn.Conv2d(8, 4, 1), torch.nn.AdaptiveAvgPool2d(1)).eval()
    path = tmp_path / "conv.onnx"
    torch.onnx.export(net, (torch.zeros(1, 3, 16, 16),), str(path), input_names=["x"], opset_version=17, dynamo=False)
    costs = count_onnx_costs(path, {"x": np.zeros((1, 3, 16, 16), np.float32)})
    classes = {c.op_type: c.kernel_class for c in costs}
    assert _flops(costs, "conv") == 2 * 16 * 16 * 8 * 3 * 9 + 16 * 16 * 8 + 2 * 8 * 8 * 4 * 8 + 8 * 8 * 4
    assert _flops(costs, "depthwise") == 2 * 16 * 16 * 8 * 9 + 16 * 16 * 8
    assert classes["MaxPool"] == classes["GlobalAveragePool"] == "elementwise"
    assert "Relu" not in classes and "Clip" not in classes  # fused into the Conv by onnxruntime


def test_unknown_ops_count_bytes_only(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Einsum", ["a", "b"], ["c"], equation="ij,jk->ik")  # not in the cost tables
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 3]),
                                            helper.make_tensor_value_info("b", TensorProto.FLOAT, [3, 4])],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [2, 4])])
    path = tmp_path / "einsum.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    (cost,) = count_onnx_costs(path, {"a": np.ones((2, 3), np.float32), "b": np.ones((3, 4), np.float32)})
    assert (cost.kernel_class, cost.flops, cost.bytes, cost.known) == ("other", 0, 4 * (6 + 12 + 8), False)
    assert "Einsum" in estimate_latency([cost], load_profile("raspberry-pi-5")).note


# ---- latency estimate -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bert_costs(bert_graphs):
    feeds, fp32, int8 = bert_graphs
    return {"fp32": count_onnx_costs(fp32, feeds), "int8": count_onnx_costs(int8, feeds)}


@pytest.mark.parametrize("name", list_profiles())
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_estimate_is_positive_banded_and_monotonic_in_threads(bert_costs, name, precision):
    profile = load_profile(name)
    costs = bert_costs[precision]
    estimate = estimate_latency(costs, profile)
    assert isinstance(estimate, LatencyEstimate) and estimate.threads == profile.default_threads
    assert 0 < estimate.low_ms <= estimate.estimate_ms <= estimate.high_ms
    assert math.isclose(sum(estimate.by_class.values()), estimate.estimate_ms)
    assert "calibrated estimate" in estimate.note and estimate.error["n"] >= 5
    times = [estimate_latency(costs, profile, threads).estimate_ms for threads in range(1, profile.cpu.cores + 3)]
    assert all(later <= earlier for earlier, later in zip(times, times[1:]))


def test_more_bandwidth_or_compute_is_not_slower(bert_costs):
    pi4 = load_profile("raspberry-pi-4")
    wider = pi4.model_copy(update={"memory_bandwidth_gbps": pi4.memory_bandwidth_gbps * 4})
    for costs in bert_costs.values():
        for threads in (1, 4):
            assert estimate_latency(costs, wider, threads).estimate_ms <= estimate_latency(costs, pi4, threads).estimate_ms
    assert (estimate_latency(bert_costs["fp32"], load_profile("raspberry-pi-5")).estimate_ms
            < estimate_latency(bert_costs["fp32"], pi4).estimate_ms)


def test_profile_model_is_strict():
    raw = yaml.safe_load((data_dir("devices") / "pixel-4.yaml").read_text())
    assert DeviceProfile.model_validate(raw).cpu.efficiency_cores == 4
