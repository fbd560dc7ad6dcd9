"""Unicode character classes as a NumPy table, for the numba pre-tokenizer.

GPT-2's pattern asks three questions of every character: is it a letter (``\\p{L}``), a number
(``\\p{N}``), or white space (``\\s``)? A numba kernel cannot call the `regex` module, so the answers
for all 1,114,112 code points are written into one ``uint8`` array, a class per code point:
`LETTER`, `NUMBER`, `SPACE`, or `OTHER` (0).

The table is built from `regex` itself, so it agrees with the reference path by construction
(``\\s`` in `regex` is not quite ``str.isspace``: U+001C..U+001F are spaces to Python, not to
`regex`). Building takes about 0.2 s, so the table is cached on disk, keyed by the `regex` version,
in ``$NPGPT_CACHE_DIR`` or ``~/.cache/npgpt``; when that is not writable it lives in memory only.

Example
-------
>>> t = char_classes()
>>> int(t[ord("a")]) == LETTER, int(t[ord("7")]) == NUMBER, int(t[0x3000]) == SPACE, int(t[ord("!")]) == OTHER
(True, True, True, True)
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

import numpy as np
import regex

__all__ = ["LETTER", "NUMBER", "OTHER", "SPACE", "build_char_classes", "cache_dir", "char_classes"]

OTHER, LETTER, NUMBER, SPACE = 0, 1, 2, 3
N_CODE_POINTS = 0x110000


def build_char_classes() -> np.ndarray:
    """Ask `regex` which code points are ``\\p{L}``, ``\\p{N}`` and ``\\s``; return the class table."""
    everything = "".join(map(chr, range(N_CODE_POINTS)))  # surrogates included: never matched
    table = np.zeros(N_CODE_POINTS, np.uint8)
    seen = np.zeros(N_CODE_POINTS, np.uint8)
    for cls, pattern in ((LETTER, r"\p{L}+"), (NUMBER, r"\p{N}+"), (SPACE, r"\s+")):
        for m in regex.finditer(pattern, everything):
            table[m.start() : m.end()] = cls
            seen[m.start() : m.end()] += 1
    # The scanner relies on the classes being disjoint, as they are in Unicode.
    if seen.max() > 1:
        raise RuntimeError(f"code point U+{int(seen.argmax()):04X} is in two of \\p{{L}}, \\p{{N}}, \\s")
    return table


def cache_dir() -> Path:
    """Where npgpt keeps files it derives once per machine."""
    if os.environ.get("NPGPT_CACHE_DIR"):
        return Path(os.environ["NPGPT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "npgpt"


@functools.lru_cache(maxsize=1)
def char_classes() -> np.ndarray:
    """The class table (read-only), from the disk cache when it is there and sound."""
    path = cache_dir() / f"char-classes-regex-{regex.__version__}.npy"
    try:
        table = np.load(path)
        if table.shape == (N_CODE_POINTS,) and table.dtype == np.uint8:
            table.flags.writeable = False
            return table
    except (OSError, ValueError):
        pass
    table = build_char_classes()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as f:
            np.save(f, table)
        os.replace(f.name, path)  # atomic: a reader never sees half a file
    except OSError:
        pass  # a read-only home: keep the table in memory
    table.flags.writeable = False
    return table
