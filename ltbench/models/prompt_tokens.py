"""Tokens of a prompt ensemble (every template filled with every class name) without tokenising
each of the C x T prompts from scratch.

open_clip's ``SimpleTokenizer`` cleans each text (ftfy.fix_text, HTML unescaping twice, whitespace
collapsed, lower case), splits it into words with a regular expression and byte-pair encodes each
word (with a cache). For iNaturalist's 8142 classes x 80 templates that is 651,360 texts, and the
cleaning, mostly ftfy, is about two thirds of the cost: about 0.3 ms a prompt here, 200 s for
the classifier of the tiny CLIP, whose text tower takes a third of that.

Here every class name and every template is cleaned once: for text of printable ASCII without
'&' (ftfy and HTML unescaping leave it as it is, which is also checked once per piece) the clean
text of ``template.format(name)`` is the whitespace-collapsed, lower-cased concatenation of the
template's parts and the name. The regular-expression split still runs on each whole clean
prompt (so words across the name's edges split as the tokenizer splits them), and each distinct
word's ids are computed once. Tokens are identical to ``tokenizer(prompts)`` by construction
(tests/models/test_prompt_tokens.py compares them); a name or template outside that case (non-
ASCII, '&', braces other than one '{}') is cleaned with the tokenizer's own function, and other
tokenizers (Hugging Face ones) tokenise every prompt themselves.
"""
from functools import lru_cache
from typing import List, Optional

import numpy as np
import torch


@lru_cache(maxsize=None)
def _simple_tokenizer_parts():
    from open_clip.tokenizer import SimpleTokenizer, _clean_lower

    return SimpleTokenizer, _clean_lower


def _is_plain_simple_tokenizer(tokenizer) -> bool:
    """open_clip's own BPE tokenizer with its default cleaning ('lower') and plain truncation."""
    simple, clean_lower = _simple_tokenizer_parts()
    return (type(tokenizer) is simple and getattr(tokenizer, "clean_fn", None) is clean_lower
            and getattr(tokenizer, "reduction_fn", None) is None)


def _needs_no_cleaning(text: str) -> bool:
    """ftfy.fix_text and html.unescape leave this text as it is, alone and next to others: printable
    ASCII without '&' (HTML entities start with it; ftfy's other fixes are of non-ASCII text)."""
    import ftfy

    return all(" " <= char <= "~" for char in text) and "&" not in text and ftfy.fix_text(text) == text


class PromptTokens:
    """Rows of ``tokenizer([template.format(name) for name in names for template in templates])``,
    any range of them at a time (prompt p is name p // T with template p % T)."""

    def __init__(self, tokenizer, class_names: List[str], templates: List[str]):
        self.tokenizer, self.names, self.templates = tokenizer, list(class_names), list(templates)
        self.fast = _is_plain_simple_tokenizer(tokenizer)
        if not self.fast:
            return
        self.context_length = int(tokenizer.context_length)
        self.sot, self.eot = int(tokenizer.sot_token_id), int(tokenizer.eot_token_id)
        self.words = {}  # word -> its token ids
        # Each piece once: (prefix, suffix) of a template with one '{}' that needs no cleaning, else None.
        self.template_parts = []
        for template in self.templates:
            parts = template.split("{}")
            plain = len(parts) == 2 and not any(brace in template.replace("{}", "") for brace in "{}")
            if plain and _needs_no_cleaning(parts[0]) and _needs_no_cleaning(parts[1]):
                self.template_parts.append((parts[0].lower(), parts[1].lower()))
            else:
                self.template_parts.append(None)
        self.clean_names = [name.lower() if _needs_no_cleaning(name) else None for name in self.names]

    def __len__(self) -> int:
        return len(self.names) * len(self.templates)

    def prompt(self, index: int) -> str:
        name, template = divmod(index, len(self.templates))
        return self.templates[template].format(self.names[name])

    def _clean(self, index: int) -> str:
        name, template = divmod(index, len(self.templates))
        parts, clean_name = self.template_parts[template], self.clean_names[name]
        if parts is None or clean_name is None:
            return self.tokenizer.clean_fn(self.prompt(index))
        return " ".join((parts[0] + clean_name + parts[1]).split())

    def _word_ids(self, word: str) -> List[int]:
        ids = self.words.get(word)
        if ids is None:  # as SimpleTokenizer.encode does it, once per distinct word
            tokenizer = self.tokenizer
            encoded = "".join(tokenizer.byte_encoder[byte] for byte in word.encode("utf-8"))
            ids = self.words[word] = [tokenizer.encoder[piece] for piece in tokenizer.bpe(encoded).split(" ")]
        return ids

    def __call__(self, first: int = 0, stop: Optional[int] = None) -> torch.Tensor:
        """[stop - first, context] int64 tokens of prompts first..stop-1."""
        stop = len(self) if stop is None else min(stop, len(self))
        if not self.fast:
            return self.tokenizer([self.prompt(index) for index in range(first, stop)])
        length, pattern = self.context_length, self.tokenizer.pat
        rows = np.zeros((max(0, stop - first), length), dtype=np.int64)
        for row, index in enumerate(range(first, stop)):
            tokens = [self.sot]
            for word in pattern.findall(self._clean(index)):
                tokens.extend(self._word_ids(word))
            tokens.append(self.eot)
            if len(tokens) > length:  # truncated as open_clip truncates: the last kept token becomes end-of-text
                tokens = tokens[:length]
                tokens[-1] = self.eot
            rows[row, :len(tokens)] = tokens
        return torch.from_numpy(rows)
