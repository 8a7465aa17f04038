"""CoOp's parts (methods/prompt_tuning): the prompts' token layout, EOT pooling, the chunked and
checkpointed text encoding against one pass, and which parameters a step changes."""
import math

import pytest
import torch
import torch.nn.functional as F

from ltbench.config import RunRequest, resolve
from ltbench.engine.trainer import warmup_cosine, warmup_factor
from ltbench.methods.prompt_tuning.method import PromptTuner
from ltbench.methods.prompt_tuning.prompts import (
    PLACEHOLDER,
    PromptLearner,
    class_prompts,
    initial_context,
    prompt_layout,
)
from ltbench.models.factory import create_backbone

NAMES = ["zero", "golden retriever", "seven"]


@pytest.fixture(scope="module")
def clip():
    model = create_backbone("tiny", "cpu")
    model.model.eval().requires_grad_(False)
    return model


def _options(**changes):
    return {"n_ctx": 4, "class_specific": False, "class_position": "end", "init": "random", "init_std": 0.02,
            "init_phrase": "a photo of a", **changes}


def _learner(clip, names=NAMES, seed=0, **changes):
    options = _options(**changes)
    tokens, slots = class_prompts(clip, names, options["n_ctx"], options["class_position"])
    return PromptLearner(initial_context(clip, options, len(names), seed), tokens, slots, clip.token_embeddings)


@pytest.mark.parametrize("position, expected", [
    ("end", ["C", "C", "C", "C", "n1", "n2", "."]),
    ("front", ["n1", "n2", "C", "C", "C", "C", "."]),
    ("middle", ["C", "C", "n1", "n2", "C", "C", "."]),
])
def test_layouts_put_the_context_and_the_class_name_where_coop_does(position, expected):
    ids, slots = prompt_layout([101, 102], [269], 4, position, placeholder=7)
    names = {7: "C", 101: "n1", 102: "n2", 269: "."}
    assert [names[i] for i in ids] == expected
    assert [ids[s] for s in slots] == [7] * 4 and slots == [i for i, name in enumerate(expected) if name == "C"]


def test_middle_with_an_odd_context_puts_the_larger_half_after_the_name():
    ids, slots = prompt_layout([101], [269], 5, "middle", placeholder=7)
    assert ids == [7, 7, 101, 7, 7, 7, 269] and slots == [0, 1, 3, 4, 5]


def test_class_prompts_are_sos_context_name_dot_eos_and_pool_at_eos(clip):
    tokens, slots = class_prompts(clip, NAMES, 4, "end")
    sot, eot = clip.special_ids
    placeholder = clip.word_ids(PLACEHOLDER)[0]
    for row, name in enumerate(NAMES):
        name_ids = clip.word_ids(name)
        expected = [sot] + [placeholder] * 4 + name_ids + clip.word_ids(".") + [eot]
        assert tokens[row, :len(expected)].tolist() == expected
        assert tokens[row, len(expected):].eq(0).all()
        assert slots[row].tolist() == [1, 2, 3, 4]
        # CoOp's TextEncoder pools argmax of the ids: the end-of-text token, whatever the words.
        assert int(tokens[row].argmax()) == len(expected) - 1


def coop_prompt(clip, name, n_ctx, position):
    """Transcription of CoOp's PromptLearner (trainers/coop.py, random init): what stands at each
    position of the prompt it feeds the text encoder, 'CTX' where a learnt vector goes."""
    prompt_prefix = " ".join(["X"] * n_ctx)
    name = name.replace("_", " ")
    name_len = len(clip.word_ids(name))  # name_lens: len(_tokenizer.encode(name))
    sot, eot = clip.special_ids
    tokenized = [sot, *clip.word_ids(prompt_prefix + " " + name + "."), eot]  # clip.tokenize(p), unpadded
    prefix, suffix, ctx = tokenized[:1], tokenized[1 + n_ctx:], ["CTX"] * n_ctx
    if position == "end":
        return prefix + ctx + suffix
    if position == "middle":
        half_n_ctx = n_ctx // 2
        return prefix + ctx[:half_n_ctx] + suffix[:name_len] + ctx[half_n_ctx:] + suffix[name_len:]
    return prefix + suffix[:name_len] + ctx + suffix[name_len:]  # front


@pytest.mark.parametrize("position", ["end", "middle", "front"])
def test_prompts_are_coops_for_names_ending_in_punctuation_too(clip, position):
    # Six ImageNet-LT names end in ")": CoOp's one-go tokenization merges ")." into one token.
    names = ["kite (bird of prey)", "ram (adult male sheep)", "golden_retriever", "seven"]
    tokens, slots = class_prompts(clip, names, 4, position)
    for row, name in enumerate(names):
        ours = tokens[row, :int(tokens[row].argmax()) + 1].tolist()
        for slot in slots[row].tolist():
            ours[slot] = "CTX"
        assert ours == coop_prompt(clip, name, 4, position), name


