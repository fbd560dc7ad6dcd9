"""Token files: a corpus's ids on disk, read back through ``np.memmap`` without loading them.

nanoGPT keeps a tokenized corpus as one flat file of ``uint16`` ids and reads it with
``np.memmap``: opening costs nothing, and the operating system pages in only the windows a batch
touches. npgpt does the same (`TokenFile`, `write_tokens`, `TokenWriter`), and `tokenize_files`
encodes text files into such a file in parallel, streaming, in bounded memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["TokenFile", "TokenWriter", "as_token_array", "compact_dtype", "tokenize_files", "write_tokens"]


def compact_dtype(max_id: int) -> np.dtype:
    """uint16 when every id fits (GPT-2's 50,257 do), else uint32."""
    return np.dtype(np.uint16 if max_id < 2**16 else np.uint32)


def as_token_array(token_ids: Any) -> np.ndarray:
    """A 1-D integer array of the ids: NumPy arrays and memmaps as they are, lists stored compactly."""
    if isinstance(token_ids, TokenFile):
        return token_ids.tokens
    if isinstance(token_ids, np.ndarray):
        arr = token_ids
    else:
        arr = np.asarray(list(token_ids) if not hasattr(token_ids, "__len__") else token_ids)
        if arr.size and arr.dtype.kind in "iu":
            if arr.min() < 0:
                raise ValueError(f"token ids must be >= 0, got {int(arr.min())}")
            arr = arr.astype(compact_dtype(int(arr.max())))
        elif arr.size == 0:
            arr = arr.astype(np.uint16)
    if arr.ndim != 1:
        raise ValueError(f"token ids must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise TypeError(f"token ids must be integers, got dtype {arr.dtype}")
    return arr



# --------------------------------------------------------------------------------------------
# token files

MAGIC = b"NPGPTTOK"
VERSION = 1
HEADER = 32  # magic (8) | version u32 (4) | dtype str (12, NUL-padded) | count u64 (8)
_DTYPES = {"<u2", "<u4", "<i4", "<i8", "<u8", "|u1"}


class TokenWriter:
    """Append token arrays to a token file; the header's count is written on close.

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "t.npgpt")
    >>> with TokenWriter(path, np.uint16) as w:
    ...     w.write([1, 2, 3]); w.write(np.array([4], np.uint16))
    >>> TokenFile(path).tokens.tolist()
    [1, 2, 3, 4]
    """

    def __init__(self, path: str | os.PathLike, dtype: Any = np.uint16):
        self.path = Path(path)
        self.dtype = np.dtype(dtype).newbyteorder("<") if np.dtype(dtype).itemsize > 1 else np.dtype(dtype)
        if self.dtype.str not in _DTYPES:
            raise ValueError(f"token files hold unsigned/signed integer tokens, not {np.dtype(dtype)}")
        self.count = 0
        self._file = open(self.path, "wb")
        self._file.write(self._header())

    def _header(self) -> bytes:
        return (MAGIC + VERSION.to_bytes(4, "little") + self.dtype.str.encode().ljust(12, b"\0")
                + self.count.to_bytes(8, "little"))

    def write(self, ids: Any) -> None:
        arr = np.asarray(ids)
        if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
            raise ValueError(f"expected a 1-D array of integer ids, got shape {arr.shape} dtype {arr.dtype}")
        if arr.size and (arr.min() < 0 or arr.max() > np.iinfo(self.dtype).max):
            bad = int(arr.min()) if arr.min() < 0 else int(arr.max())
            raise ValueError(f"token id {bad} does not fit the file's dtype {self.dtype}")
        self._file.write(np.ascontiguousarray(arr, dtype=self.dtype).tobytes())
        self.count += arr.size

    def close(self) -> None:
        if not self._file.closed:
            self._file.seek(0)
            self._file.write(self._header())
            self._file.close()

    def __enter__(self) -> TokenWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_tokens(path: str | os.PathLike, ids: Any, dtype: Any = None) -> Path:
    """Write token ids to a token file (header + raw little-endian ids); return the path.

    dtype defaults to uint16 when every id fits, else uint32.

    >>> import tempfile, os
    >>> path = write_tokens(os.path.join(tempfile.mkdtemp(), "t.npgpt"), [15496, 11, 995])
    >>> TokenFile(path)  # doctest: +ELLIPSIS
    TokenFile('...t.npgpt', 3 tokens of uint16)
    """
    arr = as_token_array(ids)
    dtype = compact_dtype(int(arr.max()) if arr.size else 0) if dtype is None else dtype
    with TokenWriter(path, dtype) as w:
        w.write(arr)
    return Path(path)


class TokenFile:
    """Tokens on disk, read through ``np.memmap``: nothing is loaded until it is used.

    Opens npgpt's token files (a 32-byte header: magic, version, dtype, count, so a file is never
    misread) and, when told their `dtype`, raw headerless files such as nanoGPT's ``train.bin``
    (uint16). Windows and loaders work on it directly: ``GPTDatasetV1.from_token_ids(TokenFile(p), ...)``.

    >>> import tempfile, os
    >>> raw = os.path.join(tempfile.mkdtemp(), "train.bin")
    >>> np.arange(10, dtype=np.uint16).tofile(raw)         # a nanoGPT-style file
    >>> tf = TokenFile(raw, dtype=np.uint16)
    >>> len(tf), npgpt.GPTDatasetV1.from_token_ids(tf, max_length=4, stride=4).inputs.tolist()
    (10, [[0, 1, 2, 3], [4, 5, 6, 7]])
    """

    def __init__(self, path: str | os.PathLike, dtype: Any = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no token file at {self.path}")
        with open(self.path, "rb") as f:
            head = f.read(HEADER)
        size = self.path.stat().st_size
        if head[:8] == MAGIC:
            version = int.from_bytes(head[8:12], "little")
            if version != VERSION:
                raise ValueError(f"{self.path}: token file version {version}; this npgpt reads version {VERSION}")
            file_dtype = np.dtype(head[12:24].rstrip(b"\0").decode())
            count = int.from_bytes(head[24:32], "little")
            if HEADER + count * file_dtype.itemsize != size:
                raise ValueError(f"{self.path}: header says {count} tokens of {file_dtype}, but the file has "
                                 f"{size - HEADER} bytes of tokens (truncated or still being written?)")
            if dtype is not None and np.dtype(dtype) != file_dtype:
                raise ValueError(f"{self.path}: holds {file_dtype} tokens, not {np.dtype(dtype)}")
            self.dtype, offset = file_dtype, HEADER
        else:
            if dtype is None:
                raise ValueError(
                    f"{self.path} is not an npgpt token file (no header); if it is a raw token file such as "
                    "nanoGPT's train.bin, pass its dtype, e.g. TokenFile(path, dtype=np.uint16)"
                )
            self.dtype, offset = np.dtype(dtype), 0
            if size % self.dtype.itemsize:
                raise ValueError(f"{self.path}: {size} bytes is not a whole number of {self.dtype} tokens")
            count = size // self.dtype.itemsize
        self.tokens = (np.memmap(self.path, dtype=self.dtype, mode="r", offset=offset, shape=(count,))
                       if count else np.zeros(0, self.dtype))

    def __len__(self) -> int:
        return len(self.tokens)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return np.asarray(self.tokens, dtype=dtype)

    def __repr__(self) -> str:
        return f"TokenFile({str(self.path)!r}, {len(self):,} tokens of {self.dtype})"


def tokenize_files(paths: Iterable[str | os.PathLike], out: str | os.PathLike, *, tokenizer: Any = None,
                   eot: bool = False, num_threads: int | None = None, progress: bool | None = None,
                   chunk_chars: int = 1 << 20) -> TokenFile:
    """Encode text files into one token file: streaming, in parallel, in bounded memory.

    Each file is read in chunks of about `chunk_chars` characters, re-cut where encoding can be split
    (`npgpt.Encoding.chunk_text`), and groups of chunks are encoded on `num_threads` threads
    (default: all cores). Memory holds about ``2 * num_threads`` chunks whatever the corpus size.
    Text that spells ``<|endoftext|>`` is encoded as ordinary text; with `eot`, the real
    ``<|endoftext|>`` token is written after each file, marking document boundaries. A tqdm bar
    shows progress on a terminal (`progress` None), always (True) or never (False).

    `tokenizer` is an `npgpt.Encoding` (default: GPT-2). Returns the `TokenFile` written.

    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> for name, text in (("a.txt", "hello world"), ("b.txt", "bye")):
    ...     with open(os.path.join(d, name), "w") as f:
    ...         _ = f.write(text)
    >>> tf = tokenize_files([os.path.join(d, "a.txt"), os.path.join(d, "b.txt")], os.path.join(d, "t.npgpt"),
    ...                     eot=True, progress=False)
    >>> tf.tokens.tolist()
    [31373, 995, 50256, 16390, 50256]
    """
    import sys

    from tqdm import tqdm

    from npgpt.bpe import get_encoding

    tok = tokenizer if tokenizer is not None else get_encoding("gpt2")
    paths = [Path(p) for p in paths]
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"no such file: {p}")
    threads = num_threads or os.cpu_count() or 1
    eot_id = tok.eot_token if eot else None
    disable = (not sys.stderr.isatty()) if progress is None else not progress
    total = sum(p.stat().st_size for p in paths)
    with TokenWriter(out, tok.token_dtype) as writer, tqdm(total=total, unit="B", unit_scale=True,
                                                            desc="tokenize", disable=disable) as bar:
        pending: list[str | None] = []  # text chunks in order; None marks a document end

        def flush() -> None:
            texts = [c for c in pending if c is not None]
            arrays = iter(tok.encode_batch_to_numpy(texts, num_threads=threads, disallowed_special=()))
            for c in pending:
                writer.write(next(arrays) if c is not None else np.array([eot_id]))
            pending.clear()

        for path in paths:
            with open(path, encoding="utf-8") as f:
                def read(f=f):
                    while text := f.read(chunk_chars):
                        bar.update(len(text.encode("utf-8", "surrogatepass")))
                        yield text

                for chunk in tok.chunk_text(read(), disallowed_special=(), chunk_chars=chunk_chars):
                    pending.append(chunk)
                    if len(pending) >= 2 * threads:
                        flush()
            if eot:
                pending.append(None)
        flush()
    return TokenFile(out)
