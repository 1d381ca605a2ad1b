"""The wheel carries everything a user needs: the code and the shipped YAML (recipes, device profiles)."""

import subprocess
import sys
import zipfile
from pathlib import Path

from edgepack.config import list_names

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_every_recipe_and_device_profile(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True)
    names = zipfile.ZipFile(next(tmp_path.glob("edgepack-*.whl"))).namelist()
    for kind in ("recipes", "devices"):
        shipped = {Path(n).stem for n in names if n.startswith(f"edgepack/_data/{kind}/") and n.endswith(".yaml")}
        assert shipped == set(list_names(kind))
    assert "edgepack/_data/recipes/data/qa-handwritten.jsonl" in names  # distilbert-squad's default data
    assert "edgepack/targets/onnx_passes.py" in names and "edgepack/bench/probe.py" in names
    # The calibrated estimate's data and the SSH runner copied to devices.
    for shipped in ("estimate/fit.json", "estimate/model_costs.json", "estimate/published.csv",
                    "devices/runner.py", "estimate/count_tflite.py", "cli/pack.py"):
        assert f"edgepack/{shipped}" in names, shipped


def test_import_loads_no_heavy_toolchain():
    code = "import sys, edgepack, edgepack.cli; print(sorted(m for m in ('torch', 'onnx', 'onnxruntime', " \
           "'transformers', 'optimum', 'matplotlib') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_devices_and_recipes_list_and_show_import_no_onnx_or_torch():
    """Reading device and recipe YAML is light: `devices`/`recipes` `list` and `show NAME` load neither onnx nor torch
    (`recipes show` looks for the model in the HF cache without loading it)."""
    code = ("import sys; from edgepack.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print('HEAVY', sorted(m for m in ('torch', 'onnx', 'onnxruntime', 'transformers') if m in sys.modules))")
    for args in (["devices", "list"], ["devices", "show", "raspberry-pi-4"], ["recipes", "list"],
                 ["recipes", "show", "bert-ner"]):
        done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
        assert "raspberry-pi-4" in done.stdout and done.stdout.strip().splitlines()[-1] == "HEAVY []", args