def test_embeddings_hold_the_context_in_its_slots_and_the_words_elsewhere(clip):
    learner = _learner(clip, class_specific=True)
    rows = torch.tensor([2, 0])
    embeddings = learner.embeddings(rows)
    words = clip.token_embeddings(learner.tokens[rows])
    for out, row in enumerate(rows.tolist()):
        slots = learner.slots[row]
        assert torch.equal(embeddings[out, slots], learner.ctx[row].detach())
        others = torch.ones(embeddings.shape[1], dtype=torch.bool)
        others[slots] = False
        assert torch.equal(embeddings[out, others], words[out, others])


def test_prompt_embeddings_of_plain_words_give_clips_own_text_features(clip):
    """Fed the words' own embeddings, the embedding path is encode_text: same positions, same
    EOT pooling, the tower cut at the longest prompt."""
    tokens = clip.tokenize(["a photo of a zero.", "seven", "a blurry photo of a golden retriever."])
    features = clip.encode_prompt_embeddings(lambda rows: clip.token_embeddings(tokens[rows]), tokens, chunk_size=2)
    expected = F.normalize(clip.model.encode_text(tokens).float(), dim=-1)
    torch.testing.assert_close(features, expected, atol=1e-5, rtol=1e-5)


def test_positions_after_the_end_of_text_do_not_change_the_features(clip):
    learner = _learner(clip)
    tuner = PromptTuner(clip, learner, 100.0, chunk=8, checkpointing=False)
    before = tuner.text_features()
    learner.tokens[:, -5:] = 123  # padding: after every prompt's end-of-text token
    torch.testing.assert_close(tuner.text_features(), before)


def _features_and_grad(clip, learner, chunk, checkpointing, weights):
    learner.ctx.grad = None
    features = PromptTuner(clip, learner, 1.0, chunk, checkpointing).text_features()
    (features * weights).sum().backward()
    return features.detach(), learner.ctx.grad.clone()


@pytest.mark.parametrize("class_specific", [False, True])
def test_chunked_checkpointed_encoding_matches_one_pass_in_features_and_gradients(clip, class_specific):
    names = [f"class {i} " + "word " * (i % 5) for i in range(13)]  # prompts of several lengths
    learner = _learner(clip, names, class_specific=class_specific)
    weights = torch.randn(len(names), clip.embed_dim, generator=torch.Generator().manual_seed(1))
    one_pass = _features_and_grad(clip, learner, len(names), False, weights)
    chunked = _features_and_grad(clip, learner, 4, True, weights)
    torch.testing.assert_close(chunked[0], one_pass[0], atol=1e-5, rtol=1e-5)
    # Float rounding of differently shaped products: within 1e-4 of the largest gradient.
    scale = float(one_pass[1].abs().max())
    torch.testing.assert_close(chunked[1], one_pass[1], atol=1e-4 * scale, rtol=1e-4)
    assert one_pass[1].abs().sum() > 0


def test_a_step_changes_the_context_and_nothing_else(clip):
    learner = _learner(clip)
    tuner = PromptTuner(clip, learner, 100.0, chunk=2, checkpointing=True)
    assert [name for name, p in tuner.named_parameters() if p.requires_grad] == ["learner.ctx"]
    frozen = {name: p.detach().clone() for name, p in clip.model.named_parameters()}
    context = learner.ctx.detach().clone()
    optimizer = torch.optim.SGD([learner.ctx], lr=0.1)
    images = F.normalize(torch.randn(6, clip.embed_dim, generator=torch.Generator().manual_seed(2)), dim=-1)
    F.cross_entropy(tuner(images), torch.tensor([0, 1, 2, 0, 1, 2])).backward()
    optimizer.step()
    assert not torch.equal(learner.ctx.detach(), context)
    assert all(torch.equal(p, frozen[name]) for name, p in clip.model.named_parameters())
    assert all(p.grad is None for p in clip.model.parameters())


def test_a_phrase_initialises_the_last_slots_with_its_word_embeddings(clip):
    learner = _learner(clip, n_ctx=6, init="phrase", init_phrase="a photo of a")
    words = clip.token_embeddings(torch.tensor([clip.word_ids("a photo of a")]))[0]
    torch.testing.assert_close(learner.ctx[2:].detach(), words)
    assert learner.ctx[:2].abs().max() < 0.2  # N(0, 0.02)


