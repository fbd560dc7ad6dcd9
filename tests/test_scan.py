"""The numba pre-tokenizer (npgpt.bpe.pretokenize_kernels) against `regex.findall(GPT2_PATTERN, ...)`."""

import numpy as np
import pytest
import regex
from hypothesis import example, given
from hypothesis import strategies as st

from npgpt import Encoding
from npgpt.bpe import unicode_tables
from npgpt.bpe.pretokenize import GPT2_PATTERN, split
from npgpt.bpe.pretokenize_kernels import scan, split_gpt2
from tests.conftest import corpus_file, corpus_files

# Every plane, combining marks, the contraction apostrophes, and \s oddities (U+0085, U+2028,
# U+3000, U+001C..U+001F which `regex` does not count as space but str.isspace does).
any_unicode = st.text(st.characters(exclude_categories=["Cs"]), max_size=200)
corner_pieces = st.sampled_from([
    "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'", "'r", "'l", "'S", "’s",
    " ", "  ", "\t", "\n", "\r\n", "\u0085", "\u2028", "\u3000", "\u00a0", "\x1c", "\x1f", "\u200b",
    "a", "Z", "é", "e\u0301", "漢字", "😀", "𝔘", "\U000e0001", "7", "٣", "Ⅻ", "½", "!", "-", "_", ",",
])
tricky_text = st.lists(corner_pieces, max_size=40).map("".join)
# Long letter runs with the bytes either side of A..Z and a..z ("@[`{"), for the 8-at-a-time path.
letter_runs = st.text(st.sampled_from("aAmzZ@[`{ \n'0é漢ß"), max_size=80)


@given(st.one_of(any_unicode, tricky_text, letter_runs))
@example("Hello world's  123!!  \n\n x're\u3000\u3000y ")
@example("abcdefghABCDEFGHijklmnopq@abcdefghi[jklmnopqrs`tuvwxyzab{")
@example(" " * 5)
@example("a\u0085 b\u2028\u2028c \x1c d")
def test_scanner_equals_regex(text):
    assert split_gpt2(text) == regex.findall(GPT2_PATTERN, text)


# Long mostly-ASCII text, for `ascii_ends` (64 bytes at once): every ASCII class, contractions and
# near misses, runs of spaces, and the characters that end a block early (not ASCII, spaces among them).
ascii_blocks = st.lists(st.sampled_from([
    " ", "  ", "\n", "\t", "\r\n", "\x0b", "\x0c", "\x1c", "'", "'s", "'re", "'ll", "'d", "'x", "'S",
    "a", "word", "Abcdefghijklmnopq", "7", "123", "!", "?!", ".", "-", "@", "[", "`", "{", "\x7f", "\x00",
    "é", "\u00a0", "\u3000", "漢", "²", "😀",
    "слово", " Я", "ё", "\u0400", "\u047f", "\u0480", "\u0482", "\u0483", "Ҋ", "Ӂ", "ա",
]), min_size=20, max_size=200).map("".join)


@given(ascii_blocks)
@example("x" * 62 + " \u00a0 y" + " z" * 40)
@example("I'm here, don't you  see?\n\tThe  quick brown fox's 'll jumps " * 3)
def test_scanner_equals_regex_on_long_ascii(text):
    assert split_gpt2(text) == regex.findall(GPT2_PATTERN, text)


def test_cyrillic_block_is_all_letters():
    """`ascii_ends` counts the two bytes of U+0400..U+047F (lead byte D0 or D1) as letters."""
    assert (unicode_tables.char_classes()[0x400:0x480] == unicode_tables.LETTER).all()


def test_scanner_equals_regex_on_every_ascii_byte_between_neighbours():
    """Each ASCII byte between two neighbours of every kind, at many places of a 64-byte block."""
    kinds = ["a", "Z", "5", " ", "  ", "\n", "\t", "'", "!", "é", "ж", "\u0482", ""]
    for left in kinds:
        for right in kinds:
            text = "".join(left + chr(b) + right + " w" for b in range(128))
            assert split_gpt2(text) == regex.findall(GPT2_PATTERN, text), (left, right)


