"""The layers a run's config is merged from, each with where its values come from.

Later wins: the options' declared defaults <- defaults.yaml <- datasets/<D>.yaml <- the method's
YAML (on top of the file its ``_base_`` names) <- its ``per_dataset.<D>`` <- its
``per_backbone.<MODEL>`` <- ``per_dataset.<D>.per_backbone.<MODEL>`` <- CLI flags <-
``--cfg-options``. A dataset's or method's YAML is every file of its name along the config search
path, the earlier ones winning.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Tuple

from ltbench.config.options import Origin
from ltbench.config.search import DEFAULTS_FILE, benchmarks_dir, config_files
from ltbench.config.yaml_files import YamlDoc, load_yaml_doc
from ltbench.core.errors import UserError

# The section of a dataset's YAML that defines a split-file dataset (ltbench.data.datasets.
# definitions): what the data is, not a setting of a run, so it stays out of the run's config.
DATASET_DEFINITION_KEY = "split_files"
# Keys of a method's YAML that say how to read the file, not settings: its base file, its
# per-dataset and per-backbone sections, and the key that picks the per_backbone section.
BASE_KEY = "_base_"
PER_DATASET, PER_BACKBONE, PER_BACKBONE_FROM = "per_dataset", "per_backbone", "per_backbone_from"
# The search space `ltbench tune` explores (app/tune.py): ranges of options, not settings.
SEARCH_KEY = "search"
METHOD_FILE_DIRECTIVES = (BASE_KEY, PER_DATASET, PER_BACKBONE, PER_BACKBONE_FROM, SEARCH_KEY)


@dataclass
class Layer:
    """Values to merge (a nested mapping) and, for a key path inside them, where it was set."""

    values: dict
    origin: Callable[[Tuple[str, ...]], Origin]
    what: str  # 'benchmarks/methods/ballad.yaml', '--cfg-options': named in unknown-key errors

    def where(self, keys: Tuple[str, ...]) -> str:
        return self.origin(keys).where


def yaml_layer(doc: YamlDoc, values: dict, inside: Tuple[str, ...] = ()) -> Layer:
    """The values of a YAML file (or of its section at key path `inside`), noted by line and tags."""
    def origin(keys):
        path = inside + tuple(keys)
        note = doc.note(path)
        tags, comment = (note.tags, note.comment) if note else ((), "")
        if not comment and path + ("type",) in doc.notes:  # a loss / sampler spec: its type's note
            tags, comment = tags or doc.notes[path + ("type",)].tags, doc.notes[path + ("type",)].comment
        return Origin(f"set in {doc.path}:{note.line}" if note else f"set in {doc.path}", tags, comment)

    return Layer(values, origin, str(doc.path))


def fixed_layer(values: dict, where: str, tags=()) -> Layer:
    return Layer(values, lambda keys: Origin(where, tuple(tags)), where)


def dataset_docs(dataset: str) -> List[YamlDoc]:
    """Every datasets/<name>.yaml of the search path, lowest priority first."""
    return [load_yaml_doc(path, copied=False) for path in reversed(config_files("datasets", dataset))]


def dataset_yaml(dataset: str) -> dict:
    """The dataset's YAML: every datasets/<name>.yaml of the search path merged, the earlier ones
    winning ({} when there is none)."""
    from ltbench.config.keys import deep_merge

    merged = {}
    for doc in dataset_docs(dataset):
        merged = deep_merge(merged, doc.data)
    return merged


def dataset_defaults(dataset_name: str) -> dict:
    """The `dataset` section of datasets/<name>.yaml ({} for a dataset without one)."""
    section = dataset_yaml(dataset_name).get("dataset")
    return section if isinstance(section, dict) else {}


def base_layers() -> List[Layer]:
    """defaults.yaml: the values every run starts from."""
    doc = load_yaml_doc(benchmarks_dir() / DEFAULTS_FILE, copied=False)
    return [yaml_layer(doc, doc.data)]


def dataset_layers(dataset: str) -> List[Layer]:
    layers = []
    for doc in dataset_docs(dataset):
        values = {key: value for key, value in doc.data.items() if key != DATASET_DEFINITION_KEY}
        layers.append(yaml_layer(doc, values))
    return layers


@dataclass
class MethodFiles:
    """A method's YAML files, base files first, each lowest priority first."""

    docs: List[YamlDoc]

    def directive(self, key: str):
        """A directive's value: the last file that gives one wins."""
        values = [doc.data[key] for doc in self.docs if key in doc.data]
        return values[-1] if values else None

    def top_layers(self) -> List[Layer]:
        return [yaml_layer(doc, {k: v for k, v in doc.data.items() if k not in METHOD_FILE_DIRECTIVES})
                for doc in self.docs]

    def section_layers(self, *keys: str) -> List[Layer]:
        """The section at key path `keys` (per_dataset.<D>, per_backbone.<B>, ...) of each file,
        without the sections inside it that other layers take (a per_dataset section's per_backbone)."""
        layers = []
        for doc in self.docs:
            node = doc.data
            for key in keys:
                node = node.get(key) if isinstance(node, dict) else None
            if isinstance(node, dict) and node:
                values = {k: v for k, v in node.items() if k != PER_BACKBONE}
                layers.append(yaml_layer(doc, values, tuple(keys)))
        return layers

    def sections(self, key: str):
        """(doc, name, section) of every per_dataset / per_backbone section of every file."""
        for doc in self.docs:
            node = doc.data.get(key)
            if node is None:
                continue
            if not isinstance(node, dict):
                raise UserError(f"{doc.where((key,))}: {key} must map names to sections of settings")
            for name, section in node.items():
                yield doc, (key, str(name)), section


def method_files(method: str) -> MethodFiles:
    """methods/<name>.yaml along the search path, on top of the files its `_base_` names
    (variants of one method family share one file of settings and override a few)."""
    docs: List[YamlDoc] = []
    chain = []
    name: Optional[str] = method
    while name is not None:
        if name in chain:
            raise UserError(f"methods/{chain[-1]}.yaml: _base_ '{name}' makes a cycle ({' -> '.join(chain + [name])})")
        paths = config_files("methods", name)
        if not paths:
            if chain:
                raise UserError(f"methods/{chain[-1]}.yaml: _base_ '{name}' names no methods/{name}.yaml on the "
                                "config search path")
            break
        chain.append(name)
        own = [load_yaml_doc(path, copied=False) for path in reversed(paths)]
        docs[:0] = own
        bases = [doc.data[BASE_KEY] for doc in own if BASE_KEY in doc.data]
        name = bases[-1] if bases else None
        if name is not None and not isinstance(name, str):
            raise UserError(f"{own[-1].path}: _base_ must name another method's file, got {name!r}")
    return MethodFiles(docs)


def relative(path) -> str:
    """A path as the docs name it: inside the config folder, from there (methods/ballad.yaml)."""
    path = Path(path)
    try:
        return str(path.relative_to(benchmarks_dir(check=False).parent))
    except ValueError:
        return str(path)
