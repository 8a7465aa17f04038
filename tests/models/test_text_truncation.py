"""Text towers cut at the last pooled token give open_clip's own encode_text features and
gradients; towers where the cut is not exact take the full context."""
import pytest
import torch
import torch.nn.functional as F

from ltbench.models.text_classifier import build_text_classifier
from ltbench.models.text_encoding import causal_text_tower, encode_text_sorted, encode_text_tokens, text_lengths

PROMPTS = ["a photo of a zero.", "itap of a seven.", "a", "",
           "a bad photo of the " + "very " * 80 + "long name.",  # tokenised up to the 77-token limit
           "a black and white photo of a great grey owl."]


@pytest.fixture(scope="module")
def tiny():
    from ltbench.models.factory import create_backbone

    return create_backbone("tiny", "cpu")


def _reference(model, tokens):
    return F.normalize(model.encode_text(tokens).float(), dim=-1)


def _positions_run(model):
    """A list that gets the positions (sequence length) of every text-transformer call on `model`,
    and the hook's handle."""
    transformer = model.transformer
    seen = []

    def note(module, args):
        seen.append(args[0].shape[1] if getattr(transformer, "batch_first", True) else args[0].shape[0])

    return seen, transformer.register_forward_pre_hook(note)


def test_the_tiny_tower_cut_gives_open_clips_features(tiny):
    tokens = tiny.tokenize(PROMPTS)
    lengths = text_lengths(tiny.model, tokens)
    assert lengths.tolist() == [8, 8, 3, 2, 77, 13]  # the long prompt uses the whole context
    with torch.no_grad():
        expected = _reference(tiny.model, tokens)
        positions, hook = _positions_run(tiny.model)
        try:
            assert (tiny.encode_texts(PROMPTS) - expected).abs().max() < 1e-6
            # Short prompts alone: the tower runs on 13 positions, not 77, with the same features.
            short = [0, 1, 2, 3, 5]
            assert (tiny.encode_texts([PROMPTS[i] for i in short]) - expected[short]).abs().max() < 1e-6
            # Sorted by length in batches of 2, each cut to its longest row: (2, 3), (8, 8), (13, 77).
            sorted_out = F.normalize(encode_text_sorted(tiny.model, tokens, batch_size=2), dim=-1)
        finally:
            hook.remove()
        assert positions == [77, 13, 3, 8, 77]  # (_reference ran before the hook)
        assert (sorted_out - expected).abs().max() < 1e-6  # class order restored


@pytest.mark.slow  # builds a ViT-B-16: outside the inner loop
def test_a_vit_b_16_size_text_tower_cut_gives_open_clips_features():
    import open_clip

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-16").eval()  # random init, a 12-layer 512-wide text tower
    tokens = open_clip.get_tokenizer("ViT-B-16")(PROMPTS[:4] + PROMPTS[5:])
    with torch.no_grad():
        expected = _reference(model, tokens)
        got = F.normalize(encode_text_tokens(model, tokens).float(), dim=-1)
    assert text_lengths(model, tokens).max() == 13
    assert (got - expected).abs().max() < 2e-5


def test_the_classifier_equals_the_full_context_recipe(tiny):
    names = ["zero", "one", "great grey owl", "x", "black-footed albatross"]
    templates = ["a photo of a {}.", "{}", "a blurry photo of the {}, a type of bird."]
    classifier = build_text_classifier(tiny, names, templates, batch_size=4)  # batches mix classes
    with torch.no_grad():
        for row, name in enumerate(names):
            per_template = _reference(tiny.model, tiny.tokenize([t.format(name) for t in templates]))
            assert (classifier[row] - F.normalize(per_template.mean(0), dim=0)).abs().max() < 1e-6


def test_the_fine_tuner_cut_has_open_clips_gradients(tiny):
    from ltbench.models.clip_finetune import ClipFineTuner

    model = tiny.model
    tokens = tiny.tokenize(PROMPTS[:4] + PROMPTS[5:])
    tuner = ClipFineTuner(model, tokens, logit_scale=10.0).train()
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    rows, index = torch.tensor([0, 2, 4]), torch.tensor([0, 1, 2])
    labels = torch.tensor([0, 1, 2])

    def gradients(logits):
        model.zero_grad(set_to_none=True)
        F.cross_entropy(logits, labels).backward()
        return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    got = gradients(tuner((images, rows, index, int(tuner.prompt_lengths[rows].max()))))
    image_features = F.normalize(model.encode_image(images).float(), dim=-1)
    expected = gradients(10.0 * image_features @ _reference(model, tokens[rows]).t())
    assert set(got) == set(expected) and "positional_embedding" in got
    for name in expected:
        assert (got[name] - expected[name]).abs().max() <= 1e-5 * max(1.0, expected[name].abs().max()), name
    # The length is also found from the rows when the batches do not pass it.
    assert torch.allclose(tuner((images, rows, index)), tuner((images, rows, index, 77)), atol=1e-6)


def _custom_text_clip(**text_cfg):
    import open_clip

    torch.manual_seed(0)
    vision = {"image_size": 32, "layers": 1, "width": 64, "head_width": 32, "patch_size": 8}
    text = {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2, **text_cfg}
    return open_clip.CustomTextCLIP(embed_dim=32, vision_cfg=vision, text_cfg=text).eval()


@pytest.mark.parametrize("text_cfg, exact", [({}, True), ({"pool_type": "eos", "eos_id": 49407}, True),
                                             ({"no_causal_mask": True}, False), ({"pool_type": "last"}, False),
                                             ({"embed_cls": True}, False)])
def test_only_causal_end_of_text_towers_are_cut(tiny, text_cfg, exact):
    model = _custom_text_clip(**text_cfg)
    tokens = tiny.tokenize(PROMPTS[:4])
    assert (causal_text_tower(model) is not None) == exact
    assert (text_lengths(model, tokens).max() < 77) == exact
    with torch.no_grad():
        assert (encode_text_tokens(model, tokens) - model.encode_text(tokens)).abs().max() < 1e-6
