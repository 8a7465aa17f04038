"""Pretrained weights on this machine: where a backbone's weights come from, whether a run would
find them without the network, and fetching them ahead of a run (`ltbench weights fetch | ls`).

Cluster compute nodes are often offline. Left alone, the Hugging Face hub retries for about a
minute there before open_clip gives up, so a run looks in the local caches first: weights that
are there load with the hub switched to offline mode (no request at all); weights that are not
there fail at once, with what to do, when the hub cannot be reached (one connection attempt
with a short timeout, or HF_HUB_OFFLINE set).

Where the libraries look (read from open_clip's ``pretrained.download_pretrained`` and timm's
``_builder._resolve_pretrained_source`` / ``_hub.load_state_dict_from_hf``): a tag with a hub
repository is fetched from the Hugging Face hub into its cache (HF_HUB_CACHE, by default
$HF_HOME/hub = ~/.cache/huggingface/hub), its ``.safetensors`` alternative first; a tag with only
a URL is downloaded into ~/.cache/clip (open_clip) or torch hub's checkpoints folder (timm).
"""
import contextlib
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional
from urllib.parse import urlsplit

from ltbench.core.errors import UserError
from ltbench.models.backbones import BackboneSpec, parse_backbone

# How long the one reachability probe may take (DNS included): an online machine answers in
# well under a second, an offline node must not wait on the hub's retries.
PROBE_TIMEOUT_S = 3.0
# open_clip's file names for a hub repository given without one, and their safetensors twins.
OPEN_CLIP_HUB_FILE, OPEN_CLIP_SAFE_FILE = "open_clip_pytorch_model.bin", "open_clip_model.safetensors"
TIMM_HUB_FILE, TIMM_SAFE_FILE = "pytorch_model.bin", "model.safetensors"


@dataclass(frozen=True)
class WeightFile:
    """One file a library may load a backbone's weights from: a file of a Hugging Face hub
    repository, or a URL downloaded into a folder."""

    repo: Optional[str] = None  # hub repository id (with the hub's revision, if any, in `revision`)
    filename: Optional[str] = None
    revision: Optional[str] = None
    url: Optional[str] = None
    folder: Optional[str] = None  # where a URL's file is kept
    local: Optional[str] = None  # a path the library's config names directly

    @property
    def host(self) -> Optional[str]:
        if self.local:
            return None
        return urlsplit(self.url if self.url else hub_endpoint()).hostname

    def describe(self) -> str:
        if self.local:
            return self.local
        if self.repo:
            return f"{self.repo}/{self.filename}" + (f"@{self.revision}" if self.revision else "")
        return self.url

    def cached(self) -> Optional[Path]:
        """This file on this machine, or None."""
        if self.local:
            return Path(self.local) if Path(self.local).is_file() else None
        if self.repo:
            from huggingface_hub import try_to_load_from_cache

            found = try_to_load_from_cache(self.repo, self.filename, cache_dir=hub_cache_dir(),
                                           revision=self.revision)
            return Path(found) if isinstance(found, str) and Path(found).is_file() else None
        path = Path(self.folder) / os.path.basename(urlsplit(self.url).path)
        return path if path.is_file() else None

    def location(self) -> str:
        """Where this file is, or would be, kept on this machine."""
        if self.local:
            return self.local
        if self.repo:
            return str(Path(hub_cache_dir()) / f"models--{self.repo.replace('/', '--')}")
        return str(Path(self.folder) / os.path.basename(urlsplit(self.url).path))


def hub_cache_dir() -> str:
    """The Hugging Face hub cache the libraries use (HF_HUB_CACHE / HF_HOME, read when the hub
    library was imported, as hf_hub_download reads it)."""
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def hub_endpoint() -> str:
    from huggingface_hub import constants

    return str(constants.ENDPOINT)


def open_clip_url_folder() -> str:
    return os.path.expanduser("~/.cache/clip")  # open_clip's download_pretrained_from_url default


