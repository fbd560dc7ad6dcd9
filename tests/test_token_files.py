"""Token files (npgpt.token_files): .npy and nanoGPT's .bin, the old header, atomic writes, tokenize_files."""

import errno
import os
import re
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import npgpt
from npgpt.cli import default_text, main
from npgpt.data import GPTDatasetV1
from npgpt.token_files import TokenFile, TokenWriter, as_token_array, tokenize_files, write_tokens

ROOT = Path(__file__).resolve().parent.parent


def old_format(path: Path, ids, dtype_str: str = "<u2", count=None, version=1) -> Path:
    """A file in npgpt's old format (what `write_tokens` wrote before .npy): 32-byte header + raw ids."""
    arr = np.asarray(ids, dtype=np.dtype(dtype_str) if dtype_str[1:2] in "ui" else np.uint16)
    header = (b"NPGPTTOK" + version.to_bytes(4, "little") + dtype_str.encode().ljust(12, b"\0")
              + (len(arr) if count is None else count).to_bytes(8, "little"))
    path.write_bytes(header + arr.tobytes())
    return path


def enc_decode(tf: TokenFile) -> str:
    return npgpt.get_encoding("gpt2").decode(tf.tokens.tolist())


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# ---------------------------------------------------------------------------------------------------
# formats


def test_npy_roundtrip_is_numpys_own(tmp_path):
    ids = np.random.default_rng(0).integers(0, 50257, 10_000).astype(np.uint16)
    path = write_tokens(tmp_path / "t.npy", ids)
    loaded = np.load(path, mmap_mode="r")  # a plain NumPy reader
    assert isinstance(loaded, np.memmap) and loaded.dtype == np.uint16 and np.array_equal(loaded, ids)
    assert np.array_equal(np.load(path), ids)
    tf = TokenFile(path)
    assert tf.format == "npy" and tf.dtype == np.uint16 and len(tf) == 10_000 and isinstance(tf.tokens, np.memmap)
    assert np.array_equal(np.asarray(tf), ids) and not tf.tokens.flags.writeable
    ds = GPTDatasetV1.from_token_ids(tf, max_length=64, stride=32)
    assert np.shares_memory(ds.inputs, tf.tokens)  # windows straight on the memmap
    assert ds.inputs[3].tolist() == ids[96:160].tolist()
    assert TokenFile(write_tokens(tmp_path / "big.npy", [1, 70000])).dtype == np.uint32


@pytest.mark.parametrize("fmt", ["npy", "bin"])
@given(ids=st.lists(st.integers(0, 2**16 - 1), max_size=200), parts=st.integers(1, 5))
def test_streamed_writes_roundtrip(tmp_path_factory, fmt, ids, parts):
    path = tmp_path_factory.mktemp("tw") / f"t.{fmt}"
    with TokenWriter(path, np.uint16) as w:
        for chunk in np.array_split(np.array(ids, dtype=np.uint16), parts):
            w.write(chunk)
    assert w.format == fmt
    assert TokenFile(path).tokens.tolist() == ids
    reread = np.load(path, mmap_mode="r") if fmt == "npy" else np.memmap(path, dtype=np.uint16, mode="r") if ids \
        else np.fromfile(path, dtype=np.uint16)
    assert reread.tolist() == ids
    assert leftovers(path.parent) == []


@pytest.mark.parametrize("dtype", ["<u2", "<u4", "<u8", "<i4", "<i8", "|u1", "|i1"])
def test_npy_header_patch_never_moves_the_data(tmp_path, dtype):
    from npgpt.token_files import _npy_header

    sizes = {len(_npy_header(np.dtype(dtype), n)) for n in (0, 9, 10**9, 2**63, 2**64 - 1)}
    assert sizes == {128}  # NumPy pads for a 21-digit length: the count written at the end fits in place
    info = np.iinfo(dtype)
    ids = np.array([0, info.max, max(info.min, 0), 7], dtype=dtype)
    with TokenWriter(tmp_path / "t.npy", dtype) as w:
        w.write(ids[:2])
        w.write(ids[2:])
    assert np.load(tmp_path / "t.npy", mmap_mode="r").tolist() == ids.tolist()
    assert TokenFile(tmp_path / "t.npy").tokens.tolist() == ids.tolist()


def test_nanogpt_reads_bin_unchanged(tmp_path, enc):
    text = default_text()[1][:50_000]
    (tmp_path / "input.txt").write_text(text, encoding="utf-8")
    tf = tokenize_files([tmp_path / "input.txt"], tmp_path / "train.bin", progress=False)
    assert tf.format == "bin"
    data = np.memmap(tmp_path / "train.bin", dtype=np.uint16, mode="r")  # nanoGPT's train.py, verbatim
    assert data.tolist() == enc.encode_ordinary(text)
    assert (tmp_path / "train.bin").stat().st_size == 2 * len(data)  # no header
    tokenize_files([tmp_path / "input.txt"], tmp_path / "tokens", format="bin", progress=False)
    assert np.memmap(tmp_path / "tokens", dtype=np.uint16, mode="r").tolist() == data.tolist()


def test_old_header_format_still_reads(tmp_path):
    path = old_format(tmp_path / "t.npgpt", [15496, 11, 995])
    tf = TokenFile(path)
    assert tf.format == "npgpt" and tf.dtype == np.uint16 and tf.tokens.tolist() == [15496, 11, 995]
    assert TokenFile(old_format(tmp_path / "u4.npgpt", [1, 70000], "<u4")).tokens.tolist() == [1, 70000]
    with pytest.raises(ValueError, match="holds uint16"):
        TokenFile(path, dtype=np.uint32)
    path.write_bytes(path.read_bytes()[:-2])  # truncated
    with pytest.raises(ValueError, match="truncated"):
        TokenFile(path)
    with pytest.raises(ValueError, match="version 2"):
        TokenFile(old_format(tmp_path / "v2.npgpt", [1], version=2))
    with pytest.raises(ValueError, match="cut inside its header"):
        (tmp_path / "short.npgpt").write_bytes(b"NPGPTTOK\1\0")
        TokenFile(tmp_path / "short.npgpt")


