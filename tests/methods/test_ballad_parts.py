"""BALLAD's parts: the multi-positive loss, the adapter, prompt batches, trainable parameters."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from ltbench.core.errors import UserError
from ltbench.engine.finetune import PromptBatches
from ltbench.losses import multi_positive_contrastive
from ltbench.methods.ballad.adapters import ResidualAdapter, TextCosineClassifier
from ltbench.models.clip_finetune import ClipFineTuner
from ltbench.models.trainable import set_trainable


def _log_softmax(values, index):
    return values[index] - math.log(sum(math.exp(v) for v in values))


def _by_hand(logits, labels):
    """The paper's formula written out with loops: sum of the two directions' mean over anchors
    of the mean -log softmax over the anchor's positives."""
    size = len(labels)
    rows = [[float(logits[i][j]) for j in range(size)] for i in range(size)]
    image_to_text = text_to_image = 0.0
    for i in range(size):
        positives = [j for j in range(size) if labels[j] == labels[i]]
        image_to_text += -sum(_log_softmax(rows[i], j) for j in positives) / len(positives)
        column = [rows[k][i] for k in range(size)]
        text_to_image += -sum(_log_softmax(column, k) for k in positives) / len(positives)
    return image_to_text / size + text_to_image / size


def test_contrastive_loss_with_distinct_classes_is_clip_loss():
    logits = torch.tensor([[3.0, 1.0, 0.0], [0.5, 2.0, -1.0], [0.0, 0.0, 1.0]])
    targets = torch.arange(3)
    expected = nn.functional.cross_entropy(logits, targets) + nn.functional.cross_entropy(logits.t(), targets)
    assert multi_positive_contrastive(logits, targets).item() == pytest.approx(expected.item(), abs=1e-6)


def test_contrastive_loss_repeated_classes_and_a_single_sample_class():
    # Classes 0, 0, 1: images 0 and 1 have texts 0 and 1 as positives; class 1 has one sample,
    # so image 2's only positive is text 2 (and the same by columns for the texts).
    logits = [[2.0, 1.0, -1.0], [0.5, 1.5, 0.0], [0.0, -0.5, 3.0]]
    rows = [math.log(sum(math.exp(v) for v in row)) for row in logits]
    columns = [math.log(sum(math.exp(logits[i][j]) for i in range(3))) for j in range(3)]
    image_to_text = (((rows[0] - 2.0) + (rows[0] - 1.0)) / 2
                     + ((rows[1] - 0.5) + (rows[1] - 1.5)) / 2
                     + (rows[2] - 3.0)) / 3
    text_to_image = (((columns[0] - 2.0) + (columns[0] - 0.5)) / 2
                     + ((columns[1] - 1.0) + (columns[1] - 1.5)) / 2
                     + (columns[2] - 3.0)) / 3
    got = multi_positive_contrastive(torch.tensor(logits), torch.tensor([0, 0, 1])).item()
    assert got == pytest.approx(image_to_text + text_to_image, abs=1e-6)
    assert got == pytest.approx(_by_hand(logits, [0, 0, 1]), abs=1e-6)
    # Not the plain CLIP loss, which would take only the diagonal as positive.
    plain = multi_positive_contrastive(torch.tensor(logits), torch.tensor([0, 1, 2])).item()
    assert abs(got - plain) > 1e-3


def test_contrastive_loss_larger_batch_matches_the_formula():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(7, 7, generator=generator) * 3
    labels = [0, 1, 1, 2, 1, 0, 3]
    got = multi_positive_contrastive(logits, torch.tensor(labels)).item()
    assert got == pytest.approx(_by_hand(logits.tolist(), labels), abs=1e-5)


def _adapter(variant):
    torch.manual_seed(0)
    return ResidualAdapter(4, ratio=0.2, variant=variant)


def test_paper_adapter_is_residual_relu_with_bias():
    adapter = _adapter("relu")
    features = torch.randn(5, 4)
    weight, bias = adapter.linear.weight, adapter.linear.bias
    expected = 0.2 * torch.relu(features @ weight.t() + bias) + 0.8 * features
    assert torch.allclose(adapter(features), expected)
    assert bias is not None and (features @ weight.t() + bias < 0).any()  # the ReLU did something


def test_code_adapter_is_linear_without_bias():
    adapter = _adapter("linear")
    features = torch.randn(5, 4)
    assert adapter.linear.bias is None
    assert torch.allclose(adapter(features), 0.2 * features @ adapter.linear.weight.t() + 0.8 * features)


def test_adapter_rejects_bad_settings():
    with pytest.raises(UserError, match="adapter variant"):
        ResidualAdapter(4, 0.2, "mlp")
    with pytest.raises(UserError, match=r"\[0, 1\]"):
        ResidualAdapter(4, 1.5)


def test_text_cosine_classifier_is_scaled_cosine_to_fixed_text_features():
    text = torch.nn.functional.normalize(torch.randn(3, 4), dim=-1)
    classifier = TextCosineClassifier(_adapter("relu"), text * 5.0, scale=100.0)
    features = torch.randn(2, 4)
    adapted = torch.nn.functional.normalize(classifier.adapter(features), dim=-1)
    assert torch.allclose(classifier(features), 100.0 * adapted @ text.t(), atol=1e-5)
    assert [name for name, _ in classifier.named_parameters()] == ["adapter.linear.weight", "adapter.linear.bias"]


