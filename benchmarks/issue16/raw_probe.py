import sys, time, json, numpy as np
from ai_edge_litert.interpreter import Interpreter
path, threads, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sig = sys.argv[4] if len(sys.argv) > 4 else "seq_128"
import os
it = Interpreter(model_path=path, num_threads=threads, experimental_default_delegate_latest_features=bool(os.environ.get("LATEST")))
r = it.get_signature_runner(sig)
det = r.get_input_details()
L = int(list(det.values())[0]["shape"][1])
feed = {}
for k, d in det.items():
    v = np.zeros((1, L)) if k == "token_type_ids" else np.ones((1, L))
    if k == "input_ids": v = np.full((1, L), 3000); v[0, 0] = 101; v[0, -1] = 102
    feed[k] = v.astype(d["dtype"])
for _ in range(20): r(**feed)
ts = []
for _ in range(runs):
    s = time.perf_counter(); r(**feed); ts.append((time.perf_counter() - s) * 1000)
print(json.dumps({"p50": float(np.median(ts))}))
