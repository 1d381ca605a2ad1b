"""Real devices over SSH, against a real sshd on 127.0.0.1 (Debian's openssh-server; .ci/run installs it)."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edgepack.errors import UsageError
from edgepack.devices import load_profile
from edgepack.devices.ssh import RemoteError, SshDevice, measure, parse_url

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    if not Path(SSHD).exists() or not shutil.which("ssh"):
        if os.environ.get("CI"):
            pytest.fail("sshd/ssh not installed: .ci/run installs openssh-server")
        pytest.skip("openssh-server is not installed (apt-get install -y openssh-server)")
    folder = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / name)], check=True)
    (folder / "authorized_keys").write_text((folder / "client_key.pub").read_text())
    port = _free_port()
    config = folder / "sshd_config"
    config.write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {folder / 'host_key'}
PidFile {folder / 'sshd.pid'}
AuthorizedKeysFile {folder / 'authorized_keys'}
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
UsePAM no
Subsystem sftp internal-sftp
""")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(exist_ok=True)  # privilege-separation folder sshd insists on
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL,
                               stderr=open(folder / "sshd.log", "w"))
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        process.kill()
        pytest.fail(f"sshd did not start: {(folder / 'sshd.log').read_text()}")
    yield {"port": port, "key": folder / "client_key", "known_hosts": folder / "known_hosts", "folder": folder}
    process.terminate()
    process.wait(timeout=10)


def _device(sshd, python: str = sys.executable, port: int | None = None) -> SshDevice:
    url = (f"ssh://{getpass.getuser()}@127.0.0.1:{port or sshd['port']}?profile=raspberry-pi-4&python={python}"
           f"&key={sshd['key']}&known_hosts={sshd['known_hosts']}")
    return parse_url(url)


def _leftovers() -> set[str]:
    return {p.name for p in Path("/tmp").glob("edgepack.*")}


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    import onnx
    from onnx import TensorProto, helper

    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 3], np.arange(12, dtype=np.float32).tolist())
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], [w])
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_parse_url():
    device = parse_url("ssh://pi@raspberrypi.local:2222?profile=raspberry-pi-4&python=/opt/venv/bin/python")
    assert (device.user, device.host, device.port, device.profile, device.python) == (
        "pi", "raspberrypi.local", 2222, "raspberry-pi-4", "/opt/venv/bin/python")
    assert load_profile(device.profile).name == "raspberry-pi-4"
    for bad, words in [("ssh://pi@host", "no profile"), ("http://host?profile=x", "not an ssh://"),
                       ("ssh://pi@host?profile=raspberry-pi-4&colour=red", "unknown parameter 'colour'"),
                       ("ssh://pi@host:abc?profile=raspberry-pi-4", "port"),
                       ("ssh://pi@host:99999?profile=raspberry-pi-4", "from 1 to 65535"),
                       ("ssh://pi@host:0?profile=raspberry-pi-4", "from 1 to 65535"),
                       ("ssh://pi@host?profile=raspberry-pi-4&key=/no/such/key", "key file '/no/such/key'")]:
        with pytest.raises(UsageError, match=words):
            parse_url(bad)


def test_measures_on_the_device_and_cleans_up(sshd, tiny_onnx):
    before = _leftovers()
    x = np.array([[1, 2, 3, 4]], np.float32)
    result = measure(_device(sshd), tiny_onnx, {"x": x}, samples=[{"x": x}, {"x": 2 * x}], threads=1, warmup=2,
                     runs=10)
    assert 0 < result["p50"] <= result["p90"] and result["runs"] == 10 and result["runtime"] == "onnxruntime"
    assert result["peak_rss_mb"] > 0
    expected = x @ np.arange(12, dtype=np.float32).reshape(4, 3)
    np.testing.assert_allclose(result["outputs"][0]["y"], expected)
    np.testing.assert_allclose(result["outputs"][1]["y"], 2 * expected)
    assert _leftovers() == before  # the remote temporary folder is gone


def test_missing_runtime_is_one_clear_error_and_cleans_up(sshd, tiny_onnx, tmp_path):
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "onnxruntime.py").write_text("raise ImportError('no onnxruntime here')\n")
    python = tmp_path / "python-without-onnxruntime"
    python.write_text(f"#!/bin/sh\nPYTHONPATH={fake} exec {sys.executable} \"$@\"\n")
    python.chmod(0o755)
    before = _leftovers()
    with pytest.raises(RemoteError, match="missing runtime: onnxruntime") as err:
        measure(_device(sshd, python=str(python)), tiny_onnx, {"x": np.ones((1, 4), np.float32)}, runs=5)
    assert "\n" not in str(err.value)
    assert _leftovers() == before


def test_connection_failure_is_one_clear_error(sshd, tiny_onnx):
    closed = _free_port()
    with pytest.raises(RemoteError, match=r"cannot connect to .*127\.0\.0\.1:\d+: .*refused") as err:
        measure(_device(sshd, port=closed), tiny_onnx, {"x": np.ones((1, 4), np.float32)}, runs=5)
    assert "\n" not in str(err.value)


def test_measure_cli_feeds_calibration(sshd, tiny_onnx, tmp_path, monkeypatch, capsys):
    """`edgepack measure` over SSH: device figures, outputs checked against this machine, the row recorded, and the
    recorded CSV accepted by `edgepack calibrate`."""
    import json

    from edgepack.cli import main

    monkeypatch.setenv("EDGEPACK_CACHE", str(tmp_path / "cache"))
    before = _leftovers()
    device = _device(sshd)
    url = (f"ssh://{device.user}@127.0.0.1:{sshd['port']}?profile=raspberry-pi-4&python={sys.executable}"
           f"&key={sshd['key']}&known_hosts={sshd['known_hosts']}")
    main(["measure", str(tiny_onnx), "--device", url, "--threads", "1", "--runs", "5", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert result["p50"] > 0 and result["outputs_max_abs_diff_vs_host"] == 0.0
    assert result["estimate"]["device"] == "raspberry-pi-4" and _leftovers() == before
    recorded = tmp_path / "cache" / "measurements" / "raspberry-pi-4.csv"
    assert recorded.read_text().count("\n") == 2
    main(["calibrate", "--device", "raspberry-pi-4", str(recorded), "--out", str(tmp_path / "pi.yaml")])
    assert (tmp_path / "pi.yaml").exists()


def test_device_runner_counts_memory_and_percentiles_as_the_host_probe_does(tiny_onnx, tmp_path):
    """Host and device rows sit side by side in a report: same MB, same percentiles, and no inherited peak RSS
    (the runner is started by a shell that may have been much bigger)."""
    import json
    import subprocess
    import sys

    from edgepack.devices import runner

    x = np.array([[1, 2, 3, 4]], np.float32)
    np.savez(tmp_path / "in.npz", **{"timing/x": x, "sample0/x": x})
    # The parent holds 600 MB when it starts the runner: ru_maxrss would have carried that over.
    ballast = np.ones(600_000_000 // 8)
    done = subprocess.run([sys.executable, runner.__file__, str(tiny_onnx), str(tmp_path / "in.npz"),
                           str(tmp_path / "out.npz"), "1", "2", "50"], capture_output=True, text=True, check=True)
    del ballast
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert 0 < result["rss_before_runtime_mb"] < result["peak_rss_mb"] < 400
    assert result["p50"] <= result["p90"] and result["runs"] == 50
