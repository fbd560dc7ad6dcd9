"""The numba UTF-8 check (npgpt.bpe.utf8_kernels) held to Python's own decoder."""

import codecs

import numpy as np
from hypothesis import example, given
from hypothesis import strategies as st

from npgpt.bpe.utf8_kernels import valid_prefix

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
