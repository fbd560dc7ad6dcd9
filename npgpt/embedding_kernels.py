"""numba kernels for `npgpt.embedding`: the backward scatter-add, grouped by id.

The forward needs no kernel (``weight[ids]`` and a broadcast ``+`` are NumPy at memory speed). The
backward does: NumPy's ``np.add.at(grad, ids, rows)`` is exact but 6-8x slower. Here a counting sort
groups the output rows by id, then each group is summed in input order and added to its table row
once. Groups are split across Python threads (`npgpt.embedding`) and these kernels release the GIL
(``nogil=True``): no OpenMP, so a process may ``fork`` after a backward, and since every id's sum is
made by one thread in the same order, the result is the same to the bit for any number of threads.

The plain twin is `npgpt.reference.embedding_backward`. Callers check every array first (shapes,
dtypes, contiguity, ids in range, on arrays the caller can no longer mutate): these loops index
without checks.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def group_by_id(ids, n_rows):
    """A stable counting sort of positions by id.

    Returns ``order`` (positions grouped by id, each group in input order), ``starts`` (group k is
    ``order[starts[k]:starts[k+1]]``) and ``uniq`` (the id of group k, increasing). Every id must be
    in ``[0, n_rows)``.
    """
    counts = np.zeros(n_rows + 1, np.int64)
    for i in range(ids.shape[0]):
        counts[ids[i] + 1] += 1
    n_groups = 0
    for v in range(n_rows):
        if counts[v + 1] > 0:
            n_groups += 1
        counts[v + 1] += counts[v]  # prefix sum: counts[v] is now where id v's group starts
    order = np.empty(ids.shape[0], np.int64)
    fill = counts[:n_rows].copy()
    for i in range(ids.shape[0]):  # in input order, so each group keeps it (stable)
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


@njit(cache=True, nogil=True)
def scatter_add_groups(grad, rows, order, starts, uniq, padding_idx, first, last):
    """For groups ``first <= k < last``: ``grad[uniq[k]] += sum of rows[i] over the group``.

    The group's id `padding_idx` (-1: none) is skipped. A group is summed in input order into a
    scratch row and added to `grad` once, so the answer does not depend on how the groups were
    split among threads; two threads given disjoint ranges of groups never touch the same row.
    """
    d = grad.shape[1]
    acc = np.empty(d, grad.dtype)
    for k in range(first, last):
        v = uniq[k]
        if v == padding_idx:
            continue
        acc[:] = 0
        for s in range(starts[k], starts[k + 1]):
            i = order[s]
            for j in range(d):
                acc[j] += rows[i, j]
        for j in range(d):
            grad[v, j] += acc[j]
