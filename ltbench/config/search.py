"""Where config files are found: the config folder and the search path in front of it.

The config folder is ``$LTBENCH_BENCHMARKS`` or the package ``ltbench.benchmarks`` (the
repository's benchmarks/ folder, shipped in the wheel). A dataset's or a method's file,
``datasets/<name>.yaml`` / ``methods/<name>.yaml``, is looked for along the search path: the
folders of ``$LTBENCH_CONFIG_PATH``, the folders plug-in packages add with ``add_config_path``,
then the config folder; every file of one name is used, the earlier ones winning.
"""
import os
from importlib import resources
from pathlib import Path
from typing import List

from ltbench.core import registry
from ltbench.core.errors import UserError

DEFAULTS_FILE = "defaults.yaml"
# Folders searched for datasets/<name>.yaml and methods/<name>.yaml before the config folder,
# separated as in $PATH.
CONFIG_PATH_ENV = "LTBENCH_CONFIG_PATH"


def benchmarks_dir(check: bool = True) -> Path:
    """The config folder: $LTBENCH_BENCHMARKS, or the package ``ltbench.benchmarks`` (the
    repository's benchmarks/ folder, shipped inside the wheel; docs/architecture.md, "Layout").
    With `check`, a folder without defaults.yaml is a one-line error: resolving a run without
    the defaults would give a config missing required keys."""
    env = os.environ.get("LTBENCH_BENCHMARKS")
    if env:
        root, origin = Path(env).expanduser(), "$LTBENCH_BENCHMARKS"
    else:
        try:
            root = Path(str(resources.files("ltbench.benchmarks"))).resolve()
        except ModuleNotFoundError:
            raise UserError("ltbench's config package (ltbench.benchmarks) is not installed; "
                            "reinstall ltbench (pip install .) or set LTBENCH_BENCHMARKS to a config folder") from None
        origin = "the installed package ltbench.benchmarks"
    if check and not (root / DEFAULTS_FILE).is_file():
        raise UserError(f"config folder {root} (from {origin}) has no {DEFAULTS_FILE}; point LTBENCH_BENCHMARKS "
                        "at a folder laid out like ltbench's benchmarks/ (defaults.yaml, datasets/, methods/) "
                        "or reinstall ltbench")
    return root


_added_config_dirs: List[Path] = []


def add_config_path(folder) -> Path:
    """Search `folder` (laid out like benchmarks/: ``datasets/<name>.yaml``, ``methods/<name>.yaml``)
    before ltbench's own config folder: how a plug-in package ships YAML beside its code (as
    open_clip's ``add_model_config``). Returns the folder; adding one twice changes nothing."""
    path = Path(folder).expanduser().resolve()
    if not path.is_dir():
        raise UserError(f"add_config_path: {path} is not a folder; pass the folder that holds datasets/ "
                        "or methods/")
    if path not in _added_config_dirs:
        _added_config_dirs.append(path)
    return path


def config_search_path() -> List[Path]:
    """Where datasets/<name>.yaml and methods/<name>.yaml are looked for, first wins: each folder
    of $LTBENCH_CONFIG_PATH (separated by os.pathsep), the folders plug-ins added with
    ``add_config_path`` (their entry points are imported first), then the config folder."""
    registry.load_plugins()
    user = [Path(part).expanduser() for part in os.environ.get(CONFIG_PATH_ENV, "").split(os.pathsep) if part]
    for folder in user:
        if not folder.is_dir():  # a mistyped folder would hide its files without a word
            raise UserError(f"${CONFIG_PATH_ENV} names {folder}, which is not a folder; fix or unset it")
    folders = user + list(_added_config_dirs) + [benchmarks_dir(check=False)]
    return list(dict.fromkeys(folders))


def config_files(kind: str, name: str) -> List[Path]:
    """Every ``<folder>/<kind>/<name>.yaml`` along the config search path, the first winning."""
    return [path for path in (folder / kind / f"{name}.yaml" for folder in config_search_path()) if path.is_file()]
