"""The numba UTF-8 kernels (npgpt.bpe.utf8_kernels) held to Python: its decoder, its encoder, bytes.find."""

import codecs

import numpy as np
from hypothesis import example, given
from hypothesis import strategies as st

from npgpt.bpe.utf8_kernels import CHECK_BLOCK, find_bytes, utf8_of_str, valid_prefix

# bytes around every boundary of RFC 3629's table: overlong forms, surrogates, the last code point
edge_bytes = st.lists(st.sampled_from([b"a", b"\x7f", b"\x80", b"\xbf", b"\xc0", b"\xc1", b"\xc2", b"\xdf", b"\xe0",
                                       b"\xe0\xa0", b"\xe0\x9f", b"\xed\x9f", b"\xed\xa0", b"\xef", b"\xf0\x90",
                                       b"\xf0\x8f", b"\xf4\x8f", b"\xf4\x90", b"\xf5", b"\xff", "é".encode(),
                                       "字".encode(), "😀".encode(), "\U0010ffff".encode()]),
                      max_size=40).map(b"".join)


def python_prefix(data: bytes) -> int:
    """Where Python's incremental decoder stops: at the first error, or before a character cut short."""
    try:
        return codecs.utf_8_decode(data, "strict", False)[1]
    except UnicodeDecodeError as e:
        return e.start


