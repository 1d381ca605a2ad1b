"""Measure an artifact on a real device over SSH, with the device's own runtime.

URL: ssh://user@host[:port]?profile=raspberry-pi-4[&python=/usr/bin/python3][&key=~/.ssh/id_ed25519]
[&known_hosts=PATH]. The system `ssh`/`scp` clients do the work (BatchMode: keys or an agent, never a password
prompt). A run makes a temporary folder on the device, copies the artifact, the inputs and runner.py there, runs
the runner with the device's python, copies the results back, and always removes the folder.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np

from ..errors import EdgepackError, UsageError

RUNNER = Path(__file__).resolve().parent / "runner.py"
KNOWN_PARAMS = {"profile", "python", "key", "known_hosts"}
CONNECT_TIMEOUT_S = 10
MISSING_RUNTIME_EXIT = 3


class RemoteError(EdgepackError):
    """The device could not be reached or could not run the artifact (exit 1: the job ran, the device failed)."""

    exit_code = 1


@dataclass(frozen=True)
class SshDevice:
    user: str | None
    host: str
    port: int | None
    profile: str
    python: str = "python3"
    key: str | None = None
    known_hosts: str | None = None

    @property
    def target(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def __str__(self) -> str:
        return f"{self.target}{f':{self.port}' if self.port else ''}"

    def _options(self, port_flag: str) -> list[str]:
        opts = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}", "-o", "LogLevel=ERROR"]
        if self.port:
            opts += [port_flag, str(self.port)]
        if self.key:
            opts += ["-i", str(Path(self.key).expanduser()), "-o", "IdentitiesOnly=yes"]
        if self.known_hosts:
            opts += ["-o", f"UserKnownHostsFile={Path(self.known_hosts).expanduser()}",
                     "-o", "StrictHostKeyChecking=accept-new"]
        return opts

    def ssh(self, command: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return _run(["ssh", *self._options("-p"), self.target, command], timeout, self)

    def scp(self, sources: list[str], dest: str, timeout: float = 600) -> None:
        done = _run(["scp", "-q", *self._options("-P"), *sources, dest], timeout, self)
        if done.returncode != 0:
            raise RemoteError(f"{self}: copy failed: {_last_line(done.stderr)}")

    def remote(self, path: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user + '@' if self.user else ''}{host}:{path}"


def parse_url(url: str) -> SshDevice:
    parts = urlsplit(url)
    if parts.scheme != "ssh" or not parts.hostname:
        raise UsageError(f"{url!r} is not an ssh:// device URL", "ssh://user@host[:port]?profile=NAME")
    params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = sorted(set(params) - KNOWN_PARAMS)
    if unknown:
        raise UsageError(f"{url!r}: unknown parameter {unknown[0]!r}", f"known: {', '.join(sorted(KNOWN_PARAMS))}")
    if not params.get("profile"):
        raise UsageError(f"{url!r}: no profile", "add ?profile=NAME, e.g. ?profile=raspberry-pi-4")
    try:
        port = parts.port
    except ValueError:  # not a number, or above 65535
        port = 0
    if port == 0:  # urllib also allows 0, which ssh would quietly replace with 22
        raise UsageError(f"{url!r}: the port must be a number from 1 to 65535")
    key = params.get("key")
    if key and not Path(key).expanduser().is_file():  # ssh would fall back to other keys and fail unclearly
        raise UsageError(f"{url!r}: key file {key!r} not found", "check the path given as &key=")
    return SshDevice(user=unquote(parts.username) if parts.username else None, host=parts.hostname, port=port,
                     profile=params["profile"], python=params.get("python") or "python3", key=key,
                     known_hosts=params.get("known_hosts"))


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def _run(argv: list[str], timeout: float, device: SshDevice) -> subprocess.CompletedProcess:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise UsageError(f"the {argv[0]} client is not installed", "install openssh-client") from None
    except subprocess.TimeoutExpired:
        raise RemoteError(f"{device}: {argv[0]} did not finish within {timeout:.0f} s") from None
    if done.returncode == 255:  # ssh's own failure: connection, authentication, host key
        raise RemoteError(f"cannot connect to {device}: {_last_line(done.stderr)}")
    return done


def measure(device: SshDevice, artifact: str | Path, timing_inputs: dict[str, np.ndarray],
            samples: list[dict[str, np.ndarray]] = (), threads: int = 1, warmup: int = 10, runs: int = 50,
            signature: str | None = None, timeout: float = 600) -> dict:
    """Time `artifact` on the device; returns p50/p90, peak memory, runtime version and the outputs of `samples`
    (a list of {output name: array}, in order). The remote temporary folder is removed whatever happens."""
    artifact = Path(artifact)
    made = device.ssh("mktemp -d /tmp/edgepack.XXXXXX", timeout=60)
    remote_dir = made.stdout.strip()
    if made.returncode != 0 or not remote_dir.startswith("/tmp/edgepack."):
        raise RemoteError(f"{device}: cannot create a temporary folder: {_last_line(made.stderr)}")
    try:
        with tempfile.TemporaryDirectory(prefix="edgepack-ssh-") as tmp:
            inputs = Path(tmp) / "inputs.npz"
            arrays = {f"timing/{k}": v for k, v in timing_inputs.items()}
            for i, sample in enumerate(samples):
                arrays.update({f"sample{i}/{k}": v for k, v in sample.items()})
            np.savez(inputs, **arrays)
            device.scp([str(artifact), str(RUNNER), str(inputs)], device.remote(remote_dir + "/"), timeout)
            args = [device.python, f"{remote_dir}/runner.py", f"{remote_dir}/{artifact.name}",
                    f"{remote_dir}/inputs.npz", f"{remote_dir}/outputs.npz", str(threads), str(warmup), str(runs)]
            if signature:
                args.append(signature)
            done = device.ssh(" ".join(shlex.quote(a) for a in args), timeout)
            if done.returncode == MISSING_RUNTIME_EXIT or "missing runtime" in done.stderr:
                raise RemoteError(f"{device}: {_last_line(done.stderr)}")
            if done.returncode == 127 or "No module named 'numpy'" in done.stderr:
                raise RemoteError(f"{device}: cannot run {device.python} with numpy: {_last_line(done.stderr)}")
            if done.returncode != 0:
                raise RemoteError(f"{device}: the runner failed: {_last_line(done.stderr)}")
            try:
                result = json.loads(done.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                raise RemoteError(f"{device}: the runner printed no result") from None
            local = Path(tmp) / "outputs.npz"
            device.scp([device.remote(f"{remote_dir}/outputs.npz")], str(local), timeout)
            with np.load(local) as data:
                outputs: list[dict] = [{} for _ in samples]
                for key in data.files:
                    group, name = key.split("/", 1)
                    outputs[int(group[6:])][name] = data[key]
    finally:
        device.ssh(f"rm -rf {shlex.quote(remote_dir)}", timeout=60)
    result["outputs"] = outputs
    result["device"] = str(device)
    return result
