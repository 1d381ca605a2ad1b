"""Build variants: plain (issue's recipe) and edgepack-like, seq128 only (or all buckets), int8-dynamic."""
import sys, time
from pathlib import Path
import torch
sys.path.insert(0, "/work/wt-tflite-speed/benchmarks")
from minilm_targets import minilm_task
import litert_torch
from ai_edge_quantizer import quantizer, recipe
from edgepack.targets import quiet_toolchain

OUT = Path("/tmp/tfs")
task = minilm_task()

class Plain(torch.nn.Module):
    def __init__(self, bert):
        super().__init__(); self.bert = bert
    def forward(self, input_ids, attention_mask, token_type_ids):
        h = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
        m = attention_mask.unsqueeze(-1).float()
        return (h * m).sum(1) / m.sum(1).clamp(min=1e-9)

def q(path):
    out = path.with_name(path.stem + "-int8.tflite")
    quantizer.Quantizer(str(path), recipe.dynamic_wi8_afp32()).quantize().export_model(str(out), overwrite=True)
    return out

which = sys.argv[1]; lengths = [int(x) for x in sys.argv[2].split(",")]
t = time.time()
with quiet_toolchain(), torch.inference_mode():
    if which == "plain":
        import transformers
        bert = transformers.AutoModel.from_pretrained(str(task.source.path), attn_implementation="eager").eval()
        m = Plain(bert).eval(); conv = None
        for L in lengths:
            s = tuple(torch.ones(1, L, dtype=torch.long) if i < 2 else torch.zeros(1, L, dtype=torch.long) for i in range(3))
            conv = (litert_torch if conv is None else conv).signature(f"seq_{L}", m, s)
    elif which == "edgepack":
        m = task.torch_module(); conv = None
        for L in lengths:
            conv = (litert_torch if conv is None else conv).signature(f"seq_{L}", m, sample_kwargs=task.sample_inputs(L))
    p = OUT / f"{which}-{'_'.join(map(str, lengths))}.tflite"
    conv.convert().export(str(p))
    print(p, q(p), time.time() - t)
