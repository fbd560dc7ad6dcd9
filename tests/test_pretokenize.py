"""Pre-tokenization helpers (npgpt.bpe.pretokenize): safe cut points and chunking, held to `regex.findall`."""

import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from npgpt.bpe import pretokenize
from npgpt.bpe.pretokenize import GPT2_PATTERN, chunk_text, safe_cut
from npgpt.reference import split

# Characters that sit on the rule's edges: spaces of every kind, U+001C (a space to Python, not to
# `regex`), apostrophes before contraction letters, digits, letters of two scripts, symbols.
edge_chars = st.sampled_from([" ", "  ", "\n", "\t", "\u00a0", "\u3000", "\x1c", "'", "s", "re", "ll", "a", "Z",
                              "é", "7", "٣", "漢", "字", "!", ".", ",", "😀", "<|endoftext|>", "<|fim|>"])
edgy_text = st.lists(edge_chars, max_size=60).map("".join)
any_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=120)
texts = st.one_of(edgy_text, any_text)


@given(texts, texts, st.integers(0, 200))
@example("a b", "", 2)
@example("x's", "", 2)
@example("字字字字", "字", 3)
@example("a \n\nHe", "", 5)
def test_safe_cut_is_safe_whatever_follows(text, following, limit):
    cut = safe_cut(text, limit)
    assert 0 <= cut <= max(0, min(limit, len(text)))
    if cut:
        assert split(text[:cut]) + split(text[cut:] + following) == split(text + following)


@given(texts, texts, st.integers(0, 200))
def test_safe_cut_with_a_custom_pattern(text, following, limit):
    pattern = r"\S+|\s+"
    cut = safe_cut(text, limit, pattern)
    if cut:
        assert split(text[:cut], pattern) + split(text[cut:] + following, pattern) == split(text + following, pattern)


def test_long_run_without_a_local_cut_falls_back_to_the_scanner():
    text = "字" * 20_000 + "，" + "字" * 20_000  # one place where classes change, far back
    cut = safe_cut(text, len(text) - 1)
    assert cut == 20_000  # before the comma: the local rule finds nothing in the last 4096 characters
    assert split(text[:cut]) + split(text[cut:]) == split(text)


def test_no_cut_inside_an_allowed_special_token():
    text = "hello <|endoftext|>"
    cut = safe_cut(text, 10, allowed_special=frozenset({"<|endoftext|>"}))
    assert cut <= 6


@given(st.lists(texts, max_size=8), st.integers(1, 50))
def test_chunks_rejoin_and_split_like_the_whole(parts, chunk_chars):
    specials = frozenset({"<|endoftext|>", "<|fim|>"})
    chunks = list(chunk_text(parts, allowed_special=specials, chunk_chars=chunk_chars))
    whole = "".join(parts)
    assert "".join(chunks) == whole
    cut = pretokenize.special_token_regex(specials)
    assert [p for c in chunks for s in cut.split(c) for p in split(s)] == [p for s in cut.split(whole)
                                                                           for p in split(s)]


def test_chunk_text_refuses_a_disallowed_special_token_and_bad_arguments():
    with pytest.raises(ValueError, match=re.escape("disallowed special token '<|endoftext|>'")):
        list(chunk_text(["abc <|endof", "text|> def"], disallowed_special=frozenset({"<|endoftext|>"}),
                        chunk_chars=1))
    with pytest.raises(ValueError, match="chunk_chars"):
        list(chunk_text(["abc"], chunk_chars=0))
    with pytest.raises(TypeError, match="bytes"):
        list(chunk_text([b"abc"]))


def test_fix_surrogates_and_utf8():
    assert pretokenize.fix_surrogates("\ud83d\ude00") == "😀"
    assert pretokenize.to_utf8("a\ud800") == "a\ufffd".encode()
    assert GPT2_PATTERN.startswith("'s|'t")


# --------------------------------------------------------------------------------------------
# safe_cut_utf8: the same rule on the UTF-8 bytes


@given(texts, texts, st.integers(0, 600), st.integers(0, 3))
@example("a b", "", 2, 0)
@example("x's", "", 2, 0)
@example("字字字字", "字", 9, 0)
@example("a \n\nHe", "", 5, 0)
@example("ab're", "", 4, 0)
def test_safe_cut_utf8_is_safe_whatever_follows(text, following, limit, skip):
    buf = text.encode()
    start = len(text[:skip].encode())  # the start of a text is where a piece starts; so is a safe cut
    if start and safe_cut(text, skip) != skip:
        start = 0
    cut = pretokenize.safe_cut_utf8(buf, limit, start)
    assert cut == 0 or start < cut <= min(limit, len(buf))
    if cut:
        first, rest = buf[start:cut].decode(), buf[cut:].decode()  # never inside a character
        assert split(first) + split(rest + following) == split(buf[start:].decode() + following)


@given(texts, texts, st.integers(0, 400))
def test_safe_cut_utf8_looks_no_further_than_end(text, more, limit):
    # bytes past `end` are unknown: the cut must hold whatever they turn out to be
    buf = (text + more).encode()
    end = len(text.encode())
    cut = pretokenize.safe_cut_utf8(buf, limit, 0, end)
    assert cut <= max(0, min(limit, end - 1))
    if cut:
        assert split(text[: len(buf[:cut].decode())]) + split(buf[cut:end].decode() + "x y") == split(text + "x y")


def test_safe_cut_utf8_falls_back_to_the_scanner_and_checks_utf8():
    buf = ("字" * 20_000 + "，" + "字" * 20_000).encode()
    assert pretokenize.safe_cut_utf8(buf, len(buf) - 1) == 3 * 20_000  # before the comma, far back
    assert pretokenize.safe_cut_utf8("字".encode() * 100, 150) == 0  # one piece: no cut anywhere
    assert pretokenize.safe_cut_utf8(b"", 5) == pretokenize.safe_cut_utf8(b"ab", 0) == 0
    bad = "字".encode() * 5000 + b"\xff" + "字".encode() * 5000
    with pytest.raises(ValueError, match=r"not UTF-8: byte 15000 \(0xff\)"):
        pretokenize.safe_cut_utf8(bad, len(bad) - 1)


@given(st.text(alphabet="<|ab\ufffd\ud800\udc00 ", max_size=12), st.sampled_from(["<|a", "\ufffd", "|\ud800", "", "b"]))
def test_check_disallowed_with_the_utf8_bytes_decides_as_without(text, token):
    """The UTF-8 bytes only let the check skip a token whose lead byte is absent: the same answer."""
    def raises(**kw):
        try:
            pretokenize.check_disallowed(text, frozenset({token}), **kw)
        except ValueError:
            return True
        return False

    assert raises(buf=pretokenize.to_utf8(text)) == raises() == (token in text)