def _hub_files(repo_and_file: str, default_file: str, safe_file: str) -> List[WeightFile]:
    repo, _, revision = repo_and_file.partition("@")  # timm's hub ids may pin a revision: id@rev
    return [WeightFile(repo=repo, filename=name, revision=revision or None) for name in (safe_file, default_file)]


def _safe_twin(filename: str) -> Optional[str]:
    if filename.endswith((".bin", ".pth")):
        return filename[:-4] + ".safetensors"
    return None


def _open_clip_files(spec: BackboneSpec) -> List[WeightFile]:
    from ltbench.models.clip import _open_clip

    open_clip = _open_clip()
    cfg = open_clip.get_pretrained_cfg(spec.model, spec.weights) or {}
    if "file" in cfg:
        return [WeightFile(local=cfg["file"])]
    if cfg.get("hf_hub") and open_clip.pretrained.has_hf_hub():
        model_id, filename = os.path.split(cfg["hf_hub"])
        if not filename:
            return _hub_files(model_id, OPEN_CLIP_HUB_FILE, OPEN_CLIP_SAFE_FILE)
        twin = _safe_twin(filename)
        return [WeightFile(repo=model_id, filename=name) for name in ([twin] if twin else []) + [filename]]
    if cfg.get("url"):
        return [WeightFile(url=cfg["url"], folder=open_clip_url_folder())]
    return []


def _timm_files(spec: BackboneSpec) -> List[WeightFile]:
    import torch
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(spec.model)
    if cfg is None:
        return []
    if cfg.file:
        return [WeightFile(local=cfg.file)]
    if cfg.hf_hub_id:
        if cfg.hf_hub_filename:
            repo, _, revision = cfg.hf_hub_id.partition("@")
            return [WeightFile(repo=repo, filename=cfg.hf_hub_filename, revision=revision or None)]
        return _hub_files(cfg.hf_hub_id, TIMM_HUB_FILE, TIMM_SAFE_FILE)
    if cfg.url:
        return [WeightFile(url=cfg.url, folder=os.path.join(torch.hub.get_dir(), "checkpoints"))]
    return []


def weight_files(spec: BackboneSpec) -> List[WeightFile]:
    """The files a build of `spec` may load, in the library's order; [] when it loads none
    (tiny, MODEL:none, timm:NAME:none, a checkpoint path: nothing to fetch)."""
    if spec.weights is None or spec.is_checkpoint:
        return []
    return _timm_files(spec) if spec.family == "timm" else _open_clip_files(spec)


def find_cached(files: List[WeightFile]) -> Optional[Path]:
    return next((path for path in (file.cached() for file in files) if path is not None), None)


def _proxy_for(host: str) -> Optional[tuple]:
    """(host, port) of the HTTPS proxy a download to `host` would go through, or None."""
    import urllib.request

    proxy = urllib.request.getproxies().get("https")
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    return (parts.hostname, parts.port or 80) if parts.hostname else None