def test_raw_files(tmp_path):
    ids = np.arange(1000, dtype=np.uint16)
    ids.tofile(tmp_path / "train.bin")
    tf = TokenFile(tmp_path / "train.bin")  # nanoGPT's name: uint16 unless told otherwise
    assert tf.dtype == np.uint16 and tf.tokens[-1] == 999 and tf.format == "bin"
    assert TokenFile(tmp_path / "train.bin", dtype=np.uint32).tokens[0] == 1 << 16  # told otherwise
    ids.tofile(tmp_path / "tokens.raw")
    with pytest.raises(ValueError, match="pass their dtype"):
        TokenFile(tmp_path / "tokens.raw")
    assert TokenFile(tmp_path / "tokens.raw", dtype="<u2").tokens.tolist() == ids.tolist()
    (tmp_path / "odd.bin").write_bytes(b"abc")
    with pytest.raises(ValueError, match="whole number"):
        TokenFile(tmp_path / "odd.bin")
    (tmp_path / "empty.bin").write_bytes(b"")
    assert len(TokenFile(tmp_path / "empty.bin")) == 0
    assert len(TokenFile(write_tokens(tmp_path / "empty.npy", []))) == 0 == len(np.load(tmp_path / "empty.npy"))


@pytest.mark.parametrize("dtype", [">u2", "<f2", "|b1", "V2", "<M8", "<c8", ">i4", "O"])
def test_headers_claiming_non_integer_or_big_endian_are_refused(tmp_path, dtype):
    path = tmp_path / "t.npy"
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": np.dtype(dtype).descr if dtype == "V2" else
                                                 np.dtype(dtype).str, "fortran_order": False, "shape": (4,)})
        f.write(b"\0" * 4 * np.dtype(dtype).itemsize)
    with pytest.raises(ValueError, match=r"little-endian signed or unsigned integers|not a valid \.npy"):
        TokenFile(path)
    if dtype != "V2" and dtype != "O":
        with pytest.raises(ValueError, match="little-endian signed or unsigned integers"):
            TokenFile(old_format(tmp_path / "t.npgpt", [0, 0], dtype))
    with pytest.raises(ValueError, match="little-endian signed or unsigned integers"):
        TokenFile(tmp_path / "t.npy", dtype=dtype)  # nor as the dtype of a raw file
    with pytest.raises(ValueError, match="little-endian signed or unsigned integers"):
        TokenWriter(tmp_path / "w.npy", dtype)


def test_npy_shape_and_size_are_checked(tmp_path):
    np.save(tmp_path / "2d.npy", np.zeros((2, 3), np.uint16))
    with pytest.raises(ValueError, match=r"1-D array, this .npy holds shape \(2, 3\)"):
        TokenFile(tmp_path / "2d.npy")
    path = write_tokens(tmp_path / "t.npy", [1, 2, 3])
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ValueError, match="says 3 tokens of uint16, but the file has 5 bytes"):
        TokenFile(path)
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY\x01\x00\x10\x00{'descr': 3}   \n")
    with pytest.raises(ValueError, match=r"not a valid \.npy token file"):
        TokenFile(tmp_path / "bad.npy")
    with pytest.raises(ValueError, match="holds uint16 tokens, not uint32"):
        TokenFile(write_tokens(tmp_path / "u.npy", [1]), dtype=np.uint32)
    with pytest.raises(FileNotFoundError):
        TokenFile(tmp_path / "missing")
    with pytest.raises(IsADirectoryError):
        TokenFile(tmp_path)


def test_ids_are_range_checked_before_any_cast(tmp_path):
    path = write_tokens(tmp_path / "big.npy", [2**32 + 7, 5])
    assert np.load(path).tolist() == [2**32 + 7, 5] and np.load(path).dtype == np.uint64
    with pytest.raises(ValueError, match="in \\[0, 2\\*\\*64\\), got 18446744073709551623"):
        write_tokens(tmp_path / "bigger.npy", [2**64 + 7, 5])
    with pytest.raises(ValueError, match="token id 70000 does not fit the file's dtype uint16"):
        write_tokens(tmp_path / "u16.npy", [1, 70000], dtype=np.uint16)
    with pytest.raises(ValueError, match="token id 70000 does not fit the file's dtype uint16"):
        write_tokens(tmp_path / "u16.bin", [1, 70000])  # raw files are read as uint16: never write them wider
    assert not (tmp_path / "u16.bin").exists()
    assert TokenFile(write_tokens(tmp_path / "u32.bin", [1, 70000], dtype=np.uint32), np.uint32).tokens[1] == 70000
    with pytest.raises(ValueError, match="token id -1 does not fit"):
        write_tokens(tmp_path / "neg.npy", np.array([1, -1]), dtype=np.uint16)
    with TokenWriter(tmp_path / "w.npy", np.uint16) as w, pytest.raises(ValueError, match="70000"):
        w.write([70000])
    assert not (tmp_path / "u16.npy").exists() and not (tmp_path / "neg.npy").exists()
    assert as_token_array(np.array([3, 4], dtype=np.int8)).dtype == np.int8  # arrays as they are


def test_an_empty_array_of_any_dtype_is_no_ids(tmp_path):
    # np.array([]) is float64: write_tokens refused it ("token ids must be integers, got dtype float64"), though an
    # empty array has no value to be wrong (and the empty list, which NumPy also makes float64, was accepted)
    for empty in (np.array([]), np.array([], dtype=bool), np.array([], dtype=object), np.array([], dtype=np.float32)):
        assert as_token_array(empty).dtype == np.uint16 and as_token_array(empty).shape == (0,)
        assert TokenFile(write_tokens(tmp_path / "e.npy", empty)).tokens.dtype == np.uint16
        assert np.load(write_tokens(tmp_path / "e32.npy", empty, dtype=np.uint32)).dtype == np.uint32
        assert write_tokens(tmp_path / "e.bin", empty).read_bytes() == b""
    for bad in (np.array([1.0]), np.array([0.0, 2.0], dtype=np.float32), np.zeros((0, 3))):
        with pytest.raises((TypeError, ValueError), match=r"integers, got dtype|1-D"):
            write_tokens(tmp_path / "bad.npy", bad)
    assert not (tmp_path / "bad.npy").exists()


