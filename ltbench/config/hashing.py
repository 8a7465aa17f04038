"""The config hash: the name of a configuration in record paths, tables and stage folders."""
import copy
import hashlib
import json

from ltbench.config.keys import get_dotted

# Keys that do not change a run's numbers: left out of the config hash (the seed is kept apart
# so that seeds of one configuration group together in tables).
# dataset.allow_duplicates only lets a run with duplicate split lines through; any run that
# passes without it reads the same data with it.
NON_IDENTITY_KEYS = ("seed", "runtime", "dataset.root", "dataset.split_dir", "dataset.allow_duplicates")
# The version of what a config holds. 2: every declared option is in every config (with its
# default), hashed as it is, and no key is left out to keep an older hash (docs/configuration.md,
# "Config hash"). A new version renames every configuration once, so a record, a stage or a
# cached array of an older layout is never taken for one of this layout.
CONFIG_HASH_VERSION = 2


def config_hash(cfg: dict) -> str:
    """SHA-256 of the config without the keys that cannot change results."""
    identity = copy.deepcopy(cfg)
    for dotted in NON_IDENTITY_KEYS:
        *parents, last = dotted.split(".")
        node = get_dotted(identity, ".".join(parents)) if parents else identity
        if isinstance(node, dict):
            node.pop(last, None)
    identity = {"config_hash_version": CONFIG_HASH_VERSION, "config": identity}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()