@given(st.binary(max_size=300))
@example(b"\xf7\xbf\xbf\xbf")  # a code point of 0x1FFFFF: past the end of the class table
def test_scanner_on_any_bytes_stays_in_bounds(data):
    """Not UTF-8 never reaches the scanner from the library, but the kernel must still read nothing
    out of bounds on it: the pieces tile the bytes, and lead bytes F5-F7 read no class past the table."""
    buf = np.frombuffer(data, np.uint8)
    bounds = np.empty(len(buf) + 1, np.int64)
    n = scan(buf, 0, len(buf), unicode_tables.char_classes(), bounds)
    ends = bounds[: n + 1].tolist()
    assert ends[0] == 0 and ends[-1] == len(buf) and ends == sorted(set(ends))


def test_not_ascii_letters_is_the_byte_predicate():
    """The 8-bytes-at-once letter test, for every byte value at every position of the word."""
    from npgpt.bpe.pretokenize_kernels import not_ascii_letters

    base = int.from_bytes(b"abcdefgh", "little")
    for k in range(8):
        for b in range(256):
            word = (base & ~(0xFF << 8 * k)) | (b << 8 * k)
            got = int(not_ascii_letters(np.uint64(word)))
            expected = 0 if chr(b).isascii() and chr(b).isalpha() else 0x80 << 8 * k
            assert got == expected, (k, b)


@given(st.one_of(any_unicode, letter_runs), st.integers(0, 400))
def test_scanner_stops_at_the_segment_end(text, cut):
    """Scanning ``buf[:end]`` inside a longer buffer reads nothing past `end`: same pieces as the prefix alone."""
    buf = np.frombuffer(text.encode("utf-8"), np.uint8)
    end = min(cut, len(buf))
    whole, prefix = np.empty(len(buf) + 1, np.int64), np.empty(end + 1, np.int64)
    n = scan(buf, 0, end, unicode_tables.char_classes(), whole)
    m = scan(buf[:end].copy(), 0, end, unicode_tables.char_classes(), prefix)
    assert n == m and whole[: n + 1].tolist() == prefix[: m + 1].tolist()


@pytest.mark.parametrize("name", corpus_files())
def test_scanner_on_corpus(name):
    text = corpus_file(name).read_text(encoding="utf-8")
    assert split_gpt2(text) == split(text)


def test_char_classes_agree_with_regex_everywhere():
    table = unicode_tables.char_classes()
    assert table.shape == (0x110000,) and not table.flags.writeable
    rng = np.random.default_rng(0)
    for cp in [*range(0x300), *rng.integers(0, 0x110000, 5000).tolist()]:
        if 0xD800 <= cp < 0xE000:
            continue
        c = chr(cp)
        expected = (unicode_tables.LETTER if regex.match(r"\p{L}", c) else unicode_tables.NUMBER
                    if regex.match(r"\p{N}", c) else unicode_tables.SPACE if regex.match(r"\s", c)
                    else unicode_tables.OTHER)
        assert table[cp] == expected, hex(cp)


def test_char_classes_disk_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NPGPT_CACHE_DIR", str(tmp_path))
    unicode_tables.char_classes.cache_clear()
    try:
        first = unicode_tables.char_classes()
        (cached,) = tmp_path.glob("char-classes-regex-*.npy")
        assert np.array_equal(np.load(cached), first)
        cached.write_bytes(b"garbage")  # a damaged cache is rebuilt, not trusted
        unicode_tables.char_classes.cache_clear()
        assert np.array_equal(unicode_tables.char_classes(), first)
    finally:
        unicode_tables.char_classes.cache_clear()


@pytest.fixture(scope="module")
def regex_path(enc):
    """GPT-2 with the scanner switched off: pieces come from the `regex` module."""
    slow = Encoding(enc.vocab, enc.merges, enc.special_tokens, name="regex-path")
    slow._scanned = False
    return slow


@given(st.one_of(any_unicode, tricky_text))
def test_scanner_path_equals_regex_path(enc, regex_path, text):
    assert enc._scanned and not regex_path._scanned
    kw = {"allowed_special": "all", "disallowed_special": ()}
    assert regex_path.encode(text, **kw) == enc.encode(text, **kw)


def test_joinable_pairs_split_is_exact(enc, ref):
    """Chinese and Russian pieces are cut where no token holds the byte pair; the ids must not change."""
    joinable = enc._get_tables().joinable
    assert joinable.sum() == 2689  # GPT-2's tokens hold 2,689 of the 65,536 byte pairs
    for text in ("受到外国压迫的国民你是谁的老婆", "Достоевский неоднократно", "ﬁﬂ ǅǈ ῼ 𝔘𝔫𝔦"):
        assert enc.encode_ordinary(text) == ref.encode_ordinary(text)
