"""Parameters and optimizers: updates by hand, torch when importable, and arrays swapped under them."""

import numpy as np
import pytest

from npgpt import SGD, AdamW, Embedding, Parameter


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


def test_optimizer_errors():
    with pytest.raises(ValueError, match="empty"):
        SGD([], lr=0.1)
    with pytest.raises(TypeError, match="Parameter"):
        AdamW([np.zeros(3)])
    with pytest.raises(ValueError, match="learning rate"):
        AdamW([Parameter(np.zeros(1))], lr=-1)
    with pytest.raises(ValueError, match="betas"):
        AdamW([Parameter(np.zeros(1))], betas=(1.0, 0.9))




def test_parameter_refuses_another_layout():
    # torch's idiom `p.data = ...` / `p.grad = ...` is allowed only for the same layout: optimizer
    # state and the numba scatter-add index both arrays as they were when the parameter was made
    p = Parameter(np.zeros((4, 3), np.float32), "w")
    same = np.ones((4, 3), np.float32)
    p.data = same
    assert p.data is same
    p.grad = np.full((4, 3), 2, np.float32)
    bad = [
        (np.zeros((3, 4), np.float32), ValueError, r"shape \(4, 3\), got \(3, 4\)"),
        (np.zeros((5, 3), np.float32), ValueError, "shape"),
        (np.zeros((4, 3), np.float64), TypeError, "dtype float32, got float64"),
        (np.zeros((4, 3), np.int32), TypeError, "dtype"),
        (np.zeros((3, 4), np.float32).T, ValueError, "C-contiguous"),
        (np.zeros((4, 6), np.float32)[:, ::2], ValueError, "C-contiguous"),
        ([[0.0] * 3] * 4, TypeError, "numpy array, got list"),
        (None, TypeError, "None"),
    ]
    readonly = np.zeros((4, 3), np.float32)
    readonly.flags.writeable = False
    bad.append((readonly, ValueError, "writeable"))
    for value, exc, msg in bad:
        for attr in ("data", "grad"):
            with pytest.raises(exc, match=msg):
                setattr(p, attr, value)
    assert p.data is same and (p.grad == 2).all()  # nothing was half-assigned
    with pytest.raises(TypeError, match="zero_grad"):
        p.grad = None
    with pytest.raises(TypeError, match="floating point"):
        Parameter(np.arange(3))
    with pytest.raises(TypeError, match="numpy array"):
        Parameter([1.0, 2.0])


@pytest.mark.parametrize("make", [lambda ps: SGD(ps, lr=0.1, momentum=0.9), lambda ps: AdamW(ps, lr=0.1)])
def test_optimizers_refuse_arrays_reshaped_in_place(make):
    emb = Embedding(6, 4, rng=0)
    opt = make(emb.parameters())
    emb.grad[:] = 1
    opt.step()
    before = emb.weight.copy()
    emb.weight.shape = (4, 6)  # a contiguous array can be reshaped in place, under the parameter
    with pytest.raises(ValueError, match=r"changed in place to shape \(4, 6\)"):
        opt.step()
    with pytest.raises(ValueError, match="changed in place"):
        emb(np.array([1, 2]))
    emb.weight.shape = (6, 4)
    assert np.array_equal(emb.weight, before)
    out = emb(np.array([1, 2]))
    emb.grad.shape = (24,)
    with pytest.raises(ValueError, match="changed in place"):
        emb.backward(np.ones_like(out))
    emb.grad.shape = (6, 4)
    emb.backward(np.ones_like(out))


def test_nan_gradients_flow_through():
    p = Parameter(np.array([1.0, 2.0]))
    p.grad[:] = [np.nan, 0.0]
    AdamW([p], lr=0.1).step()
    assert np.isnan(p.data[0]) and p.data[1] == pytest.approx(2.0 * (1 - 0.1 * 0.01))


def test_same_parameter_twice_is_refused():
    p = Parameter(np.zeros(2))
    with pytest.raises(ValueError, match="more than once"):
        SGD([p, p], lr=0.1)
