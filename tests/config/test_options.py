"""Declared options (ltbench.config.options): every registered method declares every key of its
config with a type, a help line and a source tag; bad keys and values are one-line errors naming
the key, the value, what is allowed and where the value was set; a plug-in inherits the common
training options; a run's config is resolved once."""
import pytest

from ltbench.config import NON_IDENTITY_KEYS, RunRequest, method_files, parse_cfg_options, resolve, resolve_run
from ltbench.config.keys import leaves
from ltbench.config.layers import PER_BACKBONE, PER_DATASET
from ltbench.config.options import Option, Section
from ltbench.core import registry
from ltbench.core.errors import UserError

DATASETS = ("digits_lt", "imagenet_lt", "places_lt", "inat2018", "cifar100_lt", "cifar10_lt", "folder_lt")
# Keys that name the run or cannot change its numbers: no source tag to give.
UNTAGGED = tuple(NON_IDENTITY_KEYS) + ("method", "dataset.name")


def _untagged_is_fine(key: str) -> bool:
    return any(key == name or key.startswith(name + ".") for name in UNTAGGED)


def _requests(method):
    """A request per shipped dataset, and one per backbone the method's per_backbone sections name."""
    files = method_files(method)
    picked_by = files.directive("per_backbone_from") or "backbone.clip"
    for dataset in DATASETS:
        yield RunRequest(method, dataset)
    for _, (_, name), _ in files.sections(PER_BACKBONE):
        yield RunRequest(method, "imagenet_lt", options=((picked_by, f"{name}:none" if picked_by == "backbone.clip"
                                                           else name),))


def _declared(schema: Section, key: str):
    """The Option a config key belongs to (itself, or the registered-part option it is inside)."""
    parts = key.split(".")
    for depth in range(len(parts), 0, -1):
        entry = schema.entry(parts[:depth])
        if isinstance(entry, Option):
            return entry if depth == len(parts) or entry.is_spec else None
        if isinstance(entry, Section):
            return None
    return None


@pytest.mark.parametrize("method", registry.names(registry.METHODS))
def test_every_key_of_a_methods_config_is_declared_with_type_help_and_source(method):
    for request in _requests(method):
        resolved = resolve_run(request)
        for key, _ in leaves(resolved.config):
            option = _declared(resolved.schema, key)
            assert option is not None, f"{method} on {request.dataset}: {key} is not declared"
            assert option.type is not None and option.help, f"{method}: {key} has no type or help"
            origin = resolved.origins.of(key)
            if not _untagged_is_fine(key) and "set by" not in origin.where:
                assert origin.tags, f"{method} on {request.dataset}: {key} ({origin.where}) has no source tag"


@pytest.mark.parametrize("method", registry.names(registry.METHODS))
def test_every_per_dataset_and_per_backbone_value_is_tagged(method):
    files = method_files(method)
    for kind in (PER_DATASET, PER_BACKBONE):
        for doc, inside, section in files.sections(kind):
            nested = [(inside, {k: v for k, v in section.items() if k != PER_BACKBONE})]
            nested += [(inside + (PER_BACKBONE, name), values or {})
                       for name, values in (section.get(PER_BACKBONE) or {}).items()]
            for where, values in nested:
                for key, _ in leaves(values):
                    note = doc.note(where + tuple(key.split(".")))
                    assert note and note.tags, f"{doc.path}:{note.line if note else '?'} {key} has no source tag"


def test_the_trainer_reads_exactly_the_declared_training_options():
    from ltbench.engine.options import TRAINING
    from ltbench.engine.trainer import TRAINER_KEYS

    assert set(TRAINING.options) - {"sampler"} == set(TRAINER_KEYS)


