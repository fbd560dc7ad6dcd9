"""numba kernels for `npgpt.embedding`: gather, fused positional add, race-free scatter-add.

Callers check every id and shape first (`npgpt.embedding`); these loops index without checks.
Their plain-loop references are in ``tests/test_embedding.py``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True)
def gather(weight, ids, out):
    """``out[r] = weight[ids[r]]``: the embedding lookup, rows split across threads."""
    d = weight.shape[1]
    for r in prange(ids.shape[0]):
        src = ids[r]
        for j in range(d):
            out[r, j] = weight[src, j]


@njit(cache=True, parallel=True)
def gather_add_positions(tok, pos, ids, t, out):
    """``out[r] = tok[ids[r]] + pos[r % t]``: token lookup and positional add in one pass.

    Row r of the flattened (B*T, D) output is batch r // t, position r % t.
    """
    d = tok.shape[1]
    for r in prange(ids.shape[0]):
        src = ids[r]
        p = r % t
        for j in range(d):
            out[r, j] = tok[src, j] + pos[p, j]


@njit(cache=True)
def group_by_id(ids, n_rows):
    """A counting sort of positions by id, stable.

    Returns ``order`` (positions grouped by id, each group in input order), ``starts`` (group k is
    ``order[starts[k]:starts[k+1]]``) and ``uniq`` (the id of group k).
    """
    counts = np.zeros(n_rows + 1, np.int64)
    for i in range(ids.shape[0]):
        counts[ids[i] + 1] += 1
    n_groups = 0
    for v in range(n_rows):
        if counts[v + 1] > 0:
            n_groups += 1
        counts[v + 1] += counts[v]  # counts[v] is now where id v's group starts
    order = np.empty(ids.shape[0], np.int64)
    fill = counts[:n_rows].copy()
    for i in range(ids.shape[0]):
        order[fill[ids[i]]] = i
        fill[ids[i]] += 1
    starts = np.empty(n_groups + 1, np.int64)
    uniq = np.empty(n_groups, np.int64)
    k = 0
    for v in range(n_rows):
        if counts[v + 1] > counts[v]:
            starts[k] = counts[v]
            uniq[k] = v
            k += 1
    starts[n_groups] = ids.shape[0]
    return order, starts, uniq


@njit(cache=True, parallel=True)
def scatter_add_grouped(grad, rows, order, starts, uniq, padding_idx):
    """``grad[id] += sum of rows[i] for every i with that id``, skipping `padding_idx` (-1: none).

    Each id's group is summed by one thread, in input order, and written once: threads never
    share a row (no races), and the result is the same to the bit for any thread count.
    """
    d = grad.shape[1]
    for k in prange(uniq.shape[0]):
        v = uniq[k]
        if v == padding_idx:
            continue
        acc = np.zeros(d, grad.dtype)
        for s in range(starts[k], starts[k + 1]):
            i = order[s]
            for j in range(d):
                acc[j] += rows[i, j]
        for j in range(d):
            grad[v, j] += acc[j]
