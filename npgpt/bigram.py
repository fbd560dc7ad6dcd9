"""The whole chapter end to end: text -> ids -> windows -> embeddings -> a model that learns.

The smallest language model that trains on these windows is a *bigram* model: it predicts the next
token from the current one alone. With tied weights it needs nothing but the token embedding:

    h      = tok_emb(x)                  # (B, T, D): one vector per input token
    logits = h @ tok_emb.weight.T        # (B, T, V): a score for every possible next token
    loss   = cross_entropy(logits, y)    # y: the targets, the inputs shifted by one

Its gradient, written out (no autograd): with ``p = softmax(logits)``,
``dlogits = (p - onehot(y)) / (B*T)``; the weight matrix is used twice, so it gets two
contributions -- ``dlogits^T @ h`` from the output projection, and the scatter-add of
``dlogits @ W`` through the lookup (`npgpt.Embedding.backward`).

Run ``python -m npgpt.bigram [FILE]`` to train on the-verdict (or FILE) and print the falling loss.

Example
-------
>>> model = BigramLM(vocab_size=50, emb_dim=8, rng=0)
>>> x = np.array([[1, 2, 3]]); y = np.array([[2, 3, 4]])
>>> loss = model.loss_and_backward(x, y)
>>> model.tok_emb.grad.shape
(50, 8)
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from npgpt.data import DataLoader, GPTDatasetV1
from npgpt.embedding import Embedding
from npgpt.optim import AdamW, Parameter

__all__ = ["BigramLM", "train_bigram"]


class BigramLM:
    """A tied-weight bigram language model on one `Embedding` (see the module docstring)."""

    def __init__(self, vocab_size: int, emb_dim: int = 32, *, rng: Any = None, dtype: Any = np.float32):
        self.tok_emb = Embedding(vocab_size, emb_dim, rng=rng, dtype=dtype)

    def parameters(self) -> list[Parameter]:
        return self.tok_emb.parameters()

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Scores for the next token after each token of `x`: shape ``x.shape + (vocab_size,)``."""
        return self.tok_emb(x) @ self.tok_emb.weight.T

    def loss_and_backward(self, x: np.ndarray, y: np.ndarray) -> float:
        """Mean cross-entropy of predicting `y` from `x`; adds its gradient into ``tok_emb.grad``."""
        w = self.tok_emb.weight
        h = self.tok_emb(x).reshape(-1, w.shape[1])  # (N, D)
        targets = np.asarray(y).reshape(-1)
        logits = h @ w.T  # (N, V)
        logits -= logits.max(axis=1, keepdims=True)  # stable softmax: shift by the row maximum
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        n = len(targets)
        rows = np.arange(n)
        loss = -float(np.log(p[rows, targets] + 1e-30).mean())
        dlogits = p
        dlogits[rows, targets] -= 1
        dlogits /= n
        grad = self.tok_emb.grad
        grad += dlogits.T @ h  # through the output projection (weight.T)
        self.tok_emb.backward((dlogits @ w).reshape(*np.shape(x), w.shape[1]))  # through the lookup
        return loss


def train_bigram(token_ids: Any, vocab_size: int, *, steps: int = 300, batch_size: int = 8, context: int = 32,
                 emb_dim: int = 32, lr: float = 0.05, seed: int = 0, log_every: int = 50,
                 out: Any = "stdout") -> list[float]:
    """Train a `BigramLM` with AdamW on sliding windows of `token_ids`; return the loss of every step.

    Prints the loss every `log_every` steps to `out` (a file; default sys.stdout; None: quiet).
    """
    out = sys.stdout if out == "stdout" else out
    ds = GPTDatasetV1.from_token_ids(token_ids, max_length=context, stride=context)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, drop_last=True, seed=seed)
    model = BigramLM(vocab_size, emb_dim, rng=seed)
    opt = AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    losses: list[float] = []
    while len(losses) < steps:
        for x, y in loader:
            opt.zero_grad()
            losses.append(model.loss_and_backward(x, y))
            opt.step()
            if out is not None and (len(losses) == 1 or len(losses) % log_every == 0):
                print(f"  step {len(losses):4d}  loss {losses[-1]:.3f}", file=out)
            if len(losses) == steps:
                break
    return losses


def main(argv: list[str] | None = None) -> int:
    """Encode a text (default: the-verdict from ../shared/corpus, else Python's pydoc topics) and train."""
    from npgpt.bpe import get_encoding

    argv = sys.argv[1:] if argv is None else argv
    if argv:
        path = Path(argv[0])
    else:
        path = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "the-verdict.txt"
    if path.is_file():
        name, text = str(path), path.read_text(encoding="utf-8")
    else:
        from pydoc_data import topics

        name, text = "pydoc_data.topics", "\n\n".join(topics.topics[k] for k in sorted(topics.topics))[:100_000]
    enc = get_encoding("gpt2")
    ids = enc.encode_to_numpy(text, disallowed_special=())
    print(f"{name}: {len(ids):,} tokens; chance level ln({enc.n_vocab}) = {math.log(enc.n_vocab):.2f}")
    losses = train_bigram(ids, enc.n_vocab)
    print(f"loss {losses[0]:.2f} -> {losses[-1]:.2f} after {len(losses)} AdamW steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
