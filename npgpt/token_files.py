"""Token files: a corpus's ids on disk, memory-mapped back without loading them.

nanoGPT keeps a tokenized corpus as one flat file of ids and reads it with ``np.memmap``: opening
costs nothing, and the operating system pages in only the windows a batch touches. npgpt writes
and reads two standard formats, so any NumPy program can read its files:

``.npy`` (the default)
    NumPy's own format: a short text header that names the dtype and the length, then the raw
    little-endian ids. ``np.load(path, mmap_mode="r")`` maps it; the file describes itself, so it
    is never misread. npgpt writes it streaming: the header first says 0 tokens and is patched with
    the count at the end (NumPy pads every header with room for a 21-digit length, so the patch
    never moves the data).
``.bin`` (``format="bin"``)
    nanoGPT's ``train.bin``: raw uint16 ids, no header. nanoGPT's own line reads it unchanged:
    ``np.memmap(path, dtype=np.uint16, mode="r")``. Nothing in the file says what it holds, so
    `TokenFile` assumes uint16 for a ``.bin`` name and needs ``dtype=`` for any other raw file.

`TokenFile` also reads npgpt's old format (a 32-byte ``NPGPTTOK`` header), but nothing writes it any
more. Token files hold little-endian signed or unsigned integers and nothing else: a header that
claims floats, booleans, dates or big-endian ids is refused rather than misread.

Writes are atomic. `TokenWriter` writes to a temporary file beside the target
(``.NAME.PID.RANDOM.tmp``) and renames it over the target (``os.replace``) only when it is complete.
A run that fails or is interrupted leaves an earlier file as it was, and a reader that has the old
file mapped keeps reading it (its inode lives until unmapped) instead of dying with SIGBUS on a file
truncated under it.

`tokenize_files` encodes text files into one token file (or a ``train``/``val`` pair, as nanoGPT's
``prepare.py`` scripts do), in parallel, streaming, in bounded memory.

Example
-------
>>> import tempfile, os
>>> path = write_tokens(os.path.join(tempfile.mkdtemp(), "train.bin"), [15496, 11, 995])
>>> np.memmap(path, dtype=np.uint16, mode="r").tolist()   # nanoGPT's loading line
[15496, 11, 995]
>>> _ = write_tokens(path.with_suffix(".npy"), [15496, 11, 995])
>>> np.load(path.with_suffix(".npy"), mmap_mode="r").tolist()
[15496, 11, 995]
"""

from __future__ import annotations

import codecs
import contextlib
import io
import os
import secrets
import sys
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = ["FileDecodeError", "TokenFile", "TokenWriter", "as_token_array", "compact_dtype", "tokenize_files",
           "write_tokens"]

Format = Literal["npy", "bin"]
FORMATS = ("npy", "bin")


def compact_dtype(max_id: int) -> np.dtype:
    """The smallest unsigned dtype that holds ids up to `max_id`: uint16 (GPT-2's 50,257 ids), uint32 or uint64.

    >>> compact_dtype(50256), compact_dtype(100276), compact_dtype(2**32 + 7)
    (dtype('uint16'), dtype('uint32'), dtype('uint64'))
    """
    max_id = int(max_id)
    for dtype in (np.uint16, np.uint32, np.uint64):
        if 0 <= max_id <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise ValueError(f"token id {max_id} is out of range: token ids are integers in [0, 2**64)")