def _image_batches(labels_per_step):
    def batches(epoch):
        for labels in labels_per_step:
            yield torch.zeros(len(labels), 3, 2, 2), torch.tensor(labels)
    return batches


def test_contrastive_prompt_batches_encode_each_prompt_once_and_map_texts_to_images():
    stream = PromptBatches(_image_batches([[2, 0, 2, 1, 2]]), num_classes=4, num_templates=3,
                           objective="contrastive", seed=0)
    (images, rows, text_index), labels = next(iter(stream(0)))
    assert len(set(rows.tolist())) == len(rows)                     # distinct prompts only
    texts = rows[text_index]                                         # one prompt per image
    assert (texts // 3 == labels).all()                              # ... of the image's class
    assert (texts % 3 < 3).all()
    again = next(iter(stream(0)))[0][1]
    assert torch.equal(rows, again)                                  # templates drawn by (seed, epoch, step)


def test_class_ce_prompt_batches_give_one_prompt_per_class_in_class_order():
    stream = PromptBatches(_image_batches([[1, 1]]), num_classes=4, num_templates=2, objective="class_ce", seed=0)
    (_, rows, text_index), _ = next(iter(stream(0)))
    assert (rows // 2 == torch.arange(4)).all() and torch.equal(text_index, torch.arange(4))


@pytest.fixture(scope="module")
def tiny_clip():
    from ltbench.models.factory import create_backbone

    return create_backbone("tiny", "cpu").model


def test_last_blocks_trains_the_last_blocks_and_the_heads_only(tiny_clip):
    set_trainable(tiny_clip, "last_blocks", last_blocks=1)
    trainable = {name for name, p in tiny_clip.named_parameters() if p.requires_grad}
    assert any(name.startswith("visual.transformer.resblocks.1.") for name in trainable)
    assert not any(name.startswith("visual.transformer.resblocks.0.") for name in trainable)
    assert any(name.startswith("transformer.resblocks.1.") for name in trainable)
    assert not any(name.startswith("transformer.resblocks.0.") for name in trainable)
    assert {"visual.proj", "text_projection", "visual.ln_post.weight", "ln_final.weight"} <= trainable
    assert not trainable & {"visual.conv1.weight", "visual.class_embedding", "token_embedding.weight",
                            "positional_embedding", "logit_scale"}
    set_trainable(tiny_clip, "all")


@pytest.mark.parametrize("parts, visual, text", [("all", True, True), ("visual", True, False), ("text", False, True)])
def test_whole_encoders_train_and_the_logit_scale_never(tiny_clip, parts, visual, text):
    set_trainable(tiny_clip, parts)
    for name, parameter in tiny_clip.named_parameters():
        if name == "logit_scale":
            assert not parameter.requires_grad
        elif name.startswith("visual."):
            assert parameter.requires_grad == visual, name
        else:
            assert parameter.requires_grad == text, name
    set_trainable(tiny_clip, "all")


def test_frozen_batchnorm_stays_in_eval_mode_while_training():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
    tuner = ClipFineTuner(model, torch.zeros(1, 3, dtype=torch.long), logit_scale=10, batchnorm="frozen")
    tuner.train()
    assert tuner.training and model[0].training and not model[1].training
    ClipFineTuner(model, torch.zeros(1, 3, dtype=torch.long), batchnorm="train").train()
    assert model[1].training
    with pytest.raises(UserError, match="batchnorm"):
        ClipFineTuner(model, torch.zeros(1, 3, dtype=torch.long), batchnorm="off")


def test_fine_tuner_logits_are_scaled_cosines(tiny_clip):
    tokens = torch.randint(1, 400, (6, 77))
    tuner = ClipFineTuner(tiny_clip, tokens, logit_scale=None).eval()
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        logits = tuner((images, torch.tensor([4, 1]), torch.tensor([1, 0, 1])))
        image = torch.nn.functional.normalize(tiny_clip.encode_image(images), dim=-1)
        text = torch.nn.functional.normalize(tiny_clip.encode_text(tokens[[4, 1]]), dim=-1)
    expected = tiny_clip.logit_scale.exp() * image @ text[[1, 0, 1]].t()
    assert logits.shape == (3, 3) and torch.allclose(logits, expected, atol=1e-4)
    assert np.isclose(tuner.logit_scale().item(), 1 / 0.07, rtol=1e-4)  # open_clip's initial temperature


def test_phase_a_drops_the_last_partial_batch_as_the_code_does():
    from ltbench.engine.finetune import _first_steps, phase_a_steps

    # 1100 images, batches of 512: the code trains int(1100 / 512) = 2 steps, the rest 3.
    assert phase_a_steps(1100, 512, drop_last=True) == 2
    assert phase_a_steps(1100, 512, drop_last=False) == 3
    assert phase_a_steps(1024, 512, drop_last=True) == phase_a_steps(1024, 512, drop_last=False) == 2
    with pytest.raises(UserError, match="phase_a.drop_last.*100 training images"):
        phase_a_steps(100, 512, drop_last=True)
    batches = _first_steps(lambda epoch: iter([(epoch, 512), (epoch, 512), (epoch, 76)]), 2)
    assert list(batches(4)) == [(4, 512), (4, 512)]
