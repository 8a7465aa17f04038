"""Pretrained weights on offline machines (issue 22, finding 15): a run looks in the local caches
first and, when the weights are not there and the hub cannot be reached, fails at once (one
reachability probe, no download, no hub retries) with a one-line error that names
`ltbench weights fetch` and `--backbone tiny`; `ltbench weights ls | fetch` against a temporary
cache. The network is never used: the probe and the downloader are stubbed."""
from pathlib import Path

import open_clip
import pytest
from huggingface_hub import constants

from ltbench.core.errors import UserError
from ltbench.models import weights
from ltbench.models.backbones import parse_backbone

VIT_REPO = "timm/vit_base_patch16_clip_224.openai"  # open_clip's hub repository of ViT-B-16:openai


def put_in_hub_cache(cache: Path, repo: str, filename: str, payload: bytes = b"not real weights") -> Path:
    """A file as hf_hub_download leaves it: models--ORG--NAME/refs/main -> snapshots/<commit>/FILE."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(commit)
    target = folder / "snapshots" / commit / filename
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(payload)
    return target


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache and home folder (~/.cache/clip), with HF_HUB_OFFLINE unset."""
    cache = tmp_path / "hf-hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return cache


@pytest.fixture
def probes(monkeypatch):
    """The hosts the reachability probe was asked about; set `answer` to what it returns."""
    class Calls(list):
        answer = False

    calls = Calls()

    def reachable(host, *args, **kwargs):
        calls.append(host)
        return calls.answer

    monkeypatch.setattr(weights, "reachable", reachable)
    return calls


@pytest.fixture
def no_downloads(monkeypatch):
    """Every way open_clip and ltbench download weights, recorded and refused."""
    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise RuntimeError("stubbed download: the network is not used in tests")

    for module, name in ((open_clip.factory, "download_pretrained"), (open_clip.pretrained, "download_pretrained"),
                         (open_clip.pretrained, "hf_hub_download"), (weights, "download")):
        monkeypatch.setattr(module, name, refuse)
    return calls


def test_an_offline_run_fails_at_once_without_downloading(run_cli, tmp_path, hub_cache, probes, no_downloads):
    code, out, err = run_cli("run", "--method", "zeroshot_clip", "--dataset", "digits_lt", "--backbone",
                             "ViT-B-16:openai", "--out", tmp_path / "results", "--no-progress")
    assert code == 2 and out == ""
    assert probes == ["huggingface.co"]  # one probe, then no download and no hub retries
    assert no_downloads == []
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ltbench: error: backbone 'ViT-B-16:openai'"), err
    assert "ltbench weights fetch ViT-B-16:openai" in err and "--backbone tiny" in err
    assert str(hub_cache) in err and "cannot be reached" in err
    assert not (tmp_path / "results" / "runs").exists()


def test_hf_hub_offline_fails_without_even_a_probe(hub_cache, probes, no_downloads, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="HF_HUB_OFFLINE is set"):
        with weights.weights_available(parse_backbone("RN50:openai")):
            pytest.fail("the block must not run")
    assert probes == [] and no_downloads == []


def test_cached_weights_load_with_the_hub_offline(hub_cache, probes):
    cached = put_in_hub_cache(hub_cache, VIT_REPO, weights.OPEN_CLIP_HUB_FILE)
    spec = parse_backbone("ViT-B-16:openai")
    with weights.weights_available(spec):
        assert constants.HF_HUB_OFFLINE is True
        # open_clip's own download code finds the file in the cache without a request (its
        # safetensors twin, tried first, fails at once: offline).
        config = open_clip.get_pretrained_cfg("ViT-B-16", "openai")
        assert Path(open_clip.pretrained.download_pretrained(config)) == cached
    assert constants.HF_HUB_OFFLINE is False and probes == []


def test_weights_ls_and_fetch_fill_and_show_a_temporary_cache(run_cli, hub_cache, probes, monkeypatch):
    probes.answer = True
    downloads = []

    def fake_download(file):
        downloads.append(file.describe())
        return put_in_hub_cache(hub_cache, file.repo, file.filename)

    monkeypatch.setattr(weights, "download", fake_download)
    code, out, _ = run_cli("weights", "ls", "ViT-B-16:openai", "tiny")
    assert code == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:3]}
    assert rows["ViT-B-16:openai"][1] == "missing" and str(hub_cache) in rows["ViT-B-16:openai"][2]
    assert rows["tiny"][1:3] == ["no", "download"]
    assert "ltbench weights fetch ViT-B-16:openai" in out

    code, out, _ = run_cli("weights", "fetch", "ViT-B-16:openai")
    assert code == 0 and "ViT-B-16:openai: fetched" in out
    assert downloads == [f"{VIT_REPO}/{weights.OPEN_CLIP_SAFE_FILE}"]  # open_clip's order: safetensors first
    code, out, _ = run_cli("weights", "ls")  # the configs' backbones: the default and every suite's
    found = {line.split()[0]: line.split() for line in out.splitlines()[1:] if line.split()[0].count(":") == 1}
    assert found["ViT-B-16:openai"][1] == "found" and found["ViT-B-16:openai"][2].startswith(str(hub_cache))
    assert found["RN50:openai"][1] == "missing"
    code, out, _ = run_cli("weights", "fetch", "ViT-B-16:openai")
    assert code == 0 and "already here" in out and len(downloads) == 1


def test_weights_fetch_offline_fails_after_one_probe(run_cli, hub_cache, probes, no_downloads):
    code, out, err = run_cli("weights", "fetch", "RN50:openai")
    assert code == 2 and probes == ["huggingface.co"] and no_downloads == []
    assert "cannot be reached" in out and err.startswith("ltbench: error: could not fetch the weights of RN50:openai")


def test_weight_files_follow_each_library(hub_cache):
    timm_files = weights.weight_files(parse_backbone("timm:resnet50"))
    assert [(file.repo, file.filename) for file in timm_files] == [("timm/resnet50.a1_in1k", "model.safetensors"),
                                                                    ("timm/resnet50.a1_in1k", "pytorch_model.bin")]
    for name in ("tiny", "RN50:none", "timm:resnet50:none"):
        assert weights.weight_files(parse_backbone(name)) == []
    assert weights.status("RN50:openai").where().startswith(str(hub_cache))


def test_a_failed_download_online_is_one_line_without_open_clips_error_log(hub_cache, probes, no_downloads, caplog):
    from ltbench.models.factory import create_backbone

    probes.answer = True  # the hub answers; the download itself fails (stubbed)
    with caplog.at_level("DEBUG"), pytest.raises(UserError, match=r"could not fetch pretrained weights 'openai'.*"
                                                                   r"ltbench weights fetch RN50:openai.*--backbone tiny"):
        create_backbone("RN50:openai")
    assert len(no_downloads) == 1 and probes == ["huggingface.co"]
    assert not [record for record in caplog.records if "Failed to download" in record.getMessage()]