def as_token_array(token_ids: Any) -> np.ndarray:
    """The ids as a 1-D integer array: NumPy arrays and memmaps as they are, anything else stored compactly.

    A list (or any iterable of ints) is range-checked *before* it is cast: ids must be in
    ``[0, 2**64)``, and are stored in the smallest unsigned dtype that holds the largest
    (`compact_dtype`), so no id ever wraps. Arrays are used as they are (zero copy), but must be 1-D
    and of an integer dtype; an empty one of any dtype (``np.array([])`` is float64) holds no ids,
    and is an empty uint16 array, as the empty list is.

    >>> as_token_array([15496, 11, 995]).dtype, as_token_array([2**32 + 7, 1]).tolist()
    (dtype('uint16'), [4294967303, 1])
    """
    if isinstance(token_ids, TokenFile):
        return token_ids.tokens
    if isinstance(token_ids, (str, bytes)):
        raise TypeError(f"token ids must be a sequence of ints, not {type(token_ids).__name__}: encode the text first")
    if isinstance(token_ids, np.ndarray):
        arr = token_ids
        if arr.ndim == 1 and arr.size == 0 and arr.dtype.kind not in "iu":  # np.array([]) is float64: no ids at all
            arr = np.empty(0, np.uint16)
    else:
        values = token_ids if hasattr(token_ids, "__len__") else list(token_ids)
        arr = np.asarray(values)
        if arr.ndim == 1 and arr.dtype.kind in "fO":
            # NumPy stores [0, 2**63] as float64 and ints past 2**64 as objects: look at the values themselves
            for v in values:
                if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                    raise TypeError(f"token ids must be integers, got {v!r}")
                if not 0 <= v < 2**64:
                    raise ValueError(f"token ids must be in [0, 2**64), got {v}")
            arr = np.array([int(v) for v in values], dtype=np.uint64)
        if arr.ndim == 1 and arr.size == 0:
            arr = arr.astype(np.uint16)
        elif arr.ndim == 1 and arr.dtype.kind in "iu":
            lo, hi = int(arr.min()), int(arr.max())  # range check before the cast below
            if lo < 0:
                raise ValueError(f"token ids must be >= 0, got {lo}")
            arr = arr.astype(compact_dtype(hi))
    if arr.ndim != 1:
        raise ValueError(f"token ids must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise TypeError(f"token ids must be integers, got dtype {arr.dtype}")
    return arr


def _int_dtype(dtype: Any, where: str = "") -> np.dtype:
    """`dtype` if it is a little-endian (or one-byte) signed/unsigned integer dtype, else ValueError."""
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError):
        raise ValueError(f"{where}not a NumPy dtype: {dtype!r}") from None
    big = dt.byteorder == ">" or (dt.byteorder == "=" and sys.byteorder == "big")
    if dt.kind not in "iu" or big:
        raise ValueError(f"{where}token files hold little-endian signed or unsigned integers, not {dt.str} ({dt})")
    return dt


def _format_of(path: Path, format: str | None) -> Format:
    if format is None:
        return "bin" if path.suffix == ".bin" else "npy"
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    # A name that says the other format is a slip: raw ids in t.npy make np.load fail ("pickled data"),
    # and the .npy header at the start of train.bin reads as wrong ids in nanoGPT.
    other = {"npy": ".bin", "bin": ".npy"}[format]
    if path.suffix.lower() == other:
        raise ValueError(f"format {format!r} does not go with the name {path.name} (a {other} file): "
                         f"name it {path.with_suffix('.' + format).name}, or leave the format to the name")
    return "npy" if format == "npy" else "bin"


def _check_output(path: Path) -> None:
    """Refuse, before any work, an output that cannot be written: a folder, a device, pipe or socket (which
    the rename would replace: ``--out /dev/null`` run as root replaced /dev/null), or a file in a missing folder."""
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give the token file a name, e.g. {path / 'tokens.npy'}")
    if path.exists() and not path.is_file():
        raise ValueError(f"{path} is not a regular file (a device, pipe or socket): a token file is written beside "
                         "its name and renamed over it, which would replace it; give the name of a file")
    parent = path.parent
    if not parent.exists():
        raise FileNotFoundError(f"no folder {parent} to write {path} in")
    if not parent.is_dir():
        raise NotADirectoryError(f"{parent} is not a folder, so {path} cannot be written")


def _npy_header(dtype: np.dtype, count: int) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype.str, "fortran_order": False, "shape": (count,)})
    return buf.getvalue()


