"""The chapter's algorithms in plain Python: slow, short, and obviously right.

Every fast path in npgpt -- a numba kernel, a strided view, a counting sort -- computes exactly
what one function here computes, and a test holds the two equal on golden values and on
hypothesis-generated inputs. Read this module first; read the fast twin (named in each docstring)
to see how the same answer is reached quickly. (tiktoken ships ``_educational.py`` for the same
reason.)

==========================  ===========================================  =============================
concept                     plain (here)                                 fast twin
==========================  ===========================================  =============================
pre-tokenization            `split`                                      `npgpt.bpe.pretokenize_kernels`
BPE merge loop              `bpe`                                        `npgpt.bpe.merge_kernels`
encoding with specials      `ReferenceEncoder`                           `npgpt.Encoding`
training merges             `count_pretokens`, `train`                   `npgpt.train_bpe`
sliding windows, batches    `sliding_windows`                            `npgpt.data.token_spans`
embedding lookup            `embedding_forward`                          `npgpt.GPTEmbedding.forward`
embedding backward          `embedding_backward`                         `npgpt.embedding_kernels`
==========================  ===========================================  =============================

Example
-------
>>> ranks = {(b"l", b"o"): 0, (b"lo", b"w"): 1}
>>> bpe(b"lowlow", ranks)
[b'low', b'low']
>>> train(["low low lower"], vocab_size=258, special_tokens=())[1]
[(b'o', b'w'), (b'l', b'ow')]
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
import regex

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

__all__ = [
    "ReferenceEncoder",
    "bpe",
    "count_pretokens",
    "embedding_backward",
    "embedding_forward",
    "sliding_windows",
    "split",
    "train",
]


# --------------------------------------------------------------------------------------------
# pre-tokenization and the merge loop


def split(text: str, pattern: str = GPT2_PATTERN) -> list[str]:
    """Cut `text` into pre-tokens: ``regex.findall(pattern, text)``.

    >>> split("Hello world's  123!!")
    ['Hello', ' world', "'s", ' ', ' 123', '!!']
    """
    return regex.findall(pattern, text)


def bpe(piece: bytes, ranks: dict[tuple[bytes, bytes], int]) -> list[bytes]:
    """GPT-2's merge loop (OpenAI's ``encoder.py``, on bytes): merge *every* occurrence of the
    lowest-ranked adjacent pair, left to right; repeat until no pair is a merge.

    >>> bpe(b"aaaa", {(b"a", b"a"): 0, (b"aa", b"aa"): 1})
    [b'aaaa']
    """
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
    """The textbook encoder: `split`, then `bpe` on each piece's UTF-8 bytes, then a dict lookup.

    >>> vocab = {i: bytes([i]) for i in range(256)} | {256: b"ab"}
    >>> ReferenceEncoder(vocab, [(b"a", b"b")], {"<|endoftext|>": 257}).encode(
    ...     "abc<|endoftext|>", allowed_special={"<|endoftext|>"})
    [256, 99, 257]
    """

    def __init__(self, vocab: dict[int, bytes], merges: Sequence[tuple[bytes, bytes]],
                 special_tokens: dict[str, int] | None = None, pattern: str = GPT2_PATTERN):
        self.special_tokens = dict(special_tokens or {})
        specials = {s.encode() for s in self.special_tokens}
        self.encoder = {b: i for i, b in vocab.items() if b not in specials}
        # the first rank wins when a pair is listed twice, as in GPT-2's `dict(zip(merges, range(...)))`
        self.ranks = {pair: r for r, pair in reversed(list(enumerate(merges)))}
        self.pattern = pattern

    def encode_ordinary(self, text: str) -> list[int]:
        ids: list[int] = []
        for piece in split(text, self.pattern):
            ids.extend(self.encoder[t] for t in bpe(piece.encode("utf-8"), self.ranks))
        return ids

    def encode(self, text: str, allowed_special: Iterable[str] = frozenset()) -> list[int]:
        """Cut out the allowed special tokens (the longest wins at a tie), encode the rest ordinarily."""
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


# --------------------------------------------------------------------------------------------
# training


def count_pretokens(docs: Iterable[str], special_tokens: Iterable[str] = ("<|endoftext|>",),
                    pattern: str = GPT2_PATTERN) -> Counter[bytes]:
    """Cut each document at its special tokens, then into pre-tokens; count each pre-token's bytes.
    (An empty match of the pattern is no pre-token: it has no bytes to merge.)

    >>> dict(count_pretokens(["the cat<|endoftext|>the"]))
    {b'the': 2, b' cat': 1}
    """
    specials = sorted(special_tokens, key=len, reverse=True)
    cut = re.compile("|".join(map(re.escape, specials))) if specials else None
    counts: Counter[bytes] = Counter()
    for doc in docs:
        for part in cut.split(doc) if cut else [doc]:
            counts.update(p.encode("utf-8") for p in split(part, pattern) if p)
    return counts


def train(docs: Iterable[str], vocab_size: int, special_tokens: Sequence[str] = ("<|endoftext|>",),
          min_frequency: int = 1, pattern: str = GPT2_PATTERN) -> tuple[list[bytes], list[tuple[bytes, bytes]]]:
    """The textbook BPE trainer: recount every pair after every merge. Returns (tokens by id, merges).

    Each step merges the pair with the highest count, summed over pre-tokens weighted by their
    counts; on a tie the greatest ``(left_bytes, right_bytes)`` wins. A pair is merged at most once,
    and a merge whose bytes are already a token adds no new id. Special tokens take the last ids.

    >>> tokens, merges = train(["aaab aaab aab"], vocab_size=259, special_tokens=["<|endoftext|>"])
    >>> merges
    [(b'a', b'a'), (b'aa', b'a')]
    """
    words = {tuple(bytes([b]) for b in w): c for w, c in count_pretokens(docs, special_tokens, pattern).items()}
    vocab = [bytes([i]) for i in range(256)]
    known = set(vocab)
    merges: list[tuple[bytes, bytes]] = []
    merged: set[tuple[bytes, bytes]] = set()
    while len(vocab) + len(special_tokens) < vocab_size:
        pairs: Counter[tuple[bytes, bytes]] = Counter()
        for w, c in words.items():
            for pair in itertools.pairwise(w):
                if pair not in merged:
                    pairs[pair] += c
        if not pairs:
            break
        best = max(pairs, key=lambda p: (pairs[p], p))
        if pairs[best] < min_frequency:
            break
        merges.append(best)
        merged.add(best)
        token = best[0] + best[1]
        if token not in known:
            known.add(token)
            vocab.append(token)
        new_words: dict[tuple[bytes, ...], int] = {}
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i < len(w) - 1 and (w[i], w[i + 1]) == best:
                    out.append(token)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new_words[tuple(out)] = new_words.get(tuple(out), 0) + c
        words = new_words
    return vocab, merges


# --------------------------------------------------------------------------------------------
# training windows and embeddings


def sliding_windows(ids: Sequence[int], max_length: int, stride: int) -> tuple[list[list[int]], list[list[int]]]:
    """The book's loop (``GPTDatasetV1.__init__``): inputs and their targets, shifted by one.

    Fast twin: `npgpt.data.token_spans`, one strided view of windows ``max_length + 1`` long, whose
    two shifted halves are `npgpt.sliding_windows`; a `npgpt.DataLoader` batch is rows of these
    windows in the epoch's order. Held equal in tests/test_data.py.

    >>> sliding_windows([1, 2, 3, 4, 5], max_length=2, stride=2)
    ([[1, 2], [3, 4]], [[2, 3], [4, 5]])
    """
    xs, ys = [], []
    for i in range(0, len(ids) - max_length, stride):
        xs.append(list(ids[i : i + max_length]))
        ys.append(list(ids[i + 1 : i + max_length + 1]))
    return xs, ys


def embedding_forward(tok: np.ndarray, pos: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``out[b, t] = tok[ids[b, t]] + pos[t]``, one row at a time.

    `npgpt.GPTEmbedding.forward` computes the same in two NumPy expressions: a fancy index
    (``tok[ids]``, all rows at once) and a broadcast add (``+ pos[:T]``, the same (T, D) slice added to
    every sequence of the batch).
    """
    b, t = ids.shape
    out = np.zeros((b, t, tok.shape[1]), tok.dtype)
    for i in range(b):
        for j in range(t):
            out[i, j] = tok[ids[i, j]] + pos[j]
    return out


def embedding_backward(n_tok: int, n_pos: int, ids: np.ndarray, grad: np.ndarray,
                       padding_idx: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of `embedding_forward`: each output row's gradient is added to the row it came
    from -- a scatter-add, so an id seen twice receives the sum (in float64 here). The positions'
    gradient is the sum over the batch. The fast twin, `npgpt.embedding_kernels`, groups the rows by
    id with a counting sort and sums each group on one thread.

    >>> ids = np.array([[1, 1]]); g = np.ones((1, 2, 3))
    >>> embedding_backward(2, 2, ids, g)[0]
    array([[0., 0., 0.],
           [2., 2., 2.]])
    """
    g_tok = np.zeros((n_tok, grad.shape[-1]), np.float64)
    g_pos = np.zeros((n_pos, grad.shape[-1]), np.float64)
    b, t = ids.shape
    for i in range(b):
        for j in range(t):
            if ids[i, j] != padding_idx:
                g_tok[ids[i, j]] += grad[i, j]
            g_pos[j] += grad[i, j]
    return g_tok, g_pos