def reachable(host: str, port: int = 443, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to `host` (or to the HTTPS proxy in the environment) opens
    within `timeout` seconds, name lookup included (in a thread: getaddrinfo has no timeout)."""
    target = _proxy_for(host) or (host, port)
    result = []

    def connect():
        try:
            socket.create_connection(target, timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    probe = threading.Thread(target=connect, daemon=True)
    probe.start()
    probe.join(timeout)
    return bool(result and result[0])


def hub_offline_requested() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


@contextlib.contextmanager
def hub_offline():
    """The hub library in offline mode for the block: cached files are returned without a request."""
    from huggingface_hub import constants

    previous = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = previous


def offline_reason(files: List[WeightFile]) -> Optional[str]:
    """Why the files cannot be downloaded now (HF_HUB_OFFLINE, or their host does not answer:
    one probe), or None when a download can be tried."""
    hosts = sorted({file.host for file in files if file.host})
    if not hosts:
        return None
    if any(file.repo for file in files) and hub_offline_requested():
        return "HF_HUB_OFFLINE is set"
    if not reachable(hosts[0]):
        return f"{hosts[0]} cannot be reached (an offline compute node?)"
    return None


def missing_weights_error(spec: BackboneSpec, files: List[WeightFile], reason: str) -> UserError:
    looked = ", ".join(dict.fromkeys(file.location() for file in files))
    local = "" if spec.family == "timm" else f" or '{spec.model}:/path/to/checkpoint.pt' for local weights"
    return UserError(
        f"backbone '{spec.text}': its pretrained weights are not on this machine (looked in {looked}) and "
        f"cannot be downloaded ({reason}). Fetch them where there is internet into a cache this machine shares "
        f"(`ltbench weights fetch {spec.text}`, e.g. on a login node; HF_HOME / HF_HUB_CACHE choose the cache), "
        f"try --backbone tiny for a first offline run, or use '{_random_init_name(spec)}' for random init{local}")


def _random_init_name(spec: BackboneSpec) -> str:
    return f"timm:{spec.model}:none" if spec.family == "timm" else f"{spec.model}:none"


@contextlib.contextmanager
def weights_available(spec: BackboneSpec):
    """The block builds `spec`: with the hub offline when its weights are cached (no request),
    as usual when they can be downloaded, and not at all (a one-line UserError, within
    PROBE_TIMEOUT_S) when they are neither here nor downloadable."""
    files = weight_files(spec)
    if not files:
        yield
        return
    if find_cached(files) is not None:
        with hub_offline():
            yield
        return
    reason = offline_reason(files)
    if reason is not None:
        raise missing_weights_error(spec, files, reason)
    yield


@dataclass(frozen=True)
class WeightStatus:
    backbone: str
    found: Optional[Path]  # the cached file a run would load
    files: tuple  # WeightFile candidates ((): nothing to fetch)

    @property
    def needs_weights(self) -> bool:
        return bool(self.files)

    def where(self) -> str:
        if not self.files:
            return "-"
        return str(self.found) if self.found else self.files[0].location()


def status(name: str) -> WeightStatus:
    """Whether a run of backbone `name` would find its weights on this machine, and where."""
    spec = parse_backbone(name)
    if spec.family == "open_clip":
        from ltbench.models.clip import check_names

        check_names(spec)
    else:
        from ltbench.models.timm_backbones import check_timm_name

        check_timm_name(spec.model)
    files = tuple(weight_files(spec))
    return WeightStatus(spec.text, find_cached(list(files)), files)


def download(file: WeightFile) -> Path:
    """Download one file into its cache, as the library would; raises on failure."""
    if file.repo:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(file.repo, file.filename, revision=file.revision, cache_dir=hub_cache_dir()))
    if file.local:
        raise FileNotFoundError(f"{file.local} is named by the library's config and is not there")
    from ltbench.models.clip import _open_clip

    if file.folder == open_clip_url_folder():
        return Path(_open_clip().pretrained.download_pretrained_from_url(file.url, cache_dir=file.folder))
    import torch

    target = Path(file.folder) / os.path.basename(urlsplit(file.url).path)
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.hub.download_url_to_file(file.url, str(target), progress=False)
    return target


def fetch(name: str) -> WeightStatus:
    """Put backbone `name`'s weights into the local cache (nothing to do when they are there,
    or when it loads none); a UserError naming the backbone when no candidate downloads."""
    from ltbench.core.errors import first_line_of
    from ltbench.models.backbones import quiet_hub_retries

    current = status(name)
    if current.found or not current.files:
        return current
    reason = offline_reason(list(current.files))
    if reason is not None:
        raise UserError(f"backbone '{name}': cannot download its weights: {reason}; run `ltbench weights fetch` "
                        "on a machine with internet (or set HTTPS_PROXY), into a cache the runs share")
    errors = []
    for file in current.files:  # the library's order: a repository's safetensors file may not exist
        try:
            with quiet_hub_retries():
                download(file)
            break
        except Exception as error:  # network, missing file, disk: try the next candidate
            errors.append(f"{file.describe()}: {first_line_of(error)}")
    after = status(name)
    if after.found is None:
        raise UserError(f"backbone '{name}': could not fetch its weights ({'; '.join(errors) or 'no file found'})")
    return after
