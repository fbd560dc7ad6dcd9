"""Chapter 2.2-2.4: the simplest tokenizers, one word = one id.

Before byte-pair encoding, the chapter builds a tokenizer in three steps:

1. split text into words and punctuation with one regular expression (`split_words`);
2. give every distinct word an integer id, in sorted order (`build_vocab`);
3. map words to ids and back (`SimpleTokenizerV1`), then learn to cope with words the vocabulary
   has never seen by mapping them to a special ``<|unk|>`` token (`SimpleTokenizerV2`).

The weakness this exposes -- a closed vocabulary cannot represent new words -- is what byte-pair
encoding (`npgpt.bpe`) fixes.

Example
-------
>>> from npgpt.simple import split_words, build_vocab, SimpleTokenizerV2
>>> split_words("Hello, world. Is this-- a test?")
['Hello', ',', 'world', '.', 'Is', 'this', '--', 'a', 'test', '?']
>>> vocab = build_vocab("the cat sat", special_tokens=["<|endoftext|>", "<|unk|>"])
>>> tok = SimpleTokenizerV2(vocab)
>>> tok.encode("the dog sat")
[2, 4, 1]
>>> tok.decode([2, 4, 1])
'the <|unk|> sat'
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable, Mapping

__all__ = [
    "SimpleTokenizerV1",
    "SimpleTokenizerV2",
    "UnknownWordError",
    "build_vocab",
    "split_words",
]

# The chapter's split: punctuation, the double dash and white space become separate items.
# The capturing group keeps the separators in `re.split`'s output.
_SPLIT = re.compile(r'([,.:;?_!"()\']|--|\s)')
# Decoding joins words with spaces; this removes the space the join put before punctuation.
_SPACE_BEFORE_PUNCT = re.compile(r'\s+([,.:;?!"()\'])')

UNK = "<|unk|>"
ENDOFTEXT = "<|endoftext|>"


def split_words(text: str) -> list[str]:
    """Split text into words and punctuation, the chapter's way.

    Splits on ``([,.:;?_!"()']|--|\\s)``, keeps the punctuation, strips every item and drops the
    empty ones (so white space disappears).

    >>> split_words('"It\\'s the last he painted, you know,"')
    ['"', 'It', "'", 's', 'the', 'last', 'he', 'painted', ',', 'you', 'know', ',', '"']
    """
    if not isinstance(text, str):
        raise TypeError(f"split_words expects str, got {type(text).__name__}")
    return [item.strip() for item in _SPLIT.split(text) if item.strip()]


def build_vocab(text_or_tokens: str | Iterable[str], special_tokens: Iterable[str] = ()) -> dict[str, int]:
    """Map every distinct token to an id: sorted tokens first, then `special_tokens` in order.

    `text_or_tokens` is either raw text (split with `split_words`) or an iterable of tokens.

    >>> build_vocab("b a b", special_tokens=["<|unk|>"])
    {'a': 0, 'b': 1, '<|unk|>': 2}
    """
    if isinstance(text_or_tokens, (bytes, bytearray)):
        raise TypeError(f"build_vocab expects str text or str tokens, got {type(text_or_tokens).__name__}")
    tokens = split_words(text_or_tokens) if isinstance(text_or_tokens, str) else list(text_or_tokens)
    bad = next((t for t in tokens if not isinstance(t, str)), None)
    if bad is not None:
        raise TypeError(f"tokens must be str, got {bad!r}")
    words = sorted(set(tokens))
    known = set(words)
    specials = [s for s in dict.fromkeys(special_tokens) if s not in known]
    return {token: i for i, token in enumerate(words + specials)}


def _check_id(i: object, message: str) -> int:
    """`i` as an int, when it is one (an int, a bool, a NumPy integer); else TypeError: `message` and `i`."""
    try:
        return operator.index(i)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{message} {i!r}") from None


class UnknownWordError(KeyError):
    """Raised by `SimpleTokenizerV1.encode` for words that are not in the vocabulary.

    A `KeyError`, as in the book (where a plain dict lookup fails), but naming every unknown word
    at once. The words are in `.words`.
    """

    def __init__(self, words: list[str]):
        super().__init__(words)
        self.words = words

    def __str__(self) -> str:
        listed = ", ".join(repr(w) for w in self.words)
        return (
            f"{len(self.words)} word(s) not in the vocabulary: {listed}. "
            f"SimpleTokenizerV2 maps unknown words to {UNK!r} instead."
        )


class SimpleTokenizerV1:
    """A word-level tokenizer over a fixed vocabulary (chapter 2.3).

    Parameters
    ----------
    vocab : mapping of str to int
        Token -> id, for example from `build_vocab`. Ids must be distinct.

    Example
    -------
    >>> tok = SimpleTokenizerV1(build_vocab("I like tea."))  # ids in sorted order: . I like tea
    >>> tok.encode("I like tea.")
    [1, 2, 3, 0]
    >>> tok.decode([1, 2, 3, 0])
    'I like tea.'
    """

    def __init__(self, vocab: Mapping[str, int]):
        self.str_to_int = dict(vocab)
        for s, i in self.str_to_int.items():
            if not isinstance(s, str):
                raise TypeError(f"vocab must map str tokens to int ids, got the token {s!r}")
            _check_id(i, "vocab must map str tokens to int ids, got the id")
        self.int_to_str = {i: s for s, i in self.str_to_int.items()}
        if len(self.int_to_str) != len(self.str_to_int):
            raise ValueError("vocab maps two tokens to the same id")

    def encode(self, text: str) -> list[int]:
        """Split `text` with `split_words` and map each item to its id.

        Raises `UnknownWordError` (a `KeyError`) naming every word that is not in the vocabulary.
        """
        words = split_words(text)
        unknown = [w for w in dict.fromkeys(words) if w not in self.str_to_int]
        if unknown:
            raise UnknownWordError(unknown)
        return [self.str_to_int[w] for w in words]

    def decode(self, ids: Iterable[int]) -> str:
        """Join the tokens with spaces, then remove the space before punctuation."""
        if isinstance(ids, (str, bytes, bytearray)):
            raise TypeError(f"decode expects a sequence of int ids, got {type(ids).__name__} (encode the text first)")
        try:  # (no int(): it would read "12" as the ids 1 and 2, and 1.7 as 1)
            words = [self.int_to_str[_check_id(i, "ids must be integers, got")] for i in ids]
        except KeyError as e:
            raise KeyError(f"id {e.args[0]} is not in the vocabulary (size {len(self.int_to_str)})") from None
        return _SPACE_BEFORE_PUNCT.sub(r"\1", " ".join(words))

    def __len__(self) -> int:
        return len(self.str_to_int)


class SimpleTokenizerV2(SimpleTokenizerV1):
    """`SimpleTokenizerV1` that maps unknown words to ``<|unk|>`` (chapter 2.4).

    The vocabulary must contain ``<|unk|>``; ``<|endoftext|>`` is an ordinary entry that
    `split_words` keeps whole (it contains none of the split characters).

    Example
    -------
    >>> vocab = build_vocab("tea", special_tokens=["<|endoftext|>", "<|unk|>"])
    >>> SimpleTokenizerV2(vocab).encode("tea <|endoftext|> coffee")
    [0, 1, 2]
    """

    def __init__(self, vocab: Mapping[str, int]):
        super().__init__(vocab)
        if UNK not in self.str_to_int:
            raise ValueError(f"SimpleTokenizerV2 needs {UNK!r} in the vocabulary; pass it in special_tokens")
        self.unk_id = self.str_to_int[UNK]

    def encode(self, text: str) -> list[int]:
        """Like `SimpleTokenizerV1.encode`, but unknown words become the ``<|unk|>`` id."""
        get = self.str_to_int.get
        return [get(w, self.unk_id) for w in split_words(text)]
