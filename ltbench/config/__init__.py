"""A run's configuration: declared options, YAML files, resolution, checks and the config hash.

One module a job (docs/configuration.md, docs/architecture.md "Configuration"):

- ``options``: ``Option`` / ``Section``, what a key may hold and what it means, and ``Origin``,
  where a value was set;
- ``yaml_files``: reading YAML with the line and the source tag of each value;
- ``search``: the config folder and the search path in front of it (``add_config_path``);
- ``layers``: the files and sections a run's config merges, in order;
- ``keys``: dotted keys, merging, ``--cfg-options`` parsing;
- ``resolution``: ``RunRequest`` -> one checked config (``resolve``), and the config of a method
  a run builds on (``related_method_config``);
- ``hashing``: the config hash.
"""
from ltbench.config.hashing import CONFIG_HASH_VERSION, NON_IDENTITY_KEYS, config_hash
from ltbench.config.keys import backbone_key, deep_merge, get_dotted, leaves, parse_cfg_option, parse_cfg_options
from ltbench.config.layers import DATASET_DEFINITION_KEY, dataset_defaults, dataset_yaml, method_files
from ltbench.config.options import MISSING, SOURCES, Option, Origin, Section, Spec, declare_options, merged_options
from ltbench.config.resolution import (
    Resolved,
    RunRequest,
    check_config,
    option_values,
    related_method_config,
    resolve,
    resolve_dataset_config,
    resolve_run,
    run_schema,
    runtime_overrides,
)
from ltbench.config.search import (
    CONFIG_PATH_ENV,
    DEFAULTS_FILE,
    add_config_path,
    benchmarks_dir,
    config_files,
    config_search_path,
)
from ltbench.config.yaml_files import load_yaml, load_yaml_doc, parse_yaml_text, tags_in

__all__ = [
    "CONFIG_HASH_VERSION", "NON_IDENTITY_KEYS", "config_hash",
    "backbone_key", "deep_merge", "get_dotted", "leaves", "parse_cfg_option", "parse_cfg_options",
    "DATASET_DEFINITION_KEY", "dataset_defaults", "dataset_yaml", "method_files",
    "MISSING", "SOURCES", "Option", "Origin", "Section", "Spec", "declare_options", "merged_options",
    "Resolved", "RunRequest", "check_config", "option_values", "related_method_config", "resolve",
    "resolve_dataset_config", "resolve_run", "run_schema", "runtime_overrides",
    "CONFIG_PATH_ENV", "DEFAULTS_FILE", "add_config_path", "benchmarks_dir", "config_files", "config_search_path",
    "load_yaml", "load_yaml_doc", "parse_yaml_text", "tags_in",
]
