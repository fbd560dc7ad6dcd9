"""Embeddings and optimizers: plain-loop references, finite differences, torch when importable."""

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from npgpt import SGD, AdamW, Embedding, GPTEmbedding, Parameter, reference

id_patterns = st.sampled_from(["random", "all equal", "all distinct", "two values"])


def make_ids(pattern, b, t, vocab, rng):
    if pattern == "all equal":
        return np.full((b, t), rng.integers(vocab))
    if pattern == "all distinct" and b * t <= vocab:
        return rng.permutation(vocab)[: b * t].reshape(b, t)
    if pattern == "two values":
        return rng.choice([0, vocab - 1], (b, t))
    return rng.integers(0, vocab, (b, t))


@given(st.integers(1, 4), st.integers(1, 12), st.integers(1, 9), st.integers(1, 40), id_patterns,
       st.sampled_from([np.float32, np.float64]), st.integers(0, 2**32 - 1))
def test_gpt_embedding_equals_loops(b, t, d, vocab, pattern, dtype, seed):
    rng = np.random.default_rng(seed)
    emb = GPTEmbedding(vocab, 12, d, rng=seed, dtype=dtype)
    ids = make_ids(pattern, b, t, vocab, rng)
    out = emb(ids)
    assert out.shape == (b, t, d) and out.dtype == dtype
    assert np.array_equal(out, reference.embedding_forward(emb.tok_emb.weight, emb.pos_emb.weight, ids))
    grad = rng.standard_normal((b, t, d)).astype(dtype)
    emb.backward(grad)
    emb.backward(grad)  # gradients accumulate
    g_tok, g_pos = reference.embedding_backward(vocab, 12, ids, grad.astype(np.float64))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert np.allclose(emb.tok_emb.grad, 2 * g_tok, rtol=tol, atol=tol)
    assert np.allclose(emb.pos_emb.grad, 2 * g_pos, rtol=tol, atol=tol)


@given(st.integers(1, 30), st.integers(1, 6), st.lists(st.integers(0, 29), min_size=1, max_size=40),
       st.one_of(st.none(), st.integers(-30, 29)))
def test_embedding_padding_and_any_shape(vocab, d, flat_ids, padding_idx):
    ids = np.array([i % vocab for i in flat_ids]).reshape(-1, 1)
    pad = None if padding_idx is None or not -vocab <= padding_idx < vocab else padding_idx
    emb = Embedding(vocab, d, rng=1, padding_idx=pad, dtype=np.float64)
    if pad is not None:
        assert not emb.weight[pad].any()  # the padding row starts at zero
    out = emb(ids)
    assert np.array_equal(out, emb.weight[ids])
    grad = np.ones(out.shape)
    emb.backward(grad)
    expected = np.bincount(ids.ravel(), minlength=vocab).astype(float)[:, None].repeat(d, 1)
    if pad is not None:
        expected[pad % vocab] = 0
    assert np.array_equal(emb.grad, expected)


def test_finite_differences_float64():
    rng = np.random.default_rng(0)
    emb = GPTEmbedding(7, 5, 3, rng=0, dtype=np.float64)
    ids = np.array([[1, 3, 1, 6], [0, 1, 1, 2]])
    w = rng.standard_normal((2, 4, 3))

    def loss():  # a scalar function of the output: sum(out * w) + sum(out**2) / 2
        out = emb(ids)
        return float((out * w).sum() + (out**2).sum() / 2)

    out = emb(ids)
    emb.zero_grad()
    emb.backward(w + out)  # d loss / d out
    for table in (emb.tok_emb, emb.pos_emb):
        numeric = np.zeros_like(table.weight)
        for idx in np.ndindex(table.weight.shape):
            keep = table.weight[idx]
            table.weight[idx] = keep + 1e-6
            up = loss()
            table.weight[idx] = keep - 1e-6
            down = loss()
            table.weight[idx] = keep
            numeric[idx] = (up - down) / 2e-6
        assert np.allclose(table.grad, numeric, rtol=1e-6, atol=1e-6)