# -- bad values: (method, option, what the one line must name) -----------------------------------------
BAD = [
    ("linear_probe", "train.epochs=0", ["train.epochs=0", "a whole number >= 1", "set by --cfg-options"]),
    ("linear_probe", "train.epochs=true", ["train.epochs=True", "a whole number"]),
    ("linear_probe", "train.momentum=1.5", ["train.momentum=1.5", "from 0 to 1"]),
    ("linear_probe", "train.nesterov=1", ["train.nesterov=1", "true or false"]),
    ("linear_probe", "train.schedule=cosin", ["train.schedule='cosin'", "one of cosine", "did you mean: cosine"]),
    ("linear_probe", "loss=focall", ["loss", "unknown loss 'focall'", "focal", "--cfg-options"]),
    ("linear_probe", "train.sampler=class_aware_", ["train.sampler", "class_aware"]),
    ("ballad", "phase_a.augment.crop_scale=[0.5]", ["phase_a.augment.crop_scale=[0.5]", "a list of 2 finite numbers"]),
    ("ballad", "phase_a.augment.crop_scale=[0.9, 0.5]", ["crop_scale=[0.9, 0.5]", "0 < min <= max <= 1"]),
    ("ballad", "phase_a.logit_scale=-1", ["phase_a.logit_scale=-1", "> 0 or null"]),
    ("prompt_tuning", "logit_scale=learnt", ["logit_scale='learnt'", "> 0 or 'clip'"]),
    ("lift", "peft.ssf_at=[attn, x]", ["peft.ssf_at=['attn', 'x']", "each one of attn, mlp, ln"]),
    ("decoder", "stage1.epochs=9000", ["stage1.epochs=9000", "stage1.iterations (1000)"]),
    ("clip_ensemble", "members=[zeroshot]", ["members=['zeroshot']", "(at least 2)"]),
    ("posthoc_la", "tau_grid=[]", ["tau_grid=[]", "(at least 1)"]),
    ("posthoc_prior", "target_prior=[0, 1]", ["target_prior=[0, 1]", "uniform, a list of one number > 0"]),
    ("tackle", "select.top_n=2.5", ["select.top_n=2.5", "a whole number >= 0 or null"]),
    ("prompt_tuning", "train.warmup_lr=null", ["train.warmup_lr=None", "warmup_type constant"]),
    ("zeroshot_clip", "runtime.num_workers=-1", ["runtime.num_workers=-1", ">= 0 or 'auto'"]),
    ("zeroshot_clip", "method=ballad", ["method is the name the run was asked for", "--method"]),
]


@pytest.mark.parametrize("method, option, named", BAD, ids=[f"{case[0]}:{case[1]}" for case in BAD])
def test_a_bad_value_is_one_line_naming_key_value_allowed_and_where(method, option, named):
    with pytest.raises(UserError) as error:
        resolve(RunRequest(method, "digits_lt", options=parse_cfg_options([option])))
    message = str(error.value)
    assert "\n" not in message
    for part in named:
        assert part in message, (part, message)


def _config_path(tmp_path, monkeypatch, name: str, text: str):
    folder = tmp_path / "configs"
    (folder / "methods").mkdir(parents=True)
    path = folder / "methods" / f"{name}.yaml"
    path.write_text(text)
    monkeypatch.setenv("LTBENCH_CONFIG_PATH", str(folder))
    return path


def test_a_bad_yaml_value_names_its_file_and_line(tmp_path, monkeypatch):
    path = _config_path(tmp_path, monkeypatch, "linear_probe", "head:\n  type: cosine\ntrain:\n  lr: -1  # [ours]\n")
    with pytest.raises(UserError, match=rf"train.lr=-1: expected a finite number > 0 .*set in {path}:4"):
        resolve(RunRequest("linear_probe", "digits_lt"))


def test_another_datasets_section_is_checked_too(tmp_path, monkeypatch):
    path = _config_path(tmp_path, monkeypatch, "linear_probe",
                        "per_dataset:\n  places_lt:\n    train:\n      epoch: 3\n")
    with pytest.raises(UserError, match=rf"unknown config key 'train.epoch'.*train.epochs.*{path}:4"):
        resolve(RunRequest("linear_probe", "digits_lt"))
    path.write_text("per_backbone:\n  RN50:\n    train: {lr: fast}\n")
    with pytest.raises(UserError, match=rf"train.lr='fast'.*{path}:3"):
        resolve(RunRequest("linear_probe", "digits_lt"))


def test_a_file_on_the_search_path_changes_only_what_it_sets(tmp_path, monkeypatch):
    _config_path(tmp_path, monkeypatch, "linear_probe", "train:\n  epochs: 3  # [ours]\n")
    cfg = resolve(RunRequest("linear_probe", "imagenet_lt"))
    assert cfg["train"]["epochs"] == 3 and cfg["train"]["lr"] == 0.001 and cfg["head"]["type"] == "linear"


