"""Random but consistent vocabularies, to test npgpt on merge lists unlike GPT-2's."""

from __future__ import annotations

import random


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
