"""text-generation: detection, bad input, the KV-cache ONNX export and its greedy runtime, and the fidelity figures,
on a tiny random Llama-style model built locally."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgepack.errors import UsageError
from edgepack.registry import TASKS
from edgepack.source import resolve
from edgepack.tasks import detect_task

from .conftest import SENTENCES, WORDS

COVERS = {'task': ['text-generation']}

TEXTS = [t for t, _ in SENTENCES]
CHAT_TEMPLATE = "{% for m in messages %}<s>{{ m['content'] }}</s>{% endfor %}"


def build_tiny_llama(folder: Path, max_positions: int = 256) -> Path:
    """A 2-layer random Llama (grouped-query attention, as SmolLM/Qwen) with a word-level tokenizer, a chat
    template and a generation config."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(0)
    vocab = {w: i for i, w in enumerate(["<unk>", "<s>", "</s>", "<pad>"] + sorted(set(WORDS)))}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                  pad_token="<pad>", model_max_length=max_positions)
    tok.chat_template = CHAT_TEMPLATE
    folder.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(str(folder))
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max_positions,
                         bos_token_id=1, eos_token_id=2, pad_token_id=3, tie_word_embeddings=True)
    LlamaForCausalLM(config).eval().save_pretrained(str(folder), safe_serialization=True)
    GenerationConfig(bos_token_id=1, eos_token_id=2, pad_token_id=3, max_new_tokens=32).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def exported(tiny_llama, tmp_path_factory):
    from edgepack.targets.onnx_lm import export_kv

    source = resolve(str(tiny_llama))
    return export_kv(source, TASKS.get("text-generation")(source), tmp_path_factory.mktemp("onnx") / "fp32")


def test_detects_decoder_lms_and_not_encoders(tiny_llama, tiny_classifier, tiny_embedder):
    assert detect_task(resolve(str(tiny_llama))) == "text-generation"
    assert detect_task(resolve(str(tiny_classifier))) == "text-classification"
    assert detect_task(resolve(str(tiny_embedder))) == "feature-extraction"


def test_an_encoder_given_text_generation_is_a_one_line_usage_error(tiny_classifier):
    with pytest.raises(UsageError, match="not a decoder-only language model") as info:
        TASKS.get("text-generation")(resolve(str(tiny_classifier)))
    assert "\n" not in str(info.value)


def test_a_context_beyond_the_model_is_a_usage_error(tiny_llama):
    task = TASKS.get("text-generation")(resolve(str(tiny_llama)))
    assert task.max_length == 256
    task.check_context(256)
    with pytest.raises(UsageError, match="exceeds the model's maximum of 256"):
        task.check_context(2048)


def test_a_tokenizer_without_a_pad_token_still_encodes_padded_batches(tiny_llama):
    """SmolLM2's and Llama's tokenizers have no pad token: pack's workload lengths and latency input still work."""
    task = TASKS.get("text-generation")(resolve(str(tiny_llama)))
    with_pad = task.encode(TEXTS[:2], 64)
    task.tokenizer.pad_token = None
    without = task.encode(TEXTS[:2], 64)
    np.testing.assert_array_equal(without["attention_mask"], with_pad["attention_mask"])
    np.testing.assert_array_equal(without["input_ids"] * without["attention_mask"],
                                  with_pad["input_ids"] * with_pad["attention_mask"])
    assert task.encode(TEXTS[:1], 16, pad_to_max=True)["input_ids"].shape == (1, 16)
    assert task.workload_lengths(TEXTS[:3], 64)["samples"] == 3
    assert task.latency_inputs(TEXTS, 32)["input_ids"].shape == (1, 32)


def test_cli_rejects_an_encoder_given_text_generation_with_exit_2(tiny_classifier, tmp_path, capsys):
    from edgepack.cli import main

    data = tmp_path / "texts.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    with pytest.raises(SystemExit) as info:
        main(["pack", str(tiny_classifier), "--task", "text-generation", "--data", str(data),
              "--out", str(tmp_path / "out"), "--target", "onnx"])
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    assert "not a decoder-only language model" in err and len(err.strip().splitlines()) <= 2


def test_export_has_the_kv_cache_in_one_file_and_the_app_files_beside_it(exported):
    import onnx

    graph = onnx.load(str(exported)).graph
    inputs, outputs = [i.name for i in graph.input], [o.name for o in graph.output]
    assert "past_key_values.0.key" in inputs and "present.1.value" in outputs and "logits" in outputs
    assert sorted(p.name for p in exported.parent.glob("*.onnx")) == ["model.onnx"]
    config = json.loads((exported.parent / "tokenizer_config.json").read_text())
    assert config.get("chat_template") == CHAT_TEMPLATE or (exported.parent / "chat_template.jinja").is_file()
    assert json.loads((exported.parent / "generation_config.json").read_text())["eos_token_id"] == 2