@given(st.one_of(st.binary(max_size=64), edge_bytes, st.text(max_size=40).map(lambda t: t.encode("utf-8", "replace"))))
@example(b"abcdefgh\xe2\x82")
@example(b"abcdefghijklmnop\xc3")
@example(b"\xed\xa0\x80")
def test_valid_prefix_agrees_with_python(data):
    arr = np.frombuffer(data, np.uint8)
    assert valid_prefix(arr, 0, len(arr)) == python_prefix(data)
    for start, end in ((0, len(arr) // 2), (len(arr) // 3, len(arr)), (0, len(arr) + 5)):
        got = valid_prefix(arr, start, end)
        if python_prefix(data[:start]) == start:  # `start` is where a character starts
            assert got == start + python_prefix(data[start:end])



# valid_prefix checks blocks of bytes in vectorized lanes (each byte against the 3 before it) and reads
# the character where a block fails again one at a time: these put every kind of bad sequence at
# every place in a run of 2-, 3- and 4-byte characters (any lane, the start, a block's edge, the end).
BAD = [b"\x80", b"\xbf", b"\xc0\x80", b"\xc1\xbf", b"\xc2", b"\xdf\xc0", b"\xe0\x80\x80", b"\xe0\x9f\xbf",
       b"\xe4\xb8", b"\xe4\xb8\x41", b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xef\xbf", b"\xf0\x80\x80\x80",
       b"\xf0\x8f\xbf\xbf", b"\xf0\x9f\x98", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xf8", b"\xff"]
RUNS = {"cyrillic": "Привет, как дела? Ёжик в тумане. ", "cjk": "你好，世界。我们今天学习。", "emoji": "😀🚀 ok 🐍"}
long_text = st.lists(st.sampled_from(["a", " ", "\x7f", "\x80", "ж", "Ё", "\u07ff", "\u0800", "字", "。", "\ud7ff",
                                      "\ue000", "\uffff", "\U00010000", "😀", "\U0010ffff"]), max_size=400).map("".join)


def check_valid_prefix(data: bytes, start: int = 0) -> None:
    arr = np.frombuffer(data, np.uint8)
    assert valid_prefix(arr, start, len(arr)) == start + python_prefix(data[start:])


@given(long_text, st.sampled_from(BAD), st.integers(0, 1 << 20), st.booleans(), st.integers(0, 4))
def test_valid_prefix_finds_a_bad_sequence_anywhere(text, bad, where, overwrite, start):
    data = text.encode()
    i = where % (len(data) + 1)
    data = data[:i] + bad + data[i + len(bad) * overwrite :]  # inserted, or over the bytes there
    start = min(start, i)
    if python_prefix(data[:start]) == start:  # `start` is where a character starts
        check_valid_prefix(data, start)
    check_valid_prefix(data)
    check_valid_prefix(data[:i + 1])  # cut short right after the bad sequence starts


def test_valid_prefix_one_bad_byte_at_every_position():
    for run in RUNS.values():
        good = (run * (300 // len(run.encode()) + 1)).encode()
        check_valid_prefix(good)
        for i in range(len(good)):
            for b in (0x41, 0x80, 0xBF, 0xC0, 0xC2, 0xD0, 0xE0, 0xE4, 0xED, 0xF0, 0xF4, 0xF5, 0xFF):
                check_valid_prefix(good[:i] + bytes([b]) + good[i + 1 :])
            check_valid_prefix(good[:i])  # truncated: the last character may be cut short


def test_valid_prefix_across_a_block_edge():
    for run in RUNS.values():
        good = (run * (CHECK_BLOCK // len(run.encode()) + 40)).encode()
        assert valid_prefix(np.frombuffer(good, np.uint8), 0, len(good)) == len(good)
        for start in (0, 1, len(run[0].encode())):
            edge = start + max(start, 3) + CHECK_BLOCK  # (the first block starts after 3 bytes, at a character)
            for i in [*range(edge - 12, edge + 12), len(good) - 5, len(good) - 1]:
                for bad in BAD:
                    data = good[:i] + bad + good[i + len(bad) :]
                    if python_prefix(data[:start]) == start:
                        check_valid_prefix(data, start)
                check_valid_prefix(good[:i], min(start, i) if python_prefix(good[:start]) == start else 0)

# every storage width CPython picks (1, 2 or 4 bytes a character), each boundary of UTF-8's lengths, surrogates
edge_chars = st.lists(st.sampled_from(["a", "\x7f", "\x80", "\xff", "\u0100", "\u07ff", "\u0800", "\ud7ff",
                                       "\ud800", "\udbff", "\udc00", "\udfff", "\ue000", "\uffff", "\U00010000",
                                       "\U0010ffff", "é", "ж", "字", "😀"]), max_size=40).map("".join)


@given(st.one_of(st.text(max_size=60), edge_chars, st.text(st.characters(codec="latin-1"), max_size=60)))
@example("")
@example("héllo wörld")
@example("a\ud800")
def test_utf8_of_str_is_str_encode(text):
    buf, n = utf8_of_str(text)
    try:
        expected = text.encode("utf-8")
    except UnicodeEncodeError as e:  # a surrogate: the kernel names the first one
        assert n == -1 - e.start
        return
    assert n == len(expected) and buf[:n].tobytes() == expected
    assert len(buf) >= n  # (its room, from the storage width, is never less than the bytes)


# ASCII runs of every length (the kernel copies 8 bytes of ASCII code units at a time) between single
# characters of each UTF-8 length, in strs stored 1, 2 and 4 bytes a character (the widest decides)
ascii_runs = st.lists(st.one_of(st.text(st.characters(max_codepoint=0x7F), min_size=1, max_size=20),
                                st.sampled_from(["é", "\xff", "ж", "\u07ff", "\u0800", "字", "\uffff", "😀",
                                                 "\U0010ffff", "\ud800", "\udfff"])), max_size=30).map("".join)


@given(ascii_runs, st.sampled_from(["", "é", "字", "😀"]))
@example("abcdefgh" * 3 + "ж", "字")
@example("abcdefg\ud800", "")
def test_utf8_of_str_word_at_a_time_is_str_encode(text, widest):
    text = text + widest  # (a character at the end sets the storage width of the whole str)
    buf, n = utf8_of_str(text)
    try:
        expected = text.encode("utf-8")
    except UnicodeEncodeError as e:  # the first surrogate, also when a word of ASCII came just before it
        assert n == -1 - e.start
        return
    assert n == len(expected) and buf[:n].tobytes() == expected


@given(st.binary(max_size=80), st.binary(min_size=1, max_size=5), st.integers(-3, 90), st.data())
@example(b"xx<|endoftext|> <|endoftext|", b"<|endoftext|>", 0, None)
@example(b"aaaaaaaaaaaaaaaab", b"ab", 0, None)
def test_find_bytes_is_bytes_find(haystack, needle, start, data):
    if data is not None and haystack and data.draw(st.booleans()):  # often a needle that is there
        i = data.draw(st.integers(0, len(haystack) - 1))
        needle = haystack[i : i + data.draw(st.integers(1, 16))]
    got = find_bytes(np.frombuffer(haystack, np.uint8), np.frombuffer(needle, np.uint8), start)
    assert got == haystack.find(needle, max(start, 0))
