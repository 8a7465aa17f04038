"""Prompt-ensemble tokens (models/prompt_tokens.py) are open_clip's tokens of every prompt, with
each class name and template cleaned once instead of every prompt (issue 23: tokenising took two
thirds of the tiny CLIP's 8142-class x 80-template classifier)."""
import ftfy
import open_clip
import pytest
import torch

from ltbench.data.prompts import openai_imagenet_templates
from ltbench.models.prompt_tokens import PromptTokens

NAMES = ["tench", "Great White Shark", "Abies  alba", " leading space", "trailing space ", "Café crème", "AT&T tower",
         "O'Brien's hat", "st. john's wort", "x.y.", "name{}", "3-toed sloth", "tab\tname", "line\nbreak", "Ünïcödé",
         "emoji \U0001F41F", "&amp; entity", "don't", "<end_of_text>", "very " * 90 + "long", "", "a{0}b",
         "mojibake Ã©", "UPPER lower", "fi ligature \ufb01sh"]
TEMPLATES = ["a photo of a {}.", "{}", "itap of the {}", "a {0}-like {0}", "{{literal}} {}", "a &amp; {}.",
             "  spaced   {}  ", "a photo of the {}'s", "{}.", "a  {}!!", "a \u201cquoted\u201d {}"]


@pytest.fixture(scope="module")
def tokenizer():
    return open_clip.get_tokenizer("ViT-B-32")


def test_the_tokens_are_open_clips_for_every_prompt(tokenizer):
    prompts = PromptTokens(tokenizer, NAMES, TEMPLATES)
    assert prompts.fast
    expected = tokenizer([template.format(name) for name in NAMES for template in TEMPLATES])
    assert torch.equal(prompts(), expected)
    # Any window of rows is those rows.
    assert torch.equal(prompts(17, 60), expected[17:60]) and torch.equal(prompts(270, 10_000), expected[270:])


def test_the_openai_templates_on_real_looking_names(tokenizer):
    names = ["Hermodice carunculata", "Phragmatopoma californica", "Ursus arctos horribilis", "Pinus × hybrida",
             "great grey owl", "Christmas stocking", "jack-o'-lantern", "Granny Smith"]
    templates = openai_imagenet_templates()
    expected = tokenizer([template.format(name) for name in names for template in templates])
    assert torch.equal(PromptTokens(tokenizer, names, templates)(), expected)


def test_names_and_templates_are_cleaned_once_not_once_per_prompt(tokenizer, monkeypatch):
    calls = []
    original = ftfy.fix_text
    monkeypatch.setattr(ftfy, "fix_text", lambda text, *args, **kwargs: calls.append(text) or original(text, *args, **kwargs))
    names = [f"species number {index}" for index in range(60)]
    templates = openai_imagenet_templates()[:20]
    tokens = PromptTokens(tokenizer, names, templates)()
    assert len(calls) <= len(names) + 2 * len(templates)  # before: one ftfy pass a prompt, 1200 here
    calls.clear()
    assert torch.equal(tokens, tokenizer([t.format(n) for n in names for t in templates]))
    assert len(calls) == len(names) * len(templates)  # what tokenising every prompt does


def test_other_tokenizers_tokenise_each_prompt():
    class Words:
        def __call__(self, texts):
            return torch.tensor([[len(text)] for text in texts])

    prompts = PromptTokens(Words(), ["ab", "c"], ["{}!", "x {}"])
    assert not prompts.fast and prompts().flatten().tolist() == [3, 4, 2, 3]