def test_cached_greedy_generation_matches_the_source_and_teacher_forcing(tiny_llama, exported):
    from edgepack.runtimes.onnx_lm import OnnxLM

    task = TASKS.get("text-generation")(resolve(str(tiny_llama)))
    lm, model = OnnxLM(exported), task.source_model()
    ids = task.token_ids(TEXTS[0], 64)
    np.testing.assert_allclose(lm.logits(ids), task.source_logits(model, ids), atol=1e-4)
    assert lm.generate(ids, 12, []) == task.source_generate(model, ids, 12)[:12]
    first = lm.generate(ids, 12, [])[0]
    assert lm.generate(ids, 12, [first]) == [first]  # a stop token ends generation
    assert len(lm.generate(ids, 5, [])) == 5


def test_fp32_fidelity_is_exact_and_int4_is_measured_not_assumed(tiny_llama, exported, tmp_path):
    from edgepack.runtimes.onnx_lm import OnnxLM
    from edgepack.targets.onnx_lm import quantize_weights

    task = TASKS.get("text-generation")(resolve(str(tiny_llama)))
    same = task.fidelity(TEXTS, TEXTS[:3], OnnxLM(exported), 64, new_tokens=8).details
    assert same["perplexity_ratio"] == pytest.approx(1.0, abs=1e-4)
    assert same["next_token_agreement"] == 1.0 and same["continuation_agreement"] == 1.0
    assert same["mean_kl"] < 1e-6
    sizes = {}
    for precision, method in (("int8-weight", "rtn"), ("int4-weight", "rtn"), ("int4-weight", "hqq")):
        out = quantize_weights(exported, tmp_path / f"{precision}-{method}", precision, block_size=32, method=method)
        import onnx

        ops = {n.op_type for n in onnx.load(str(out)).graph.node}
        assert "MatMulNBits" in ops
        assert (out.parent / "generation_config.json").is_file()
        sizes[precision, method] = weight_bytes(out)
        fig = task.fidelity(TEXTS, TEXTS[:2], OnnxLM(out), 64, new_tokens=8).details
        assert fig["mean_kl"] > 0 and fig["perplexity_ratio"] > 0 and 0 <= fig["next_token_agreement"] <= 1
    # The graph dominates a tiny model's file: compare the weights
    assert sizes["int4-weight", "rtn"] < sizes["int8-weight", "rtn"] < weight_bytes(exported) / 2


def weight_bytes(path) -> int:
    import onnx

    return sum(len(i.raw_data) for i in onnx.load(str(path)).graph.initializer)


def test_figures_are_computed_from_the_logits():
    from edgepack.tasks.text_generation import continuation_agreement, teacher_forcing_figures

    ids = np.array([0, 1, 2])
    sure = np.full((3, 3), -20.0)
    sure[0, 1] = sure[1, 2] = 20.0  # predicts the text exactly: perplexity ~1
    unsure = np.zeros((3, 3))  # uniform: perplexity 3
    fig = teacher_forcing_figures(ids, sure, unsure)
    assert fig["perplexity_source"] == pytest.approx(1.0, abs=1e-6)
    assert fig["perplexity_artifact"] == pytest.approx(3.0)
    assert fig["next_token_agreement"] == 0.0 and fig["mean_kl"] > 1.0
    assert continuation_agreement([1, 2, 3, 4], [1, 2, 9]) == 0.5


def test_the_small_chat_lm_recipe_loads_and_gates_perplexity_from_above():
    from edgepack.config import Gates
    from edgepack.gates import gate_checks
    from edgepack.plan import load_recipe
    from edgepack.tasks.base import Accuracy

    recipe = load_recipe(None, "text-generation")
    assert recipe.name == "small-chat-lm" and recipe.context_length == 2048 and recipe.sequence_length == 128
    assert recipe.precisions == ["fp32", "int8-weight", "int4-weight"] and recipe.weight_only.block_size == 32
    good = Accuracy("next_token_agreement", 0.9, 0.1, {"perplexity_ratio": 1.05, "continuation_agreement": 0.8})
    bad = Accuracy("next_token_agreement", 0.9, 0.1, {"perplexity_ratio": 1.25, "continuation_agreement": 0.8})
    check = lambda acc: {c.name: c.passed for c in gate_checks(recipe.gates, acc, None, 1.0, None)}  # noqa: E731
    assert check(good)["max perplexity_ratio"] and not check(bad)["max perplexity_ratio"]
    assert Gates(max_accuracy={"x": 1.0}).merged(Gates(max_accuracy={"x": 2.0})).max_accuracy == {"x": 2.0}