class TokenWriter:
    """Append token arrays to a token file; the file appears, complete, only on `close`.

    Parameters
    ----------
    path : str or Path
        The file to write. Its folder must exist; an existing file is replaced on success only (through
        a symbolic link: the file it names). A folder, device, pipe or socket is refused.
    dtype : integer dtype
        How ids are stored (uint16 for GPT-2). Each `write` checks its ids fit before casting.
    format : "npy", "bin" or None
        ``.npy`` (streamed, header patched at the end) or raw ids; None: "bin" if `path` ends in
        ``.bin``, else "npy".

    Use it as a context manager: leaving the block normally renames the temporary file over `path`;
    an exception (Ctrl-C included) deletes it and leaves `path` as it was.

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "t.npy")
    >>> with TokenWriter(path, np.uint16) as w:
    ...     w.write([1, 2, 3]); w.write(np.array([4], np.uint16))
    >>> np.load(path, mmap_mode="r").tolist()
    [1, 2, 3, 4]
    """

    SYNC_EVERY = 1 << 22  # bytes

    def __init__(self, path: str | os.PathLike, dtype: Any = np.uint16, format: Format | None = None):
        self.path = Path(path)
        self.format = _format_of(self.path, format)
        dt = _int_dtype(dtype)
        self.dtype = dt.newbyteorder("<") if dt.itemsize > 1 else dt  # '=u2' spelled '<u2' in the header
        self.count = 0
        self._unsynced = 0  # bytes written since the last sync
        _check_output(self.path)
        # A symbolic link stays one: the file it names is the one replaced (as writing through it would).
        self._target = Path(os.path.realpath(self.path)) if self.path.is_symlink() else self.path
        self._header = _npy_header(self.dtype, 0) if self.format == "npy" else b""
        # O_EXCL: a fresh file of our own, beside the target so that os.replace is a rename on one file system;
        # mode 0o666 lets the umask decide the permissions, as for any new file.
        self._tmp = self._target.parent / f".{self._target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except PermissionError:
            raise PermissionError(f"cannot write {self.path}: permission denied in {self._target.parent}") from None
        except OSError as e:  # a read-only file system, ...: named by the file asked for, not our temporary one
            raise type(e)(f"cannot write {self.path}: {e.strerror or e}") from None
        self._file = os.fdopen(fd, "wb")
        self._file.write(self._header)

    def write(self, ids: Any) -> None:
        """Append `ids` (1-D integers, each in the range of the file's dtype)."""
        if self._file.closed:
            raise ValueError(f"the writer of {self.path} is closed")
        arr = np.asarray(ids)
        if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
            raise ValueError(f"expected a 1-D array of integer ids, got shape {arr.shape} dtype {arr.dtype}")
        if arr.size and not np.can_cast(arr.dtype, self.dtype, "safe"):
            info = np.iinfo(self.dtype)
            lo, hi = int(arr.min()), int(arr.max())  # range check before the cast
            if lo < info.min or hi > info.max:
                raise ValueError(f"token id {lo if lo < info.min else hi} does not fit the file's dtype {self.dtype}")
        # the array's own buffer, not a .tobytes() copy of it
        self._file.write(np.ascontiguousarray(arr, dtype=self.dtype).data.cast("B"))
        self.count += arr.size
        self._unsynced += arr.size * self.dtype.itemsize
        if self._unsynced >= self.SYNC_EVERY:
            self.sync()

    def sync(self) -> None:
        """Flush the ids written so far to the disk (`close` does it for the rest).

        `write` calls it every `SYNC_EVERY` bytes, so that the disk writes while the ids are being
        made, and `close` is left with little: `tokenize_files` on two threads spent about 8% of its
        time in one fsync at the end, with both encoding threads idle.
        """
        self._file.flush()
        if hasattr(os, "fdatasync"):  # the data, not the file's times: all a reader needs
            os.fdatasync(self._file.fileno())
        else:  # macOS, Windows
            os.fsync(self._file.fileno())
        self._unsynced = 0

    def move_tail(self, start: int, other: TokenWriter, block: int = 1 << 22) -> None:
        """Move the ids from position `start` on to the end of `other` (the same dtype), then drop them here.

        This is how `tokenize_files` splits off a validation file after streaming: the ids are
        copied from this writer's own temporary file, which no one else has open.
        """
        if other.dtype != self.dtype:
            raise ValueError(f"cannot move {self.dtype} ids into a {other.dtype} file")
        if not 0 <= start <= self.count:
            raise ValueError(f"start {start} out of range for {self.count} ids")
        self._file.flush()
        begin = len(self._header) + start * self.dtype.itemsize
        with open(self._tmp, "rb") as f:
            f.seek(begin)
            while data := f.read(block * self.dtype.itemsize):
                other.write(np.frombuffer(data, dtype=self.dtype))
        self._file.truncate(begin)  # our own temporary file: truncating it harms no reader
        self.count = start

    def close(self) -> None:
        """Finish the file (patch the .npy header with the count) and rename it over `path`."""
        if self._file.closed:
            return
        try:
            if self.format == "npy":
                header = _npy_header(self.dtype, self.count)
                if len(header) != len(self._header):  # NumPy reserves room for 21 digits; never expected
                    raise RuntimeError(f"the .npy header grew from {len(self._header)} to {len(header)} bytes")
                self._file.seek(0)
                self._file.write(header)
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self._tmp, self._target)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Drop the temporary file; `path` stays as it was."""
        if not self._file.closed:
            self._file.close()
        try:
            os.unlink(self._tmp)
        except FileNotFoundError:
            pass

    def __enter__(self) -> TokenWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:  # a writer dropped without close() leaves nothing behind
        if getattr(self, "_file", None) is not None and not self._file.closed:
            try:
                self.abort()
            except Exception:  # at interpreter exit, modules may already be gone
                pass


def write_tokens(path: str | os.PathLike, ids: Any, dtype: Any = None, format: Format | None = None) -> Path:
    """Write token ids to a token file, atomically; return the path.

    `format`: "npy", "bin" (raw ids, nanoGPT's ``train.bin``), or None: "bin" for a ``.bin`` name,
    else "npy". `dtype` defaults, for .npy, to uint16 when every id fits, else uint32 (uint64 past
    2**32: the header records it); for raw .bin, to uint16 (what its readers assume), so a larger id
    is an error rather than a file that reads back wrong.

    >>> import tempfile, os
    >>> path = write_tokens(os.path.join(tempfile.mkdtemp(), "t.npy"), [15496, 11, 995])
    >>> TokenFile(path)  # doctest: +ELLIPSIS
    TokenFile('...t.npy', 3 tokens of uint16, npy)
    """
    arr = as_token_array(ids)
    if dtype is None:
        raw = _format_of(Path(path), format) == "bin"
        dtype = np.uint16 if raw else compact_dtype(int(arr.max()) if arr.size else 0)
    with TokenWriter(path, dtype, format) as w:
        w.write(arr)
    return Path(path)


# npgpt's old format, read only: magic (8) | version u32 (4) | dtype str (12, NUL-padded) | count u64 (8)
OLD_MAGIC = b"NPGPTTOK"
OLD_HEADER = 32
NPY_MAGIC = b"\x93NUMPY"


class TokenFile:
    """Tokens on disk, read through ``np.memmap``: nothing is loaded until it is used.

    Opens, by their first bytes:

    - ``.npy`` files (a 1-D array of integers), as ``np.load(path, mmap_mode="r")`` would;
    - npgpt's old token files (a 32-byte ``NPGPTTOK`` header), for compatibility;
    - anything else as raw ids, such as nanoGPT's ``train.bin``: of `dtype`, uint16 by default
      for a name ending in ``.bin``; any other raw file needs its `dtype`.

    Only little-endian signed or unsigned integer dtypes are accepted. `dtype`, when given for a
    self-describing file, must match it. Windows and loaders work on it directly:
    ``GPTDatasetV1.from_token_ids(TokenFile(p), ...)``.

    >>> import tempfile, os
    >>> raw = os.path.join(tempfile.mkdtemp(), "train.bin")
    >>> np.arange(10, dtype=np.uint16).tofile(raw)         # a nanoGPT-style file
    >>> tf = TokenFile(raw)
    >>> len(tf), tf.format, npgpt.GPTDatasetV1.from_token_ids(tf, max_length=4, stride=4).inputs.tolist()
    (10, 'bin', [[0, 1, 2, 3], [4, 5, 6, 7]])
    """

    def __init__(self, path: str | os.PathLike, dtype: Any = None):
        self.path = Path(path)
        if self.path.is_dir():
            raise IsADirectoryError(f"{self.path} is a folder, not a token file")
        regular_file(self.path, "token file")
        where = f"{self.path}: "
        wanted = None if dtype is None else _int_dtype(dtype, where)
        size = self.path.stat().st_size
        with open(self.path, "rb") as f:
            head = f.read(OLD_HEADER)
            f.seek(0)
            if head.startswith(NPY_MAGIC):
                self.format = "npy"
                file_dtype, count, offset = self._npy_header(f, where)
            elif head[:8] == OLD_MAGIC:
                self.format = "npgpt"
                file_dtype, count, offset = self._old_header(head, where)
            else:
                self.format = "bin"
                file_dtype, count, offset = self._raw(wanted, size, where), None, 0
        if count is not None:
            if offset + count * file_dtype.itemsize != size:
                raise ValueError(f"{where}the header says {count} tokens of {file_dtype}, but the file has "
                                 f"{size - offset} bytes of tokens (truncated, or still being written?)")
            if wanted is not None and wanted != file_dtype:
                raise ValueError(f"{where}holds {file_dtype} tokens, not {wanted}")
        else:
            count = size // file_dtype.itemsize
        self.dtype = file_dtype
        self.tokens: np.ndarray
        if count:
            self.tokens = np.memmap(self.path, dtype=self.dtype, mode="r", offset=offset, shape=(count,))
        else:  # mmap cannot map zero bytes
            self.tokens = np.zeros(0, self.dtype)
            self.tokens.flags.writeable = False

    @staticmethod
    def _npy_header(f, where: str) -> tuple[np.dtype, int, int]:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f".npy version {version[0]}.{version[1]} (token files are 1.0 or 2.0)")
        except ValueError as e:
            raise ValueError(f"{where}not a valid .npy token file: {e}") from None
        except Exception as e:  # NumPy's parser of the header text lets other errors out (tokenize.TokenError)
            raise ValueError(f"{where}not a valid .npy token file: {type(e).__name__}: {e}") from None
        dtype = _int_dtype(dtype, where)
        if len(shape) != 1:
            raise ValueError(f"{where}a token file holds a 1-D array, this .npy holds shape {shape}")
        return dtype, shape[0], f.tell()

    @staticmethod
    def _old_header(head: bytes, where: str) -> tuple[np.dtype, int, int]:
        if len(head) < OLD_HEADER:
            raise ValueError(f"{where}an npgpt token file cut inside its header ({len(head)} bytes)")
        version = int.from_bytes(head[8:12], "little")
        if version != 1:
            raise ValueError(f"{where}npgpt token file version {version}; this npgpt reads version 1")
        try:
            name = head[12:24].rstrip(b"\0").decode("ascii")
        except UnicodeDecodeError:
            raise ValueError(f"{where}the header's dtype is not ASCII: {head[12:24]!r}") from None
        return _int_dtype(name, where), int.from_bytes(head[24:32], "little"), OLD_HEADER

    def _raw(self, dtype: np.dtype | None, size: int, where: str) -> np.dtype:
        if dtype is None:
            if self.path.suffix != ".bin":
                raise ValueError(
                    f"{self.path} is neither a .npy nor an npgpt token file; if it holds raw ids (as nanoGPT's "
                    "train.bin does), pass their dtype, e.g. TokenFile(path, dtype=np.uint16)"
                )
            dtype = np.dtype(np.uint16)  # nanoGPT's train.bin / val.bin
        if size % dtype.itemsize:
            raise ValueError(f"{where}{size} bytes is not a whole number of {dtype} tokens")
        return dtype

    def __len__(self) -> int:
        return len(self.tokens)

    def __reduce__(self) -> tuple:
        # Pickled as where it is, opened again on the other side (a DataLoader's workers, multiprocessing):
        # pickling the mapping would copy the whole file into the pickle.
        return TokenFile, (self.path.absolute(), self.dtype)  # (absolute: the other side may be elsewhere)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return np.asarray(self.tokens, dtype=dtype)

    def __repr__(self) -> str:
        return f"TokenFile({str(self.path)!r}, {len(self):,} tokens of {self.dtype}, {self.format})"


# --------------------------------------------------------------------------------------------
# tokenize_files


class FileDecodeError(UnicodeDecodeError):
    """A UnicodeDecodeError that also names the file (`path`), the bad byte's `offset` in it, and the
    decoder's own words (`problem`, e.g. "invalid start byte")."""

    path: Path
    offset: int
    problem: str

    def __str__(self) -> str:
        # Python's wording gives the position in the block being decoded, and the reason already
        # names the offset in the file: say only the latter.
        bad = bytes(self.object[self.start : self.end])
        what = f"byte 0x{bad[0]:02x}" if len(bad) == 1 else f"bytes {bad.hex(' ')}"
        return f"'utf-8' codec can't decode {what}: {self.reason}"

    def __reduce__(self) -> tuple:
        # What BaseException's would return; defined so that Dask, which sends a worker's exception through
        # tblib, rebuilds it by calling the class: tblib rebuilds a class with its own __init__ and a builtin
        # __reduce__ without calling __init__, and UnicodeDecodeError's bytes and reason were None.
        return type(self), self.args, self.__dict__


def _read_utf8(path: Path, block: int, progress) -> Iterator[str]:
    """The text of `path` in pieces, decoded from blocks of bytes exactly (no newline translation).

    A byte that is not UTF-8 raises UnicodeDecodeError whose reason names the file and the byte's
    offset in it, also given as its ``path`` and ``offset`` attributes (`FileDecodeError`; the
    decoder's own ``start`` counts from the current block).
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0  # bytes of the file fed to the decoder so far
    with open(path, "rb") as f:
        while True:
            data = f.read(block)
            held = len(decoder.getstate()[0])  # bytes of an incomplete character kept from the previous block
            try:
                text = decoder.decode(data, final=not data)
            except UnicodeDecodeError as e:
                raise _decode_error(path, e, e.object, 0, offset - held + e.start) from None
            offset += len(data)
            progress(len(data))
            if text:
                yield text
            if not data:
                return


def _decode_error(path: Path, e: UnicodeDecodeError, data: bytes, shift: int, offset: int) -> FileDecodeError:
    """The error `_read_utf8` and `_utf8_chunks` raise for the decoder's error `e`, its bytes at `shift`
    in `data`: Python's reason, the file, and the bad byte's `offset` in the file."""
    reason = e.reason
    err = FileDecodeError("utf-8", data, shift + e.start, shift + e.end, f"{reason} at byte {offset} of {path}")
    err.path, err.offset, err.problem = path, offset, reason
    return err


def _checked_utf8(path: Path, data: bytes, pos: int, final: bool) -> int:
    """How many bytes of `data` (read at offset `pos` of `path`) are whole, valid UTF-8 characters.

    The numba check (`npgpt.bpe.utf8_kernels.valid_prefix`, no GIL) finds where the valid text stops;
    Python's decoder then says what is wrong there, so the error is word for word `_read_utf8`'s.
    Past that point there may only be a character cut short by the end of the block (when it is not
    the end of the file); anything else raises `FileDecodeError`.
    """
    from npgpt.bpe import utf8_kernels

    ok = utf8_kernels.valid_prefix(np.frombuffer(data, np.uint8), 0, len(data))
    if ok == len(data):
        return ok
    whole = final or len(data) - ok >= 4  # the bytes at `ok` are all there is to that character
    try:
        codecs.utf_8_decode(data[ok : ok + 4], "strict", whole)
    except UnicodeDecodeError as e:
        raise _decode_error(path, e, data, ok, pos + ok + e.start) from None
    if whole:  # never: the two checks disagree; refuse rather than guess
        raise RuntimeError(f"{path}: the UTF-8 checks disagree about byte {pos + ok}")
    return ok


def _utf8_chunks(path: Path, block: int, progress) -> Iterator[tuple[bytes, int]]:
    """The bytes of `path` as chunks that encode apart, checked to be UTF-8: pairs ``(data, end)``, the
    chunk being ``data[:end]``, with no str made on the way.

    Each read takes `block` bytes from where the last chunk ended, and the chunk ends at the last
    place in them where encoding can be cut (`npgpt.bpe.pretokenize.safe_cut_utf8`); the few bytes
    after it are read again with the next block (seeking back costs less than copying a carry-over).
    When a block has no such place (one piece longer than the block), it is read again twice as long.
    A byte that is not UTF-8 raises `FileDecodeError`, as `_read_utf8` does.

    The check is done here, on the reading thread, while the block is in this core's cache: 3.4 ms
    for 30 MB. Done instead by each worker before encoding its chunk (and here only on the tail where
    the cut is sought), it took the workers 5-8 ms in all, and the run was no faster on 2 cores.
    """
    from npgpt.bpe.pretokenize import safe_cut_utf8

    pos, size = 0, block
    with open(path, "rb") as f:
        while True:
            f.seek(pos)
            data = f.read(size)
            final = len(data) < size
            ok = _checked_utf8(path, data, pos, final)
            cut = ok if final else safe_cut_utf8(data, ok, 0, ok)
            if cut:
                yield data, cut
                progress(cut)
                pos, size = pos + cut, block
            elif final:
                return
            else:
                size *= 2


def regular_file(path: str | os.PathLike, what: str = "file", more: int = 0) -> Path:
    """`path`, as a Path, when it is a regular file (or a link to one): the check `tokenize_files`,
    `npgpt.train_bpe`, `TokenFile`, the CLI and `npgpt.distributed` make of the files they read. Else FileNotFoundError
    ("no such file: ...") or ValueError ("not a regular file: ... (a folder, device or pipe)"); `what`
    names the kind of file, `more` how many others are wrong too."""
    p = Path(path)
    if p.is_file():
        return p
    also = f" (and {more} more)" if more else ""
    if p.exists():
        raise ValueError(f"not a regular {what}: {p} (a folder, device or pipe){also}")
    raise FileNotFoundError(f"no such {what}: {p}{also}")


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)  # hard links
    except OSError:
        return False


def tokenize_files(paths: str | os.PathLike | Iterable[str | os.PathLike], out: str | os.PathLike, *,
                   tokenizer: Any = None, eot: bool = False, num_threads: int | None = None,
                   progress: bool | None = None, chunk_chars: int = 1 << 20, format: Format | None = None,
                   val_fraction: float | None = None) -> TokenFile | tuple[TokenFile, TokenFile]:
    """Encode text files into one token file (or a train/val pair): streaming, in parallel, in bounded memory.

    Each file is read in blocks of `chunk_chars` bytes, taken exactly (a file's text is its bytes as
    UTF-8: ``\\r\\n`` stays ``\\r\\n``), cut where encoding can be split, and the chunks are encoded on
    `num_threads` threads (default: all cores). GPT-2's `npgpt.Encoding` works on the bytes themselves
    (`npgpt.bpe.pretokenize.safe_cut_utf8`), other tokenizers on the decoded text (their `chunk_text`;
    see `_encode_files`). Memory holds about ``3 * num_threads`` chunks whatever the corpus size.
    Text that spells ``<|endoftext|>`` is encoded as ordinary text; with `eot`, the real
    ``<|endoftext|>`` token is written after each file, marking document boundaries. A tqdm bar
    shows progress on a terminal (`progress` None), always (True) or never (False): `progress_bar`.

    Parameters
    ----------
    paths : files of UTF-8 text (or one file). A byte that is not UTF-8 raises UnicodeDecodeError naming the file
        and the byte offset.
    out : the token file to write (atomically: see the module docstring). With `val_fraction`, a
        folder (created if its parent exists) that receives ``train.npy`` and ``val.npy`` (or ``.bin``).
        It is checked before any work; an output that is also an input is refused.
    tokenizer : an `npgpt.Encoding`, or an encoding name for `npgpt.get_encoding` (default: ``"gpt2"``).
    format : "npy", "bin" (raw uint16, nanoGPT's format: needs a vocabulary of at most 65,536 ids),
        or None: "bin" if `out` ends in ``.bin``, else "npy".
    val_fraction : float in (0, 1), optional
        Split as nanoGPT's ``shakespeare/prepare.py`` does (``data[:int(n*0.9)]``), but on tokens:
        of the ``n`` tokens of all files in order, the first ``int(n * (1 - val_fraction))`` go to
        ``train``, the rest to ``val``. Every token lands in exactly one file; the document that
        straddles the cut is split.

    Returns the `TokenFile` written, or ``(train, val)`` with `val_fraction`.

    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> for name, text in (("a.txt", "hello world"), ("b.txt", "bye")):
    ...     with open(os.path.join(d, name), "w") as f:
    ...         _ = f.write(text)
    >>> files = [os.path.join(d, "a.txt"), os.path.join(d, "b.txt")]
    >>> tokenize_files(files, os.path.join(d, "t.npy"), eot=True, progress=False).tokens.tolist()
    [31373, 995, 50256, 16390, 50256]
    >>> train, val = tokenize_files(files, os.path.join(d, "split"), eot=True, progress=False, val_fraction=0.4)
    >>> train.tokens.tolist(), val.tokens.tolist(), train.path.name
    ([31373, 995, 50256], [16390, 50256], 'train.npy')
    """
    if num_threads is not None and (isinstance(num_threads, bool) or not isinstance(num_threads, int)
                                    or num_threads < 1):
        raise ValueError(f"num_threads must be an int >= 1 (or None for all cores), got {num_threads!r}")
    if isinstance(chunk_chars, bool) or not isinstance(chunk_chars, int) or chunk_chars < 1:
        raise ValueError(f"chunk_chars must be an int >= 1, got {chunk_chars!r}")
    if val_fraction is not None and not (isinstance(val_fraction, (int, float)) and 0 < val_fraction < 1):
        raise ValueError(f"val_fraction must be a number strictly between 0 and 1, got {val_fraction!r}")
    files = [regular_file(p) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]  # one, or many
    if not files:
        raise ValueError("no input files")
    says_folder = isinstance(out, str) and out.endswith(("/", os.sep))  # (Path drops a trailing slash)
    out = Path(out)
    if val_fraction is None:
        fmt = _format_of(out, format)
        outputs = [out]
    else:
        fmt = _format_of(Path("x"), format)  # (the folder's name says nothing of the format)
        if out.exists() and not out.is_dir():
            raise NotADirectoryError(f"with a validation split, out names a folder; {out} is a file")
        if not out.exists() and not says_folder and out.suffix.lower() in (".npy", ".bin", ".tok"):  # a slip
            raise ValueError(f"with a validation split, out names a folder (for train.{fmt} and val.{fmt}); "
                             f"{out} looks like a file name")
        outputs = [out / f"train.{fmt}", out / f"val.{fmt}"]
    for o in outputs:
        for p in files:
            if _same_file(o, p):
                raise ValueError(f"the output {o} is also an input ({p}); an input is never overwritten")
    tok = _tokenizer(tokenizer)
    dtype = tok.token_dtype
    if fmt == "bin":
        if tok.n_vocab > 2**16:
            raise ValueError(f"format 'bin' holds uint16 ids (nanoGPT's format); {tok.name} has {tok.n_vocab:,} "
                             "ids: use format 'npy'")
        dtype = np.dtype(np.uint16)
    eot_id = tok.eot_token if eot else None  # (KeyError for an encoding without one: before any folder is made)
    made_folder = val_fraction is not None and not out.is_dir()
    if made_folder:
        _check_output(out)
        out.mkdir()
    threads = num_threads or os.cpu_count() or 1
    total = sum(p.stat().st_size for p in files)
    writers: list[TokenWriter] = []
    try:
        for o in outputs:  # opened now: a bad `out` fails before the work
            writers.append(TokenWriter(o, dtype, fmt))
        writer = writers[0]
        with progress_bar(progress, total=total, unit="B", unit_scale=True, desc="tokenize") as update:
            _encode_files(files, tok, writer, threads, chunk_chars, eot_id, update)
        if val_fraction is not None:
            split = int(writer.count * (1 - val_fraction))
            if split in (0, writer.count):  # nanoGPT's loader fails on an empty file, much later: say so now
                warnings.warn(f"val_fraction={val_fraction} of {writer.count:,} tokens leaves "
                              f"{'train' if split == 0 else 'val'} with no tokens", stacklevel=2)
            writer.move_tail(split, writers[1])
    except BaseException:
        for w in writers:
            w.abort()
        if made_folder:  # a failed run leaves nothing behind, not even the folder it made
            with contextlib.suppress(OSError):  # (not empty after all: leave it, and raise the real error)
                out.rmdir()
        raise
    for w in writers:
        w.close()
    written = [TokenFile(o, dtype=dtype) for o in outputs]
    return written[0] if val_fraction is None else (written[0], written[1])


def _tokenizer(tokenizer: Any) -> Any:
    """`tokenize_files`'s tokenizer: an `npgpt.Encoding`, or one by name (None: GPT-2's). Anything else must
    have what `_pipeline` and `tokenize_files` use of an encoding (and `eot_token` with ``eot=True``), or it
    is refused before any work."""
    from npgpt.bpe import get_encoding

    if tokenizer is None or isinstance(tokenizer, str):
        return get_encoding("gpt2" if tokenizer is None else tokenizer)
    missing = [a for a in ("token_dtype", "n_vocab", "name", "chunk_text", "encode_to_numpy")
               if not hasattr(tokenizer, a)]
    if missing:
        raise TypeError(f"tokenizer must be an npgpt.Encoding or an encoding name such as 'gpt2', got "
                        f"{type(tokenizer).__module__}.{type(tokenizer).__qualname__} (it has no {', '.join(missing)})")
    return tokenizer


@contextlib.contextmanager
def progress_bar(progress: bool | None, **tqdm_args: Any) -> Iterator[Callable[[int], Any]]:
    """The ``update`` of a tqdm bar on stderr, made with `tqdm_args` (``total``, ``desc``, ...), as tqdm's
    ``disable`` means it: `progress` None shows it on a terminal only, True always, False never.

    What `tokenize_files` and `npgpt.train_bpe` show. Without a bar, ``update`` does nothing, and tqdm
    is not even imported (that takes 7 ms, as long as encoding 1 MB).
    """
    if not (sys.stderr.isatty() if progress is None else progress):
        yield lambda n: None
        return
    from tqdm import tqdm

    with tqdm(file=sys.stderr, **tqdm_args) as bar:
        yield bar.update


def _encode_files(files: list[Path], tok: Any, writer: TokenWriter, threads: int, chunk_chars: int,
                  eot_id: int | None, progress) -> None:
    """Encode `files` into `writer`, in order: a pipeline on `threads` threads.

    This thread reads and cuts the files while the pool encodes the chunks (the kernel releases the
    GIL); results are written in order as the oldest one is done, with at most ``3 * threads`` chunks
    in flight, so memory stays bounded. With `eot_id`, that id follows each file. (With ``2 * threads``,
    the encoding threads ran out of chunks while this one waited on the disk, `TokenWriter.sync`, or
    for a core: 13 ms idle of 100 on a 30 MB file on 2 cores, against 5 ms with 3.)

    An `npgpt.Encoding` with GPT-2's pattern gets the files' bytes: checked and cut as bytes
    (`_utf8_chunks`), each chunk one kernel call over its bytes. No str is ever made, which matters
    on two threads: decoding a block to str and encoding each chunk back to bytes held the GIL for
    as long as the other thread took to encode, so the two threads mostly took turns. Other tokenizers
    (custom patterns, look-alikes) get the text: decoded (`_read_utf8`), cut with their `chunk_text`,
    encoded with their `encode_to_numpy`.
    """
    chunks_of, encode = _pipeline(tok, chunk_chars, progress)
    with ThreadPoolExecutor(threads) as pool:
        pending: deque = deque()  # futures of id arrays, in text order; None marks a document end

        def write_oldest() -> None:
            done = pending.popleft()
            writer.write(done.result() if done is not None else np.array([eot_id]))

        for path in files:
            for chunk in chunks_of(path):
                pending.append(pool.submit(encode, chunk))
                while len(pending) > 3 * threads:
                    write_oldest()
            if eot_id is not None:
                pending.append(None)
        while pending:
            write_oldest()


def _pipeline(tok: Any, chunk_chars: int, progress) -> tuple[Any, Any]:
    """``(chunks_of, encode)`` for `_encode_files`: the chunks of a file, and how one is encoded."""
    from npgpt.bpe.encoding import Encoding
    from npgpt.bpe.pretokenize import GPT2_PATTERN

    if type(tok) is Encoding and tok.pattern == GPT2_PATTERN:  # subclasses may override encode_to_numpy
        def encode_bytes(chunk: tuple[bytes, int]) -> np.ndarray:
            data, end = chunk  # checked UTF-8, ordinary text: one row for the kernel, directly
            return tok._encode_rows(data, np.array([[0, end, -1]], np.int64))

        return lambda path: _utf8_chunks(path, chunk_chars, progress), encode_bytes

    def text_chunks(path: Path) -> Iterator[str]:
        return tok.chunk_text(_read_utf8(path, chunk_chars, progress), disallowed_special=(), chunk_chars=chunk_chars)

    return text_chunks, lambda chunk: tok.encode_to_numpy(chunk, disallowed_special=())