def test_the_context_init_depends_on_the_seed_only(clip):
    assert torch.equal(_learner(clip, seed=3).ctx, _learner(clip, seed=3).ctx)
    assert not torch.equal(_learner(clip, seed=3).ctx, _learner(clip, seed=4).ctx)


def test_constant_warmup_runs_at_warmup_lr_then_the_cosine_starts_at_the_base_lr():
    factor = warmup_cosine(110, 10, "cosine", warmup_factor=1e-5 / 2e-3)
    assert [factor(step) for step in range(10)] == [pytest.approx(0.005)] * 10
    assert factor(10) == pytest.approx(1.0) and factor(109) < 0.01
    assert warmup_factor({"lr": 0.002, "warmup_type": "linear", "warmup_lr": None}) is None  # linear, as before
    assert warmup_factor({"lr": 0.002, "warmup_type": "constant", "warmup_lr": 1e-5}) == pytest.approx(0.005)
    from ltbench.config import RunRequest, parse_cfg_options, resolve

    for option, message in (("train.warmup_lr=0", "train.warmup_lr=0: expected a finite number > 0 or null"),
                            ("train.warmup_type=steps", "train.warmup_type='steps': expected one of linear, constant")):
        with pytest.raises(Exception, match=message):
            resolve(RunRequest("prompt_tuning", "digits_lt", options=parse_cfg_options([option])))


class DasslConstantWarmup(torch.optim.lr_scheduler.LRScheduler):
    """Transcription of Dassl.pytorch's ConstantWarmupScheduler (dassl/optim/lr_scheduler.py,
    _BaseWarmupScheduler.step and ConstantWarmupScheduler.get_lr), which CoOp's configs select
    (LR_SCHEDULER cosine, WARMUP_EPOCH 1, WARMUP_TYPE constant, WARMUP_CONS_LR 1e-5)."""

    def __init__(self, optimizer, successor, warmup_epoch, cons_lr):
        self.successor, self.warmup_epoch, self.cons_lr = successor, warmup_epoch, cons_lr
        super().__init__(optimizer)

    def get_lr(self):
        if self.last_epoch >= self.warmup_epoch:
            return self.successor.get_last_lr()
        return [self.cons_lr for _ in self.base_lrs]

    def step(self, epoch=None):
        if self.last_epoch >= self.warmup_epoch:
            self.successor.step(epoch)
            self._last_lr = self.successor.get_last_lr()
        else:
            super().step(epoch)


def coop_lrs(lr, max_epoch, batches_per_epoch, warmup_epoch=1, cons_lr=1e-5):
    """The lr of every optimizer step of a CoOp run: Dassl's build_lr_scheduler (cosine:
    CosineAnnealingLR(optimizer, float(MAX_EPOCH)), WARMUP_RECOUNT true, so the successor counts
    from 0) in the constant warmup wrapper, stepped by CoOp's forward_backward after the last
    batch of each epoch (trainers/coop.py: `if (self.batch_idx + 1) == self.num_batches`)."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, float(max_epoch))
    scheduler = DasslConstantWarmup(optimizer, cosine, warmup_epoch, cons_lr)
    lrs = []
    for _ in range(max_epoch):
        for batch_idx in range(batches_per_epoch):
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            if batch_idx + 1 == batches_per_epoch:
                scheduler.step()
    return lrs


@pytest.mark.parametrize("dataset", ["imagenet_lt", "inat2018"])
def test_the_recipes_lr_is_coops_dassl_schedule_step_by_step(dataset):
    train = resolve(RunRequest(method="prompt_tuning", dataset=dataset, backbone="ViT-B-16:openai", seed=0))["train"]
    epochs, steps = train["epochs"], 7
    factor = warmup_cosine(epochs * steps, int(train["warmup_epochs"]) * steps, train["schedule"],
                           warmup_factor=warmup_factor(train), steps_per_epoch=steps)
    ours = [train["lr"] * factor(step) for step in range(epochs * steps)]
    assert ours == pytest.approx(coop_lrs(train["lr"], epochs, steps), rel=1e-9, abs=1e-12)


def test_coops_schedule_restarts_after_the_warmup_and_never_reaches_zero():
    lrs = coop_lrs(0.002, 10, 1)
    assert lrs[:2] == pytest.approx([1e-5, 0.002])  # the warmup epoch, then the full lr
    assert lrs[-1] == pytest.approx(0.002 * 0.5 * (1 + math.cos(math.pi * 8 / 10)))
    assert sum(lrs) / 0.002 / 10 == pytest.approx(0.548, abs=1e-3)  # ltbench's former cosine to 0: 0.451
    assert sum(coop_lrs(0.002, 2, 1)) / 0.002 / 2 == pytest.approx(0.5025)
