"""`npgpt demo`: chapter 2 in one run, printed the way the book's notebooks print it.

Each stage uses the public API on one text (default: Python's ``pydoc_data.topics``):

1. split into words; build a vocabulary (2.2-2.3);
2. `SimpleTokenizerV1` refuses an unknown word; `SimpleTokenizerV2` maps it to ``<|unk|>`` (2.4);
3. GPT-2 byte-pair encoding, and how an unknown word falls into known pieces (2.5);
4. sliding windows: ``x --> y`` pairs, decoded (2.6);
5. a batch from `create_dataloader_v1`-style loading, and its shapes;
6. token + positional embeddings and their shapes (2.7-2.8);
7. a short bigram training run whose loss falls (`npgpt.bigram`).
"""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO

import numpy as np

from npgpt.bigram import train_bigram
from npgpt.bpe import get_encoding
from npgpt.data import DataLoader, GPTDatasetV1
from npgpt.embedding import GPTEmbedding
from npgpt.simple import SimpleTokenizerV1, SimpleTokenizerV2, UnknownWordError, build_vocab, split_words

UNKNOWN_WORD = "Akwirw"  # the book's made-up word: in no vocabulary


def run(text: str, source: str, out: TextIO | None = None, steps: int = 100) -> list[float]:
    """Print every stage of the chapter for `text` to `out` (default: sys.stdout); return the bigram losses."""
    out = sys.stdout if out is None else out

    def say(line: str = "") -> None:
        print(line, file=out, flush=True)

    t0 = time.perf_counter()
    say(f"== npgpt demo: chapter 2 on {source} ({len(text):,} characters)")

    say("\n-- 2.2-2.3 words and a vocabulary")
    words = split_words(text)
    vocab = build_vocab(words, special_tokens=["<|endoftext|>", "<|unk|>"])
    say(f"{len(words):,} words and punctuation marks, {len(vocab) - 2:,} distinct; first ten: {words[:10]}")
    say(f"vocabulary: {len(vocab):,} entries (with <|endoftext|> and <|unk|>)")

    say("\n-- 2.4 simple tokenizers")
    plain = [w for w in words if w.isalpha()][:8]
    sentence = " ".join([*plain[:5], UNKNOWN_WORD, *plain[5:]])
    try:
        SimpleTokenizerV1(vocab).encode(sentence)
    except UnknownWordError as e:
        say(f"SimpleTokenizerV1 refuses {sentence!r}:\n  KeyError: {e}")
    v2 = SimpleTokenizerV2(vocab)
    ids_v2 = v2.encode(sentence)
    say(f"SimpleTokenizerV2: {ids_v2}\n  decoded: {v2.decode(ids_v2)!r}")

    say("\n-- 2.5 byte-pair encoding (GPT-2)")
    enc = get_encoding("gpt2")
    ids = enc.encode_to_numpy(text, disallowed_special=())
    say(f"{len(ids):,} GPT-2 tokens ({len(text) / max(len(ids), 1):.2f} characters per token); first ten: "
        f"{ids[:10].tolist()}")
    word_ids = enc.encode(UNKNOWN_WORD + " ier")
    pieces = [enc.decode([i]) for i in word_ids]
    say(f"an unknown word is never lost: {UNKNOWN_WORD + ' ier'!r} -> {word_ids} = {pieces}")
    say(f"round trip decode(encode(text)) == text: {enc.decode(ids.tolist()) == text}")

    say("\n-- 2.6 sliding windows: input --> target")
    context = 4
    for i in range(1, context + 1):
        say(f"  {enc.decode(ids[:i].tolist())!r:40} --> {enc.decode([int(ids[i])])!r}")
    ds = GPTDatasetV1.from_token_ids(ids, max_length=context, stride=context)
    x, y = next(iter(DataLoader(ds, batch_size=8, shuffle=False)))
    say(f"GPTDatasetV1: {len(ds):,} windows of {context} tokens, views into one {ids.dtype} array "
        f"({ids.nbytes / 1e6:.2f} MB, no copies)")
    say(f"first batch: x {x.shape} {x.dtype}, y {y.shape}; x[0] = {x[0].tolist()}, y[0] = {y[0].tolist()}")

    say("\n-- 2.7-2.8 token and positional embeddings")
    emb = GPTEmbedding(enc.n_vocab, context, 256, rng=123)
    h = emb(x)
    say(f"tok_emb {emb.tok_emb.weight.shape}, pos_emb {emb.pos_emb.weight.shape}: "
        f"tok_emb(x) {(*x.shape, 256)} + pos_emb(arange({context})) -> input embeddings {h.shape}")

    say(f"\n-- and they learn: a tied-weight bigram model, {steps} AdamW steps (npgpt.bigram)")
    say(f"  chance level: ln({enc.n_vocab}) = {math.log(enc.n_vocab):.2f}")
    sample = ids[:200_000]
    losses = train_bigram(sample, enc.n_vocab, steps=steps, batch_size=4, context=16, emb_dim=16, lr=0.1,
                          log_every=max(1, steps // 4), out=out)
    say(f"loss {losses[0]:.2f} -> {np.mean(losses[-5:]):.2f}")
    say(f"\ndone in {time.perf_counter() - t0:.1f} s")
    return losses
