"""Every registered method, fit and predict, on the simulated device (see conftest.py): a CPU
tensor mixed into a device computation anywhere in a method (its fit steps, predict, the text
classifier, feature and token reads, losses, the trainer step, best-on-val, second stages)
fails here as it would on a GPU.

Each method runs on a small digits_lt (few images, one short epoch per stage) with its own
defaults, and VARIANTS add runs that take the device-sensitive branches the defaults skip
(augmented images instead of cached features, best-on-val selection, test-time crops, ...). A
newly registered method is covered by the parametrisation over the registry; give it SHORT
options if its defaults train long.
"""
import pytest

from ltbench.core import registry

pytestmark = pytest.mark.device_strict

# A small digits_lt (4 to 12 train images a class, 2 val and 2 test images a class) and one prompt
# template: the device code is the same, the work a fraction.
SMALL_DATA = ("dataset.max_per_class=12", "dataset.imbalance_ratio=3", "dataset.test_per_class=2",
              "dataset.val_per_class=2", "eval_batch_size=256", "text.templates=single")
DECODER = ("stage1.iterations=2", "stage1.warmup_iterations=0", "stage2.iterations=2", "stage2.batch_size=16",
           "stage1.batch_size=16")
SHORT = {
    "ballad": ("phase_a.epochs=1", "phase_a.warmup_epochs=0", "phase_a.batch_size=32", "phase_b.epochs=1",
               "phase_b.batch_size=16"),
    "clip_ensemble": ("members=[zeroshot,linear_probe]",),
    "posthoc_la": ("source_options=[train.epochs=1]",),
    "posthoc_prior": ("source_options=[train.epochs=1]",),
    "posthoc_taunorm": ("source_options=[train.epochs=1]",),
    "clip_finetune": ("train.epochs=1", "train.warmup_epochs=0", "train.batch_size=32"),
    "clip_finetune_bs": ("train.epochs=1", "train.warmup_epochs=0", "train.batch_size=32"),
    "lift": ("train.epochs=1", "train.batch_size=32"),
    "lift_plus": ("train.epochs=2", "train.batch_size=32"),  # the minimalist schedule spans >= 2 epochs
    "linear_probe": ("train.epochs=1",),
    "prompt_tuning": ("train.epochs=1", "train.warmup_epochs=0", "train.batch_size=32"),
    "prompt_tuning_bs": ("train.epochs=1", "train.warmup_epochs=0", "train.batch_size=32"),
    "tackle": ("teacher.source=clip", "train.epochs=1", "batch_size=32"),
}
# Runs beyond each method's defaults, for the branches those skip.
VARIANTS = [
    ("ballad", ("phase_b.augment.enabled=true", "phase_b.select=best_val")),
    ("decoder", ("stage1.tokens_cache=false", "stage1.select=best_val")),
    ("decoder_crt", ("stage2.select=best_val",)),
    ("lift", ("tte.enabled=true", "head.init=random")),
    ("lift_plus", ("peft.type=aft", "head.init=class_mean", "tte.enabled=true")),
    ("linear_probe", ("head.init_from_text=true", "head.standardize=false", "head.type=cosine")),
    ("prompt_tuning", ("train.augment.enabled=true", "context.init=phrase", "context.class_specific=false")),
    ("tackle", ("ensemble.with_clip=true",)),
    ("clip_finetune", ("head.init=random", "head.type=linear")),
]


def short_options(method):
    if method in SHORT:
        return SHORT[method]
    if method == "decoder" or method.startswith("decoder_"):
        return DECODER
    return ()


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tmp_path_factory.mktemp("strict")


@pytest.mark.parametrize("method", registry.names(registry.METHODS))
def test_method_runs_on_the_simulated_device(strict_run, out, method):
    record = strict_run(method, out, *SMALL_DATA, *short_options(method))
    assert record["device"] == "meta"
    assert len(record["metrics"]["per_class_accuracy"]) == 10


@pytest.mark.parametrize("method,options", VARIANTS, ids=[f"{m}-{'-'.join(o)[:40]}" for m, o in VARIANTS])
def test_method_variant_runs_on_the_simulated_device(strict_run, out, method, options):
    strict_run(method, out, *SMALL_DATA, *short_options(method), *options)


# The methods whose steps gather across processes (contrastive negatives, token rows, features).
IN_A_PROCESS_GROUP = ["ballad", "decoder", "clip_finetune", "lift"]


@pytest.mark.parametrize("method", IN_A_PROCESS_GROUP)
def test_method_runs_in_a_process_group_on_the_simulated_device(strict_run, simulated_device, tmp_path, monkeypatch,
                                                                method):
    from ltbench.core import distributed

    gathered = []
    all_gather_list = distributed.all_gather_list

    def counted(tensor):
        gathered.append(simulated_device.is_on_device(tensor))
        return all_gather_list(tensor)

    monkeypatch.setattr(distributed, "all_gather_list", counted)
    record = strict_run(method, tmp_path, *SMALL_DATA, *short_options(method), process_group=True)
    assert len(record["metrics"]["per_class_accuracy"]) == 10
    assert gathered, "nothing went through a gather"