# ---------------------------------------------------------------------------------------------------
# atomic writes


def test_a_failed_write_leaves_the_earlier_file(tmp_path):
    path = write_tokens(tmp_path / "t.npy", [1, 2, 3])
    for exc in (ValueError, KeyboardInterrupt):
        with pytest.raises(exc), TokenWriter(path, np.uint16) as w:
            w.write([9, 9])
            raise exc("stopped")
        assert np.load(path).tolist() == [1, 2, 3] and leftovers(tmp_path) == []
    w = TokenWriter(path, np.uint16)
    w.write([7])
    del w  # dropped without close: nothing written, nothing left
    assert np.load(path).tolist() == [1, 2, 3] and leftovers(tmp_path) == []


def test_rewriting_a_mapped_file_does_not_kill_its_reader(tmp_path):
    # Before: the writer truncated the file in place and the reader died with SIGBUS. Run in a child so a
    # signal would fail this test instead of killing pytest.
    code = textwrap.dedent(f"""
        import numpy as np, npgpt
        path = {str(tmp_path / "t.npy")!r}
        npgpt.write_tokens(path, np.arange(2_000_000) % 50000)
        old = npgpt.TokenFile(path)
        npgpt.write_tokens(path, [1, 2, 3])
        assert int(old.tokens[-1]) == (2_000_000 - 1) % 50000 and int(old.tokens.astype(np.int64).sum()) > 0
        assert npgpt.TokenFile(path).tokens.tolist() == [1, 2, 3]
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_tokenize_failure_keeps_the_earlier_file(tmp_path):
    ok, bad = tmp_path / "ok.txt", tmp_path / "latin1.txt"
    ok.write_text("fine text " * 100, encoding="utf-8")
    bad.write_bytes(b"abc " * 300_000 + "café au lait".encode("latin-1"))  # é is one byte, 0xe9, in Latin-1
    out = write_tokens(tmp_path / "t.npy", [1, 2, 3])
    with pytest.raises(UnicodeDecodeError, match=f"at byte {4 * 300_000 + 3} of {bad}") as info:
        tokenize_files([ok, bad], out, progress=False, chunk_chars=1000)
    assert info.value.reason.startswith("invalid continuation byte") and info.value.offset == 1_200_003
    assert np.load(out).tolist() == [1, 2, 3] and leftovers(tmp_path) == []
    # the lead byte of a 2-byte character ends one block, a byte that cannot continue it starts the next
    bad.write_bytes(b"a" * 999 + b"\xc3X and more")
    with pytest.raises(UnicodeDecodeError, match=f"at byte 999 of {bad}"):
        tokenize_files([ok, bad], out, progress=False, chunk_chars=1000)
    assert "position" not in str(info.value)  # only the offset in the file, not the one in the block
    bad.write_bytes(b"a" * 999 + "é and more".encode())  # the same split, of a valid character
    assert enc_decode(tokenize_files([bad], out, progress=False, chunk_chars=1000)).endswith("aé and more")


# ---------------------------------------------------------------------------------------------------
# tokenize_files


def test_tokenize_files_matches_encode(tmp_path, enc):
    a, b, c = tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "c.txt"
    text = default_text()[1][:200_000]
    a.write_text(text, encoding="utf-8")
    b.write_text("Привет, мир! <|endoftext|> 你好" * 500, encoding="utf-8")
    c.write_bytes(b"windows\r\nline ends\r\n stay \xf0\x9f\x98\x80")  # exact bytes: no newline translation
    tf = tokenize_files([a, b, c], tmp_path / "t.npy", eot=True, num_threads=2, chunk_chars=1000, progress=False)
    expected = [*enc.encode(text), 50256, *enc.encode(b.read_text("utf-8"), disallowed_special=()), 50256,
                *enc.encode(c.read_bytes().decode()), 50256]
    assert tf.tokens.tolist() == expected
    assert enc.decode(tf.tokens[-8:-1].tolist()).endswith("line ends\r\n stay \U0001f600")
    one = tokenize_files([c], tmp_path / "one.npy", num_threads=1, chunk_chars=3, progress=False)
    assert one.tokens.tolist() == enc.encode(c.read_bytes().decode())
    assert tokenize_files(str(c), tmp_path / "two.npy", progress=False).tokens.tolist() == one.tokens.tolist()


@given(st.lists(st.sampled_from(["a", "Zz", " ", "  ", "\n", "\r\n", "'s", "'", "é", "字", "，", "😀", "Привет", "7",
                                 "!", "\u3000", "\x85"]), max_size=200).map("".join),
       st.integers(1, 40), st.integers(1, 3))
def test_tokenize_bytes_pipeline_equals_encode(tmp_path_factory, enc, text, chunk_chars, threads):
    # blocks of a few bytes: cuts everywhere, characters split across blocks, blocks re-read twice as long
    d = tmp_path_factory.mktemp("bytes")
    (d / "a.txt").write_bytes(text.encode())
    tf = tokenize_files([d / "a.txt"], d / "t.npy", num_threads=threads, chunk_chars=chunk_chars, progress=False)
    assert tf.tokens.tolist() == enc.encode(text, disallowed_special=())


def test_tokenize_reads_bytes_not_str(tmp_path, enc, monkeypatch):
    # GPT-2's Encoding gets the file's bytes (no decode); other tokenizers still get str, with the same ids
    a = tmp_path / "a.txt"
    a.write_text(default_text()[1][:50_000] + " Привет, мир! 你好 <|endoftext|>", encoding="utf-8")
    expected = enc.encode(a.read_text(encoding="utf-8"), disallowed_special=())

    def no_str(*args, **kwargs):
        raise AssertionError("decoded to str")

    class LookAlike:
        def __getattr__(self, name):
            return getattr(enc, name)

    with monkeypatch.context() as m:
        m.setattr("npgpt.token_files._read_utf8", no_str)
        assert tokenize_files([a], tmp_path / "t.npy", chunk_chars=1000, progress=False).tokens.tolist() == expected
    assert tokenize_files([a], tmp_path / "t.npy", tokenizer=LookAlike(), chunk_chars=1000,
                          progress=False).tokens.tolist() == expected


@pytest.mark.parametrize("chunk_chars", [1, 7, 1000])
def test_tokenize_decode_errors_name_the_byte(tmp_path, chunk_chars):
    bad = tmp_path / "bad.txt"
    out = tmp_path / "t.npy"
    for data, at, reason in ((b"ok \xff", 3, "invalid start byte"), (b"ok \xe2\x82", 3, "unexpected end of data"),
                             ("é".encode() * 50 + b"\xed\xa0\x80", 100, "invalid continuation byte"),
                             (b"a" * 20 + b"\xf0\x9f\x98 x", 20, "invalid continuation byte"),
                             (b"\xc0\xaf", 0, "invalid start byte")):
        bad.write_bytes(data)
        with pytest.raises(UnicodeDecodeError, match=f"{reason} at byte {at} of {bad}") as info:
            tokenize_files([bad], out, progress=False, chunk_chars=chunk_chars)
        assert (info.value.offset, info.value.problem, info.value.path) == (at, reason, bad)
        with pytest.raises(UnicodeDecodeError) as decoded:
            data.decode("utf-8")
        assert decoded.value.reason == reason  # Python's own words
    assert not out.exists() and leftovers(tmp_path) == []



def test_tokenize_names_the_first_bad_byte_wherever_it_sits(tmp_path):
    # The error names the first bad byte of the file, word for word as Python's decoder, wherever it
    # sits: in the middle of a later chunk, right at a cut (either side), at the end; and with a second
    # bad byte later, in a block read while the chunks before it are still being encoded.
    from npgpt.token_files import _utf8_chunks

    block = 1 << 16
    good = ("Привет, мир! 你好，世界。 plain words, and more " * 8000)[:210_000].encode()
    assert 4 * block < len(good) < 5 * block
    src = tmp_path / "good.txt"
    src.write_bytes(good)
    cuts = np.cumsum([end for _, end in _utf8_chunks(src, block, lambda n: None)]).tolist()
    assert len(cuts) >= 5 and cuts[-1] == len(good)
    places = [block // 3, cuts[1] + block // 3, cuts[2] + block // 2, len(good) - 2]
    places += [c + d for c in cuts[:3] for d in (-2, -1, 0, 1)]
    bad, out = tmp_path / "bad.txt", tmp_path / "t.npy"
    for at in places:
        for second in (None, cuts[3] - 100):
            for wrong in (b"\xff", b"\xc0\xaf", b"\xe4\xb8 "):  # (always wrong, wherever they land)
                data = bytearray(good)
                data[at : at + len(wrong)] = wrong
                if second is not None and second > at + 4:
                    data[second] = 0xC0
                bad.write_bytes(data)
                with pytest.raises(UnicodeDecodeError) as expected:
                    bytes(data).decode("utf-8")
                e = expected.value
                with pytest.raises(UnicodeDecodeError, match=f"{e.reason} at byte {e.start} of {bad}") as info:
                    tokenize_files([src, bad], out, progress=False, chunk_chars=block, num_threads=2)
                assert (info.value.offset, info.value.problem) == (e.start, e.reason)
                assert str(info.value).startswith(str(e).split(" in position")[0])
    assert not out.exists() and leftovers(tmp_path) == []

def test_an_interrupted_bytes_tokenize_leaves_the_earlier_file(tmp_path, monkeypatch):
    calls = []

    def interrupted(self, buf, rows):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return encode_rows(self, buf, rows)

    encode_rows = npgpt.Encoding._encode_rows
    monkeypatch.setattr(npgpt.Encoding, "_encode_rows", interrupted)
    a = tmp_path / "a.txt"
    a.write_text(default_text()[1][:100_000], encoding="utf-8")
    out = write_tokens(tmp_path / "t.npy", [1, 2, 3])
    with pytest.raises(KeyboardInterrupt):
        tokenize_files([a], out, num_threads=2, chunk_chars=1000, progress=False)
    assert np.load(out).tolist() == [1, 2, 3] and leftovers(tmp_path) == []


def test_an_interrupted_tokenize_leaves_the_earlier_file(tmp_path, enc):
    class Interrupted:  # GPT-2, until Ctrl-C arrives while the second chunk is encoded
        def __init__(self):
            self.calls = 0

        def __getattr__(self, name):
            return getattr(enc, name)

        def encode_to_numpy(self, *args, **kwargs):
            self.calls += 1
            if self.calls == 2:
                raise KeyboardInterrupt
            return enc.encode_to_numpy(*args, **kwargs)

    a = tmp_path / "a.txt"
    a.write_text(default_text()[1][:100_000], encoding="utf-8")
    out = write_tokens(tmp_path / "t.npy", [1, 2, 3])
    with pytest.raises(KeyboardInterrupt):
        tokenize_files([a], out, tokenizer=Interrupted(), num_threads=1, chunk_chars=1000, progress=False)
    assert np.load(out).tolist() == [1, 2, 3] and leftovers(tmp_path) == []
    with pytest.raises(KeyboardInterrupt):
        tokenize_files([a], tmp_path / "split", tokenizer=Interrupted(), num_threads=1, chunk_chars=1000,
                       progress=False, val_fraction=0.1)
    assert not (tmp_path / "split").exists()  # not even the folder the run made


@pytest.mark.filterwarnings("ignore:val_fraction")  # (a split that leaves a file empty warns: tested below)
@given(st.floats(0.01, 0.99), st.integers(1, 3))
def test_val_split_is_the_last_fraction_of_tokens(tmp_path_factory, fraction, n_files):
    d = tmp_path_factory.mktemp("split")
    texts = [f"document {i}: " + "some words, numbers 123 and more " * (i + 3) for i in range(n_files)]
    files = []
    for i, t in enumerate(texts):
        files.append(d / f"{i}.txt")
        files[-1].write_text(t, encoding="utf-8")
    whole = tokenize_files(files, d / "all.npy", eot=True, progress=False).tokens.tolist()
    train, val = tokenize_files(files, d / "out", eot=True, progress=False, val_fraction=fraction)
    n_train = int(len(whole) * (1 - fraction))
    assert train.tokens.tolist() == whole[:n_train] and val.tokens.tolist() == whole[n_train:]
    assert (train.path.name, val.path.name) == ("train.npy", "val.npy")
    train, val = tokenize_files(files, d / "out", eot=True, progress=False, val_fraction=fraction, format="bin")
    assert np.fromfile(d / "out" / "train.bin", np.uint16).tolist() == whole[:n_train]
    assert np.fromfile(d / "out" / "val.bin", np.uint16).tolist() == whole[n_train:]
    assert leftovers(d / "out") == []


def test_tokenize_refuses_bad_outputs_before_the_work(tmp_path):
    a = tmp_path / "a.txt"
    a.write_text("hello world", encoding="utf-8")
    (tmp_path / "link.txt").symlink_to(a)
    os.link(a, tmp_path / "hard.txt")
    for out in (a, tmp_path / "link.txt", tmp_path / "hard.txt", tmp_path / "sub" / ".." / "a.txt"):
        with pytest.raises(ValueError, match="is also an input"):
            tokenize_files([a], out, progress=False)
    assert a.read_text() == "hello world"
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "train.npy").symlink_to(a)
    with pytest.raises(ValueError, match="is also an input"):
        tokenize_files([a], tmp_path / "d", progress=False, val_fraction=0.1)
    with pytest.raises(IsADirectoryError, match="is a folder"):
        tokenize_files([a], tmp_path, progress=False)
    with pytest.raises(NotADirectoryError, match="is not a folder"):
        tokenize_files([a], a / "sub.npy", progress=False)
    with pytest.raises(FileNotFoundError, match="no folder"):
        tokenize_files([a], tmp_path / "missing" / "t.npy", progress=False)
    with pytest.raises(NotADirectoryError, match="names a folder"):
        tokenize_files([a], a, progress=False, val_fraction=0.1)
    with pytest.raises(ValueError, match="looks like a file name"):  # not a folder called t.npy
        tokenize_files([a], tmp_path / "t.npy", progress=False, val_fraction=0.1)
    assert not (tmp_path / "t.npy").exists()
    with pytest.raises(ValueError, match="num_threads must be an int >= 1"):
        tokenize_files([a], tmp_path / "t.npy", num_threads=-2)
    for fraction in (0, 1, 1.5, -0.1, "0.1"):
        with pytest.raises(ValueError, match="val_fraction"):
            tokenize_files([a], tmp_path / "t.npy", val_fraction=fraction)
    with pytest.raises(ValueError, match="format must be one of npy, bin"):
        tokenize_files([a], tmp_path / "t.npy", format="npgpt")
    # a name that says the other format: raw ids in t.npy (np.load: "pickled data"), a header in train.bin
    with pytest.raises(ValueError, match=re.escape("format 'bin' does not go with the name t.npy")):
        tokenize_files([a], tmp_path / "t.npy", format="bin", progress=False)
    with pytest.raises(ValueError, match=re.escape("format 'npy' does not go with the name train.BIN")):
        write_tokens(tmp_path / "train.BIN", [1, 2], format="npy")
    assert not (tmp_path / "t.npy").exists() and not (tmp_path / "train.BIN").exists()
    raw = write_tokens(tmp_path / "raw", [1, 2], format="bin")  # a name that says nothing: the format decides
    assert TokenFile(raw, np.uint16).tokens.tolist() == [1, 2]
    raw.unlink()
    with pytest.raises(FileNotFoundError, match="no such file"):
        tokenize_files([tmp_path / "nope.txt"], tmp_path / "t.npy")

    class BigVocab:  # what the check reads of an encoding with more ids than uint16 holds
        name, n_vocab, token_dtype = "big", 100_277, np.dtype(np.uint32)
        chunk_text = encode_to_numpy = None  # (an encoding that is not npgpt's has these too)

    with pytest.raises(ValueError, match="format 'bin' holds uint16 ids"):
        tokenize_files([a], tmp_path / "t.bin", tokenizer=BigVocab())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "d", "hard.txt", "link.txt"]


def test_an_output_that_is_not_a_regular_file_is_refused_not_replaced(tmp_path, capsys, enc):
    # `npgpt tokenize a.txt --out /dev/null`, run as root, renamed a regular file over /dev/null. A pipe
    # stands in for the device here: the output must be refused and left as it was.
    a = tmp_path / "a.txt"
    a.write_text("hello world", encoding="utf-8")
    pipe = tmp_path / "pipe.npy"
    os.mkfifo(pipe)
    (tmp_path / "to-pipe.npy").symlink_to(pipe)
    for out in (pipe, tmp_path / "to-pipe.npy"):
        with pytest.raises(ValueError, match=f"{re.escape(str(out))} is not a regular file"):
            tokenize_files([a], out, progress=False)
        with pytest.raises(ValueError, match="is not a regular file"):
            write_tokens(out, [1, 2])
        assert main(["tokenize", str(a), "--out", str(out)]) == 2
        assert "is not a regular file" in capsys.readouterr().err
    assert stat.S_ISFIFO(os.lstat(pipe).st_mode) and (tmp_path / "to-pipe.npy").is_symlink()
    with pytest.raises(ValueError, match="not a regular token file"):  # and it is no token file to read either
        TokenFile(pipe)
    # a link to a token file: the file it names gets the new tokens, and the link stays a link
    real = write_tokens(tmp_path / "real.npy", [1, 2, 3])
    (tmp_path / "link.npy").symlink_to(real)
    tokenize_files([a], tmp_path / "link.npy", progress=False)
    assert (tmp_path / "link.npy").is_symlink() and np.load(real).tolist() == enc.encode("hello world")
    write_tokens(tmp_path / "link.npy", [7])
    assert (tmp_path / "link.npy").is_symlink() and np.load(real).tolist() == [7]
    assert leftovers(tmp_path) == []


def test_the_tokenizer_is_an_encoding_or_its_name(tmp_path, enc):
    # tokenizer="gpt2" (as npgpt.distributed.tokenize takes it) and tiktoken's Encoding, which npgpt stands in
    # for, both raised AttributeError: 'str' / 'Encoding' object has no attribute 'token_dtype'.
    a = tmp_path / "a.txt"
    a.write_text("hello world", encoding="utf-8")
    assert tokenize_files([a], tmp_path / "t.npy", tokenizer="gpt2", progress=False).tokens.tolist() == [31373, 995]
    with pytest.raises(ValueError, match="Unknown encoding 'cl100k_base'"):
        tokenize_files([a], tmp_path / "t.npy", tokenizer="cl100k_base", progress=False)

    class Encoding:  # what tiktoken's is, to tokenize_files: encode and encode_to_numpy, no chunk_text
        def encode(self, text, **kwargs):
            return enc.encode(text, **kwargs)

        def encode_to_numpy(self, text, **kwargs):
            return enc.encode_to_numpy(text, **kwargs)

    for bad in (Encoding(), None.__class__, 50257):
        with pytest.raises(TypeError, match=r"tokenizer must be an npgpt\.Encoding or an encoding name"):
            tokenize_files([a], tmp_path / "u.npy", tokenizer=bad, progress=False)
    assert not (tmp_path / "u.npy").exists()

def test_eot_with_an_encoding_that_has_none_fails_before_the_work(tmp_path, capsys):
    # The KeyError came after the split's folder was made, and left it; the CLI printed it in quotes.
    a = tmp_path / "a.txt"
    a.write_text("hello world", encoding="utf-8")
    enc = npgpt.train_bpe(["hello world"], 260, special_tokens=["<|pad|>"], progress=False)
    with pytest.raises(KeyError, match=re.escape("has no '<|endoftext|>' token")):
        tokenize_files([a], tmp_path / "split", tokenizer=enc, eot=True, val_fraction=0.5, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    enc.save(tmp_path / "v")
    assert main(["tokenize", str(a), "--vocab", str(tmp_path / "v"), "--eot", "--out", str(tmp_path / "s"),
                 "--val-fraction", "0.5"]) == 2
    assert capsys.readouterr().err == "npgpt: <Encoding 'vocab'> has no '<|endoftext|>' token\n"
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(("progress", "terminal", "shown"), [
    (None, False, False), (None, True, True), (True, False, True), (True, True, True), (False, True, False)])
def test_progress_means_what_tqdm_means(tmp_path, capsys, monkeypatch, progress, terminal, shown):
    # One meaning for npgpt's progress bars (tokenize_files and train_bpe had two: True was "always" in
    # one, "on a terminal only" in the other): None on a terminal only, True always, False never.
    from npgpt.token_files import progress_bar

    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)
    a = tmp_path / "a.txt"
    a.write_text("hello world", encoding="utf-8")
    tokenize_files([a], tmp_path / "t.npy", progress=progress)
    npgpt.train_bpe(files=[a], vocab_size=260, progress=progress)
    with progress_bar(progress, total=3, desc="here") as update:
        update(3)
    err = capsys.readouterr().err
    for desc in ("tokenize", "counting", "merging", "here"):
        assert (f"{desc}:" in err) == shown, err

def test_tokenize_into_a_folder_without_write_permission(tmp_path, monkeypatch):
    a = tmp_path / "a.txt"
    a.write_text("hello", encoding="utf-8")

    def denied(path, *args, **kwargs):  # os.open in a folder we may not write (root-run CI cannot chmod one)
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(PermissionError, match=f"cannot write {tmp_path / 't.npy'}: permission denied in {tmp_path}"):
        tokenize_files([a], tmp_path / "t.npy", progress=False)
    assert main(["tokenize", str(a), "--out", str(tmp_path / "t.npy")]) == 2


def test_tokenize_onto_a_read_only_file_system_names_the_output(tmp_path, monkeypatch, capsys):
    # The message named the temporary file (".t.npy.1234.5a6b7c8d.tmp"), which the user never asked for
    a = tmp_path / "a.txt"
    a.write_text("hello", encoding="utf-8")

    def read_only(path, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(os, "open", read_only)
    assert main(["tokenize", str(a), "--out", str(tmp_path / "t.npy")]) == 2
    err = capsys.readouterr().err
    assert err == f"npgpt: cannot write {tmp_path / 't.npy'}: Read-only file system\n"


# ---------------------------------------------------------------------------------------------------
# the command line and data/


def test_cli_tokenize(tmp_path, capsys, enc):
    a = tmp_path / "a.txt"
    text = default_text()[1][:20_000]
    a.write_text(text, encoding="utf-8")
    assert main(["tokenize", str(a), "--out", str(tmp_path / "t.npy")]) == 0
    assert np.load(tmp_path / "t.npy").tolist() == enc.encode_ordinary(text)
    assert main(["tokenize", str(a), "--out", str(tmp_path / "t.bin"), "--format", "bin", "--eot"]) == 0
    assert np.memmap(tmp_path / "t.bin", dtype=np.uint16, mode="r").tolist() == [*enc.encode_ordinary(text), 50256]
    assert main(["tokenize", str(a), "--out", str(tmp_path / "split"), "--val-fraction", "0.1"]) == 0
    train, val = np.load(tmp_path / "split" / "train.npy"), np.load(tmp_path / "split" / "val.npy")
    assert [*train, *val] == enc.encode_ordinary(text) and len(val) == len(train) // 9 + (len(val) > len(train) // 9)
    out = capsys.readouterr().out
    assert "train.npy" in out and "val.npy" in out


@pytest.mark.parametrize(("args", "message"), [
    (["{a}", "--out", "{d}"], "is a folder"),
    (["{a}", "--out", "{a}/sub.npy"], "is not a folder"),
    (["{a}", "--out", "{d}/missing/t.npy"], "no folder"),
    (["{a}", "--out", "{d}/t.npy", "--threads", "-2"], "--threads must be >= 1"),
    (["{a}", "--out", "{a}"], "is also an input"),
    (["{a}", "{bad}", "--out", "{d}/t.npy"], "is not UTF-8 text"),
    (["{d}/missing.txt", "--out", "{d}/t.npy"], "no such file"),
    (["{a}", "--out", "{d}/t.npy", "--val-fraction", "1"], "--val-fraction must be"),
    (["{a}", "--out", "{a}", "--val-fraction", "0.5"], "names a folder"),
    (["{a}", "--out", "{d}/t.bin", "--val-fraction", "0.5"], "looks like a file name"),
    (["{a}", "--out", "{d}/t.npy", "--format", "bin"], "does not go with the name t.npy"),
])
def test_cli_tokenize_mistakes(tmp_path, capsys, args, message):
    a, bad = tmp_path / "a.txt", tmp_path / "bad.txt"
    a.write_text("hello world", encoding="utf-8")
    bad.write_bytes(b"ok \xff\xfe")
    argv = ["tokenize", *(s.format(a=a, d=tmp_path, bad=bad) for s in args)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("npgpt: ") and message in err and err.count("\n") == 1, err
    assert a.read_text() == "hello world"
    if "bad" in args[1]:
        assert f"{bad}" in err and "byte 3" in err


def test_prepare_python_docs_offline(tmp_path, enc):
    script = ROOT / "data" / "python_docs" / "prepare.py"
    done = subprocess.run([sys.executable, str(script), "--out", str(tmp_path)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "NO_NETWORK": "1"})
    assert done.returncode == 0, done.stderr
    train = np.memmap(tmp_path / "train.bin", dtype=np.uint16, mode="r")  # nanoGPT's line
    val = np.memmap(tmp_path / "val.bin", dtype=np.uint16, mode="r")
    import json

    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["encoding"] == "gpt2" and meta["vocab_size"] == 50257
    assert (meta["train_tokens"], meta["val_tokens"]) == (len(train), len(val))
    from pydoc_data import topics

    docs = [topics.topics[k] for k in sorted(topics.topics)]
    expected = [t for doc in docs for t in [*enc.encode_ordinary(doc), enc.eot_token]]
    assert [*train, *val] == expected
    assert len(val) == len(expected) - int(len(expected) * 0.9)
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_prepare_the_verdict_from_a_local_file(tmp_path, enc):
    text = enc.decode([40, 367, 2885, 1464, 1807, 3619, 402, 271, 10899]) * 50
    (tmp_path / "verdict.txt").write_text(text, encoding="utf-8")
    script = ROOT / "data" / "the_verdict" / "prepare.py"
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "verdict.txt"), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    train = np.memmap(tmp_path / "o" / "train.bin", dtype=np.uint16, mode="r")
    val = np.memmap(tmp_path / "o" / "val.bin", dtype=np.uint16, mode="r")
    assert [*train, *val] == enc.encode_ordinary(text)
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "missing.txt"), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "missing.txt" in done.stderr


def test_gitignore_keeps_scripts_and_ignores_outputs():
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    paths = ["data/README.md", "data/python_docs/prepare.py", "data/the_verdict/prepare.py",
             "data/python_docs/train.bin", "data/python_docs/val.bin", "data/python_docs/meta.json",
             "data/the_verdict/input.txt", "data/tokens.npy"]
    done = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=ROOT, capture_output=True, text=True)
    assert done.stdout.split() == paths[3:]


def test_npgpt_exports():
    assert npgpt.TokenFile is TokenFile and npgpt.write_tokens is write_tokens
    assert npgpt.tokenize_files is tokenize_files


HOSTILE = r'''
import io, random, sys, tempfile
from pathlib import Path
import numpy as np
from npgpt.data import DataLoader, GPTDatasetV1
from npgpt.token_files import TokenFile, write_tokens

rng = random.Random(int(sys.argv[1]))
d = Path(tempfile.mkdtemp())
DTYPES = ["<u2", "<u4", "<i8", "|u1", "|i1", ">u2", "<f2", "|b1", "V2", "<M8", "O", "<U3", "<c8", "junk", ""]
EXPECTED = (ValueError, TypeError, IndexError, OSError)


def pick(valid, hostile):
    return rng.choice(hostile if rng.random() < 0.15 else valid)


for i in range(int(sys.argv[2])):
    kind = rng.choice(["npy", "old", "raw", "valid", "valid", "valid"])
    body = rng.randbytes(rng.choice([0, 1, 2, 3, 8, 64, 1000]))
    path = d / f"{i}.{rng.choice(['npy', 'bin', 'tok'])}"
    if kind == "npy":
        shape = rng.choice([(rng.randrange(-3, 600),), (), (2, 3), (2**62,), (rng.randrange(0, 40),)])
        head = io.BytesIO()
        try:
            np.lib.format.write_array_header_1_0(head, {"descr": rng.choice(DTYPES), "fortran_order": rng.random() < .2,
                                                        "shape": shape})
        except Exception:
            head = io.BytesIO(b"\x93NUMPY\x01\x00" + rng.randbytes(rng.randrange(0, 20)))
        data = head.getvalue()
        if rng.random() < 0.2:
            data = data[: rng.randrange(0, len(data) + 1)]
        path.write_bytes(data + body)
    elif kind == "old":
        path.write_bytes(b"NPGPTTOK" + rng.choice([1, 2, 2**31]).to_bytes(4, "little")
                         + rng.choice(DTYPES).encode().ljust(12, b"\0")[:12]
                         + rng.choice([0, 1, len(body) // 2, 2**63, 2**64 - 1]).to_bytes(8, "little") + body)
    elif kind == "raw":
        path.write_bytes(body)
    else:
        dtype = rng.choice(["<u2", "<u4", "<i8", "|i1", "<i4"])
        info = np.iinfo(dtype)
        ids = np.array([rng.randint(int(info.min), int(info.max)) for _ in range(rng.randrange(0, 300))], dtype=dtype)
        path = path.with_suffix(".npy")
        write_tokens(path, ids, dtype=dtype) if ids.min(initial=0) >= 0 else np.save(path, ids)
    try:
        tf = TokenFile(path, dtype=pick([None], ["<u2", "<f4", ">u4", "|u1"]))
        tokens = np.asarray(tf.tokens)
        int(tokens.astype(np.int64).sum())
        ds = GPTDatasetV1.from_token_ids(tf, pick([1, 3, 50], [0, -1, 2**40, 2.0]), pick([1, 2, 7], [0, -3, "1"]),
                                         dtype=pick([np.int64, None, np.int32], [np.int8, np.float32, "junk"]))
        if len(ds):
            ds[pick([0, -1, len(ds) // 2], [len(ds), -len(ds) - 1, 1.0])]
        world = rng.choice([1, 2, 3])
        loader = DataLoader(ds, batch_size=pick([1, 4, 1000], [0, -2, None]), shuffle=rng.random() < .5,
                            drop_last=rng.random() < .5, seed=pick([None, 0, 5], [-1, 1.5]), world_size=world,
                            rank=pick([0, world - 1], [world, -1]),
                            dtype=pick([np.int64, np.int32, None], [np.uint8, np.int16, np.float64]))
        for _ in zip(range(3), loader):
            pass
    except EXPECTED:
        pass
print("ok")
'''


@pytest.mark.parametrize("seed", [0, 1])
def test_hostile_token_files_and_loaders_raise_never_crash(seed):
    # In a child process: a crash (a signal) fails this test instead of killing pytest. Any exception other than
    # ValueError/TypeError/IndexError/OSError escapes and fails it too.
    done = subprocess.run([sys.executable, "-c", HOSTILE, str(seed), "1000"], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]



def test_a_pickled_token_file_is_its_path(tmp_path):
    # It pickled its mapping as an array: the whole file, copied into the pickle (and into every worker).
    import pickle

    ids = np.arange(50_000, dtype=np.uint16)
    for path in (write_tokens(tmp_path / "t.npy", ids), write_tokens(tmp_path / "t.bin", ids)):
        tf = TokenFile(path)
        data = pickle.dumps(tf)
        assert len(data) < 500
        back = pickle.loads(data)
        assert (back.path, back.dtype, back.format) == (tf.path, tf.dtype, tf.format)
        assert isinstance(back.tokens, np.memmap) and np.array_equal(back.tokens, ids)

def test_folders_are_not_files(tmp_path):
    with pytest.raises(ValueError, match="not a regular file"):
        tokenize_files([tmp_path], tmp_path / "t.npy", progress=False)



def test_every_input_check_says_the_same(tmp_path):
    # One check, and one wording, for a file to read that is missing or no regular file: tokenize_files,
    # train_bpe, TokenFile (a folder: IsADirectoryError), the CLI (in one line) and npgpt.distributed.
    from npgpt.token_files import regular_file

    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    (tmp_path / "x.txt").write_text("x", encoding="utf-8")
    assert regular_file(str(tmp_path / "x.txt")) == tmp_path / "x.txt"
    for path, error, message in ((tmp_path, ValueError, f"not a regular file: {tmp_path} (a folder, device or pipe)"),
                                 (pipe, ValueError, f"not a regular file: {pipe} (a folder, device or pipe)"),
                                 (tmp_path / "nope", FileNotFoundError, f"no such file: {tmp_path / 'nope'}")):
        for call, args in ((regular_file, (path,)), (tokenize_files, ([path], tmp_path / "t.npy")),
                           (npgpt.train_bpe, (None, 300, ["<|endoftext|>"]))):
            with pytest.raises(error, match=f"^{re.escape(message)}$"):
                call(*args, **({"files": [path]} if call is npgpt.train_bpe else {}))
        if path != tmp_path:
            with pytest.raises(error, match=f"^{re.escape(message.replace('file', 'token file', 1))}$"):
                TokenFile(path)
    with pytest.raises(FileNotFoundError, match=f"^no such shard: {re.escape(str(tmp_path / 'a'))} \\(and 1 more\\)$"):
        regular_file(tmp_path / "a", "shard", more=1)

def test_a_failed_split_leaves_no_folder(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine " * 1000 + b"\xff")
    with pytest.raises(UnicodeDecodeError):
        tokenize_files([bad], tmp_path / "split", progress=False, val_fraction=0.1)
    assert not (tmp_path / "split").exists()


def test_a_split_that_leaves_a_file_empty_warns_and_a_trailing_slash_names_a_folder(tmp_path, capsys):
    a = tmp_path / "a.txt"
    a.write_text("hello world " * 10, encoding="utf-8")
    with pytest.warns(UserWarning, match="leaves val with no tokens"):
        train, val = tokenize_files([a], tmp_path / "s1", progress=False, val_fraction=1e-20)
    assert len(val) == 0 and len(train) == 21
    with pytest.warns(UserWarning, match="leaves train with no tokens"):
        tokenize_files([a], tmp_path / "s2", progress=False, val_fraction=0.999999)
    # "t.npy/" says folder, whatever its name looks like (Path itself drops the slash)
    train, val = tokenize_files([a], f"{tmp_path / 't.npy'}/", progress=False, val_fraction=0.5)
    assert (tmp_path / "t.npy").is_dir() and len(train) + len(val) == 21
    # the CLI says it in one line, and goes on
    assert main(["tokenize", str(a), "--out", str(tmp_path / "s3"), "--val-fraction", "1e-20"]) == 0
    err = capsys.readouterr().err
    assert err == "npgpt: warning: val_fraction=1e-20 of 21 tokens leaves val with no tokens\n", err