def test_backward_is_deterministic_across_thread_counts(tmp_path):
    # same ids, same gradient, 1 thread vs 2 threads: bit-identical sums
    code = """
import numpy as np, sys
from npgpt import GPTEmbedding
rng = np.random.default_rng(0)
emb = GPTEmbedding(50, 64, 32, rng=0)
ids = rng.integers(0, 5, (16, 64))            # few ids: long groups to sum
emb(ids)
emb.backward(rng.standard_normal((16, 64, 32)).astype(np.float32))
np.save(sys.argv[1], emb.tok_emb.grad)
"""
    results = []
    for threads in ("1", "2"):
        path = tmp_path / f"g{threads}.npy"
        env = {"NUMBA_NUM_THREADS": threads, "PATH": "/usr/bin:/bin"}
        done = subprocess.run([sys.executable, "-c", code, str(path)], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        results.append(np.load(path))
    assert np.array_equal(results[0], results[1])


def test_errors():
    emb = GPTEmbedding(10, 4, 3, rng=0)
    with pytest.raises(ValueError, match="before forward"):
        emb.backward(np.zeros((1, 1, 3)))
    with pytest.raises(IndexError, match="id -1 is out of range"):
        emb(np.array([[1, -1]]))
    with pytest.raises(IndexError, match="id 10 is out of range"):
        emb(np.array([[10]]))
    with pytest.raises(IndexError, match="must be integers"):
        emb(np.array([[1.0]]))
    with pytest.raises(ValueError, match=r"T=5 exceeds context_length=4"):
        emb(np.zeros((1, 5), int))
    with pytest.raises(ValueError, match="shape"):
        emb(np.zeros(3, int))
    emb(np.zeros((2, 3), int))
    with pytest.raises(ValueError, match=r"grad_out has shape \(2, 3\)"):
        emb.backward(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="padding_idx"):
        Embedding(5, 2, padding_idx=5)
    with pytest.raises(ValueError, match="num_embeddings"):
        Embedding(0, 2)
    with pytest.raises(TypeError, match="rng"):
        Embedding(5, 2, rng="seed")


def test_state_dict_roundtrip(tmp_path):
    emb = GPTEmbedding(20, 8, 4, rng=0)
    np.savez(tmp_path / "emb.npz", **emb.state_dict())
    other = GPTEmbedding(20, 8, 4, rng=1)
    assert not np.array_equal(other.tok_emb.weight, emb.tok_emb.weight)
    other.load_state_dict(np.load(tmp_path / "emb.npz"))
    ids = np.array([[1, 2, 3]])
    assert np.array_equal(other(ids), emb(ids))
    with pytest.raises(ValueError, match="shape"):
        GPTEmbedding(21, 8, 4).load_state_dict(emb.state_dict())
    with pytest.raises(KeyError, match=r"pos_emb\.weight"):
        other.load_state_dict({"tok_emb.weight": emb.tok_emb.weight})


def test_init_is_standard_normal():
    w = Embedding(2000, 50, rng=0).weight
    assert abs(w.mean()) < 0.01 and abs(w.std() - 1) < 0.01


# ------------------------------------------------------------------------------------------
# optimizers


def test_sgd_by_hand():
    p = Parameter(np.array([1.0, -2.0]))
    opt = SGD([p], lr=0.1, momentum=0.9, weight_decay=0.5)
    p.grad[:] = [1.0, 1.0]
    opt.step()  # g = grad + 0.5 * w = [1.5, 0]; buf = g; w -= 0.1 * buf
    assert np.allclose(p.data, [0.85, -2.0])
    opt.step()  # g = [1 + 0.425, 1 - 1.0] = [1.425, 0]; buf = 0.9 * [1.5, 0] + g = [2.775, 0]
    assert np.allclose(p.data, [0.85 - 0.2775, -2.0])
    opt.zero_grad()
    assert not p.grad.any()


def test_adamw_by_hand():
    p = Parameter(np.array([1.0]))
    opt = AdamW([p], lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
    p.grad[:] = [2.0]
    opt.step()
    # w = 1 * (1 - 0.01) = 0.99; m = 0.2; v = 0.004; m_hat = 2, v_hat = 4: w -= 0.1 * 2 / (2 + 1e-8)
    assert np.allclose(p.data, [0.99 - 0.1 * 2 / (2 + 1e-8)], rtol=1e-12)


def test_optimizers_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((6, 4)).astype(np.float32)
    grads = [rng.standard_normal((6, 4)).astype(np.float32) for _ in range(5)]
    cases = [
        (lambda ps: SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.01),
         lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.01)),
        (lambda ps: AdamW(ps, lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
         lambda ps: torch.optim.AdamW(ps, lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ]
    for ours_fn, theirs_fn in cases:
        p = Parameter(w0.copy())
        t = torch.nn.Parameter(torch.from_numpy(w0.copy()))
        ours, theirs = ours_fn([p]), theirs_fn([t])
        for g in grads:
            p.grad[...] = g
            t.grad = torch.from_numpy(g.copy())
            ours.step()
            theirs.step()
        assert np.allclose(p.data, t.detach().numpy(), rtol=1e-6, atol=1e-7)


def test_embedding_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    emb = GPTEmbedding(100, 16, 8, rng=0)
    ids = rng.integers(0, 100, (4, 16))
    grad = rng.standard_normal((4, 16, 8)).astype(np.float32)
    t_tok = torch.nn.Parameter(torch.from_numpy(emb.tok_emb.weight.copy()))
    t_pos = torch.nn.Parameter(torch.from_numpy(emb.pos_emb.weight.copy()))
    out_t = torch.nn.functional.embedding(torch.from_numpy(ids), t_tok) + t_pos[:16]
    out_t.backward(torch.from_numpy(grad))
    out = emb(ids)
    emb.backward(grad)
    assert np.array_equal(out, out_t.detach().numpy())
    assert np.allclose(emb.tok_emb.grad, t_tok.grad.numpy(), rtol=1e-6, atol=1e-6)
    assert np.allclose(emb.pos_emb.grad, t_pos.grad.numpy(), rtol=1e-6, atol=1e-6)


def test_optimizer_errors():
    with pytest.raises(ValueError, match="empty"):
        SGD([], lr=0.1)
    with pytest.raises(TypeError, match="Parameter"):
        AdamW([np.zeros(3)])
    with pytest.raises(ValueError, match="learning rate"):
        AdamW([Parameter(np.zeros(1))], lr=-1)
    with pytest.raises(ValueError, match="betas"):
        AdamW([Parameter(np.zeros(1))], betas=(1.0, 0.9))


# ------------------------------------------------------------------------------------------
# the end-to-end bigram model


def test_bigram_gradient_by_finite_differences():
    from npgpt.bigram import BigramLM

    model = BigramLM(vocab_size=6, emb_dim=3, rng=0, dtype=np.float64)
    x, y = np.array([[0, 2, 2, 5]]), np.array([[2, 2, 5, 1]])
    model.loss_and_backward(x, y)
    analytic = model.tok_emb.grad.copy()
    w = model.tok_emb.weight
    numeric = np.zeros_like(w)
    for idx in np.ndindex(w.shape):
        keep = w[idx]
        w[idx] = keep + 1e-6
        up = model.loss_and_backward(x, y)
        w[idx] = keep - 1e-6
        down = model.loss_and_backward(x, y)
        w[idx] = keep
        numeric[idx] = (up - down) / 2e-6
    assert np.allclose(analytic, numeric, rtol=1e-5, atol=1e-7)


def test_bigram_training_loss_falls(enc, verdict):
    import math

    from npgpt.bigram import train_bigram

    losses = train_bigram(enc.encode_to_numpy(verdict), enc.n_vocab, steps=60, batch_size=4, context=16,
                          emb_dim=16, lr=0.1, out=None)
    assert len(losses) == 60
    assert np.mean(losses[-10:]) < math.log(enc.n_vocab) < losses[0]