def test_llm_estimate_reads_weights_and_cache_and_gives_a_clear_verdict_when_too_large(tiny_llama):
    from edgepack.estimate.llm import (bytes_per_weight, decode_tokens_per_s, kv_cache_bytes, leave_one_out,
                                       ram_verdict)

    assert bytes_per_weight("GGUF Q4_0") == 18 / 32 and bytes_per_weight("8da4w") == 18 / 32
    assert bytes_per_weight("GGUF (default)") is None
    config = resolve(str(tiny_llama)).config  # 2 layers, 2 kv heads of 8: 2*2*2*8*4 bytes per token
    assert kv_cache_bytes(config, 100) == 2 * 2 * 2 * 8 * 100 * 4
    assert decode_tokens_per_s(1e9, 0, 10.0, 0.5) == pytest.approx(5.0)
    assert decode_tokens_per_s(1e9, 1e9, 10.0, 0.5) == pytest.approx(2.5)  # the cache is read every token too
    assert leave_one_out([0.5, 0.5, 0.5]) == pytest.approx([0, 0, 0])
    verdict = ram_verdict(3e9, 0.5e9, ram_mb=4096)
    assert verdict["fits"] is False and "does not fit" in verdict["verdict"]
    assert ram_verdict(1e8, 1e7, ram_mb=4096)["fits"] is True


def test_affine_int4_reproduces_weights_already_on_a_q4_1_grid_exactly():
    """llama.cpp Q4_1 weights (scale and minimum per block of 32) survive affine int4 unchanged; RTN's do not."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from edgepack.targets.onnx_lm import affine_int4

    rng = np.random.default_rng(0)
    k, n = 64, 8
    scale, low = rng.uniform(0.01, 0.1, (k // 32, 1, n)), rng.uniform(-1, 0, (k // 32, 1, n))
    q = rng.integers(0, 16, (k // 32, 32, n))
    q[:, 0], q[:, 1] = 0, 15  # as Q4_1 makes them: each block's minimum and maximum are on its grid's ends
    w = (low + scale * q).reshape(k, n).astype(np.float32)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, n])],
                              [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert affine_int4(model, 32) == 1
    assert {x.op_type for x in model.graph.node} == {"MatMulNBits", "MatMul", "Add"}
    x = rng.standard_normal((1, 3, k)).astype(np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    # accuracy_level 4 quantizes the activations to int8 inside the kernel: close, not bit-exact
    np.testing.assert_allclose(session.run(None, {"x": x})[0], x @ w, rtol=0.02, atol=0.05)
    model_exact = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    affine_int4(model_exact, 32, accuracy_level=None)
    exact = ort.InferenceSession(model_exact.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(exact.run(None, {"x": x})[0], x @ w, rtol=1e-4, atol=1e-4)
    onnx.checker.check_model(model_exact)


def test_an_int8_lm_head_beside_affine_int4_leaves_the_offsets_float(exported, tmp_path):
    """lm_head_bits quantizes the lm_head alone: affine's offset and block-sum MatMuls (constant weights too) stay
    float32, so they neither lose precision nor grow (an offsets matrix has K/32 rows; int8 blocks pad it to 32)."""
    import onnx

    from edgepack.targets.onnx_lm import quantize_weights

    out = quantize_weights(exported, tmp_path / "affine-head8", "int4-weight", method="affine", lm_head_bits=8)
    graph = onnx.load(str(out)).graph
    bits = sorted(next(a.i for a in n.attribute if a.name == "bits") for n in graph.node if n.op_type == "MatMulNBits")
    assert bits.count(8) == 1 and set(bits) == {4, 8}  # the lm_head, and every layer's MatMul in int4
    offsets = [i for i in graph.initializer if i.name.endswith("_offsets")]
    assert offsets and all(i.data_type == onnx.TensorProto.FLOAT for i in offsets)


def test_affine_shares_block_sums_and_takes_an_opset_22_graph_with_contrib_ops(exported, tmp_path):
    """q/k/v read one input: one block-sum MatMul for them. A graph already at opset 22 with ops the version converter
    has no schema for (onnxruntime-genai's SimplifiedLayerNormalization) gets int4 embeddings without a conversion."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edgepack.targets.onnx_lm import quantize_weights

    graph = onnx.load(str(quantize_weights(exported, tmp_path / "affine", "int4-weight", method="affine"))).graph
    sums = [n for n in graph.node if n.name.endswith("_block_sums")]
    assert 0 < len(sums) < sum(n.op_type == "MatMulNBits" for n in graph.node) - 1  # fewer than the affine MatMuls

    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Gather", ["table", "ids"], ["x"], name="embed"),
             helper.make_node("SimplifiedLayerNormalization", ["x", "scale"], ["n"], name="norm", axis=-1),
             helper.make_node("MatMul", ["n", "w"], ["logits"], name="head")]
    inits = [numpy_helper.from_array(rng.standard_normal((64, 32)).astype(np.float32), "table"),
             numpy_helper.from_array(np.ones(32, np.float32), "scale"),
             numpy_helper.from_array(rng.standard_normal((32, 64)).astype(np.float32), "w")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 3])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3, 64])], inits)
    path = tmp_path / "opset22" / "model.onnx"
    path.parent.mkdir()
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 22)]), str(path))
    out = onnx.load(str(quantize_weights(path, tmp_path / "opset22-int4", "int4-weight", method="affine")))
    assert {"GatherBlockQuantized", "MatMulNBits"} <= {n.op_type for n in out.graph.node}
