"""Pre-tokenization: cut text into the pieces that byte-pair encoding works on.

GPT-2 never merges bytes across a word boundary. Before any merging, a regular expression cuts the
text into pieces -- contractions, runs of letters or digits with an optional leading space, runs of
other symbols, and white space -- and BPE then encodes each piece on its own. That is why
``" the"`` (with its space) is one GPT-2 token and why digits never merge with letters.

The pattern uses Unicode classes (``\\p{L}`` letters, ``\\p{N}`` numbers), which Python's `re`
does not support, so this module uses the `regex` package, as OpenAI's encoder does.

Example
-------
>>> split("Hello world's 123 numbers!!")
['Hello', ' world', "'s", ' 123', ' numbers', '!!']
"""

from __future__ import annotations

import functools

import regex

__all__ = ["GPT2_PATTERN", "compile_pattern", "split"]

#: GPT-2's pre-tokenization pattern, exactly as in OpenAI's ``encoder.py`` and tiktoken's ``gpt2``.
#: The white space rules matter: ``\s+(?!\S)`` leaves the last space of a run to start the next
#: word, so ``"a  b"`` splits as ``['a', ' ', ' b']``.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


@functools.lru_cache(maxsize=16)
def compile_pattern(pattern: str) -> regex.Pattern:
    """Compile a pre-tokenization pattern with `regex` (cached).

    Raises ValueError naming the pattern when it does not compile.
    """
    if not isinstance(pattern, str):
        raise TypeError(f"pattern must be str, got {type(pattern).__name__}")
    try:
        return regex.compile(pattern)
    except regex.error as e:
        raise ValueError(f"pre-tokenization pattern {pattern!r} does not compile: {e}") from None


def split(text: str, pattern: str = GPT2_PATTERN) -> list[str]:
    """Cut `text` into pre-tokens with `pattern` (default: GPT-2's). The reference implementation.

    Same as ``regex.findall(pattern, text)``. For GPT-2's pattern the pieces cover the whole text,
    so ``"".join(split(text)) == text``.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    return compile_pattern(pattern).findall(text)