# -- a plug-in's options ---------------------------------------------------------------------------------
def test_a_plugin_inherits_the_common_training_options(register_method):
    from ltbench.api import TRAINING, Method
    from ltbench.engine.trainer import TRAINER_KEYS, train_settings

    class Knn(Method):
        """kNN with a trained projection (a test plug-in)."""

        options = {"k": Option(int, 10, source="ours", ge=1, help="neighbours per prediction"), "train": TRAINING}

    register_method("knn_test_plugin", Knn)
    cfg = resolve(RunRequest("knn_test_plugin", "digits_lt", options=parse_cfg_options(["train.lr=0.1"])))
    assert cfg["k"] == 10 and cfg["train"]["lr"] == 0.1
    assert set(TRAINER_KEYS) <= set(cfg["train"]) and cfg["train"]["sampler"] == "instance"
    assert train_settings(cfg["train"], "train")["epochs"] == 30  # what the trainer reads, all there
    with pytest.raises(UserError, match=r"k=0: expected a whole number >= 1 \(neighbours per prediction\)"):
        resolve(RunRequest("knn_test_plugin", "digits_lt", options=(("k", 0),)))
    with pytest.raises(UserError, match="unknown config key 'kk'.*`options`"):
        resolve(RunRequest("knn_test_plugin", "digits_lt", options=(("kk", 0),)))


def test_an_option_without_a_value_anywhere_is_an_error(register_method):
    from ltbench.api import Method

    class NoValue(Method):
        options = {"k": Option(int, ge=1, help="neighbours")}

    register_method("novalue_test_plugin", NoValue)
    with pytest.raises(UserError, match=r"k has no value.*--cfg-options k=VALUE"):
        resolve(RunRequest("novalue_test_plugin", "digits_lt"))
    assert resolve(RunRequest("novalue_test_plugin", "digits_lt", options=(("k", 3),)))["k"] == 3


# -- resolved once ---------------------------------------------------------------------------------------
def _count(monkeypatch, module, name):
    calls = []
    original = getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def test_a_config_is_resolved_once_per_request(monkeypatch):
    from ltbench.config import layers
    from ltbench.config import resolution as resolve_module

    files = _count(monkeypatch, resolve_module, "method_files")
    datasets = _count(monkeypatch, layers, "dataset_docs")
    merged = _count(monkeypatch, resolve_module.Merger, "merge")
    # TACKLE picks its per_backbone section by backbone.vision, which the options change.
    cfg = resolve(RunRequest("tackle", "imagenet_lt", options=(("backbone.vision", "deit_small_patch16_224"),)))
    assert cfg["train"]["epochs"] == 300  # the DeiT section, chosen before the options were merged
    assert len(files) == 1 and len(datasets) == 1
    # declared defaults, defaults.yaml, the dataset's file, the method's, per_dataset (none), per_backbone
    assert len(merged) == 6


def test_a_run_resolves_its_config_once_and_reads_no_dataset_file_again(run_cli, tmp_path, monkeypatch):
    from ltbench.config import layers
    from ltbench.config import resolution as resolve_module

    resolved = _count(monkeypatch, resolve_module, "resolve_run")
    datasets = _count(monkeypatch, layers, "dataset_docs")
    code, _, err = run_cli("run", "--method", "zeroshot_clip", "--dataset", "digits_lt", "--no-progress",
                           "--out", tmp_path, "--cfg-options", "text.templates=single")
    assert code == 0, err
    assert len(resolved) == 1 and len(datasets) == 1


def test_a_dataset_builder_declares_its_options_or_takes_its_section_as_it_is():
    from ltbench.api import DATASETS

    def build_declared(options, require_all_splits=True):
        raise AssertionError("resolving builds no dataset")

    def build_open(options, require_all_splits=True):
        raise AssertionError("resolving builds no dataset")

    build_declared.options = {"size": Option(int, 32, ge=8, source="ours", help="image side in pixels")}
    DATASETS.register_module(name="declared_test_dataset", module=build_declared, force=True)
    DATASETS.register_module(name="open_test_dataset", module=build_open, force=True)
    try:
        assert resolve(RunRequest("zeroshot_clip", "declared_test_dataset"))["dataset"]["size"] == 32
        with pytest.raises(UserError, match=r"dataset.size=4: expected a whole number >= 8 \(image side in pixels\)"):
            resolve(RunRequest("zeroshot_clip", "declared_test_dataset", options=(("dataset.size", 4),)))
        with pytest.raises(UserError, match="unknown config key 'dataset.sise'.*dataset.size"):
            resolve(RunRequest("zeroshot_clip", "declared_test_dataset", options=(("dataset.sise", 4),)))
        cfg = resolve(RunRequest("zeroshot_clip", "open_test_dataset", options=(("dataset.anything", [1, 2]),
                                                                                  ("dataset.nested.deep", 1))))
        assert cfg["dataset"]["anything"] == [1, 2] and cfg["dataset"]["nested"] == {"deep": 1}
    finally:
        DATASETS.module_dict.pop("declared_test_dataset", None)
        DATASETS.module_dict.pop("open_test_dataset", None)
