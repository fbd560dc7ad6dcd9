"""Slow, obviously correct references that the fast code is held to.

- `bpe`: OpenAI's original GPT-2 merge loop (``encoder.py``), on bytes instead of strings.
- `ReferenceEncoder`: `regex` pre-tokenization + `bpe` + a dict lookup, with special tokens.
- `random_merges`: a random but consistent merge list, to test vocabularies unlike GPT-2's.
"""

from __future__ import annotations

import itertools
import random

import regex

from npgpt.pretokenize import GPT2_PATTERN


def bpe(piece: bytes, ranks: dict[tuple[bytes, bytes], int]) -> list[bytes]:
    """GPT-2's merge loop: merge every occurrence of the lowest-ranked pair, left to right; repeat."""
    word = tuple(bytes([b]) for b in piece)
    while len(word) > 1:
        pairs = set(itertools.pairwise(word))
        bigram = min(pairs, key=lambda p: ranks.get(p, float("inf")))
        if bigram not in ranks:
            break
        first, second = bigram
        new_word: list[bytes] = []
        i = 0
        while i < len(word):
            if i < len(word) - 1 and word[i] == first and word[i + 1] == second:
                new_word.append(first + second)
                i += 2
            else:
                new_word.append(word[i])
                i += 1
        word = tuple(new_word)
    return list(word)


class ReferenceEncoder:
    """The textbook encoder: no tables, no cache, no kernel."""

    def __init__(self, vocab: dict[int, bytes], merges: list[tuple[bytes, bytes]],
                 special_tokens: dict[str, int] | None = None, pattern: str = GPT2_PATTERN):
        self.special_tokens = dict(special_tokens or {})
        specials = {s.encode() for s in self.special_tokens}
        self.encoder = {b: i for i, b in vocab.items() if b not in specials}
        self.ranks = {pair: r for r, pair in reversed(list(enumerate(merges)))}
        self.pattern = regex.compile(pattern)

    def encode_ordinary(self, text: str) -> list[int]:
        ids = []
        for piece in self.pattern.findall(text):
            ids.extend(self.encoder[t] for t in bpe(piece.encode("utf-8"), self.ranks))
        return ids

    def encode(self, text: str, allowed_special: set[str] = frozenset()) -> list[int]:
        """Split on allowed special tokens (longest first at a tie), encode the rest ordinarily."""
        ids: list[int] = []
        i = start = 0
        by_length = sorted(allowed_special, key=len, reverse=True)
        while i < len(text):
            hit = next((s for s in by_length if text.startswith(s, i)), None)
            if hit is None:
                i += 1
                continue
            ids += [*self.encode_ordinary(text[start:i]), self.special_tokens[hit]]
            i = start = i + len(hit)
        return ids + self.encode_ordinary(text[start:])


def random_merges(rng: random.Random, alphabet: bytes, n_merges: int) -> tuple[dict[int, bytes], list]:
    """A random consistent vocabulary: each merge joins two tokens that already exist.

    Unlike a trained vocabulary, many of its tokens do not encode to themselves, and different
    pairs may make the same bytes -- good for finding shortcuts that are only right for GPT-2.
    """
    vocab = {i: bytes([i]) for i in range(256)}
    known = [bytes([b]) for b in alphabet]
    merges, seen = [], set()
    for _ in range(n_merges * 10):
        if len(merges) == n_merges:
            break
        a, b = rng.choice(known), rng.choice(known)
        if (a, b) in seen or len(a + b) > 12:
            continue
        seen.add((a, b))
        merges.append((a, b))
        if a + b not in vocab.values():
            vocab[len(vocab)] = a + b
            known.append(a + b)
    return vocab, merges
