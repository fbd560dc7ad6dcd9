"""Pre-tokenization helpers (npgpt.bpe.pretokenize): safe cut points and chunking, held to `regex.findall`."""

import re
from unittest import mock

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


def _pair(c: str) -> str:
    """`c` (past U+FFFF) written as two code points, a surrogate pair, as broken decoders leave it."""
    o = ord(c) - 0x10000
    return chr(0xD800 + (o >> 10)) + chr(0xDC00 + (o & 0x3FF))


# pairs of every class once repaired: a letter (U+1D400), a digit (U+1D7CE), a symbol; and lone halves
surrogate_text = st.lists(st.sampled_from(["a", "b", " ", "\n", "1", "'", "'s", "!", "é", _pair("\U0001d400"),
                                           _pair("\U0001d7ce"), _pair("😀"), "\ud800", "\udc00", "\U0001d400"]),
                          max_size=40).map("".join)


@given(surrogate_text, st.sampled_from(["", "x", " ", "1", _pair("\U0001d400")]), st.integers(1, 40), st.booleans())
@example(text="! " + _pair("\U0001d7ce") + "'s" + "a" * 10, following="", limit=8, scanner=True)
@example(text="x" * 50 + _pair("\U0001d400") + "y" * 50, following="", limit=100, scanner=False)
def test_safe_cut_is_safe_on_text_with_surrogates(text, following, limit, scanner):
    # Encoding repairs surrogates first (`fix_surrogates`): a pair becomes one character, maybe a letter
    # or a digit, and the cut must hold for the repaired text. The scanner's rule read the pair as two
    # "other" code points: it cut "x" * 5000 | pair + "y" * 5000 (one letter run once repaired), and
    # "! " + pair + "'" | "s" (the repaired digit leaves "'s" a contraction).
    if scanner:
        cut = pretokenize._cut_after_pieces(text, 0, min(limit, len(text) - 1), GPT2_PATTERN)
    else:
        with mock.patch.object(pretokenize, "_LOOK_BACK", 2):  # the local rule gives up: the scanner's cut
            cut = safe_cut(text, limit)
    fix = pretokenize.fix_surrogates
    if cut:
        assert split(fix(text[:cut])) + split(fix(text[cut:] + following)) == split(fix(text + following))


def test_long_run_without_a_local_cut_falls_back_to_the_scanner():
    text = "字" * 20_000 + "，" + "字" * 20_000  # one place where classes change, far back
    cut = safe_cut(text, len(text) - 1)
    assert cut == 20_000  # before the comma: the local rule finds nothing in the last 4096 characters
    assert split(text[:cut]) + split(text[cut:]) == split(text)


def test_no_cut_inside_an_allowed_special_token():
    eot = frozenset({"<|endoftext|>"})
    text = "hello <|endoftext|>"
    cut = safe_cut(text, 10, allowed_special=eot)
    assert cut <= 6 or cut == len(text)  # before the special token, or right after it
    assert safe_cut("<|endoftext|>" * 3, 30, allowed_special=eot) == 39  # nothing but special tokens: after them
    assert safe_cut("a<|endoftext|>b c", 16, allowed_special=eot) == 15  # the rules still come first


@pytest.mark.parametrize("doc", ["<|endoftext|>", "ab<|endoftext|>", "字" * 5])
def test_streams_with_few_places_to_cut_take_linear_time(doc):
    # Tens of thousands of short documents between special tokens, or no place to cut at all: chunk_text
    # used to search the whole buffer again at every piece, and took 28 s for 260 kB of "<|endoftext|>".
    # Counted in calls to safe_cut (no timing): a linear number, not one per piece.
    calls = []
    real = pretokenize.safe_cut
    with mock.patch.object(pretokenize, "safe_cut", lambda *a, **k: calls.append(len(a[0])) or real(*a, **k)):
        chunks = list(chunk_text([doc] * 20_000, allowed_special=frozenset({"<|endoftext|>"}), chunk_chars=4096))
    assert "".join(chunks) == doc * 20_000
    assert sum(calls) < 6 * len(doc) * 20_000  # characters searched: a few times the stream, not its square


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


def test_chunk_text_names_the_disallowed_token_encode_names():
    # encode names the longest token at the first place: chunk_text named "<|e", the part of
    # "<|endoftext|>" it had seen, whenever the stream was cut there
    tokens = frozenset({"<|e", "<|endoftext|>"})
    for pieces in (["ab <|e", "ndoftext|> c"], list("ab <|endoftext|> c")):
        with pytest.raises(ValueError, match=re.escape("disallowed special token '<|endoftext|>'")):
            list(chunk_text(pieces, disallowed_special=tokens, chunk_chars=1))


def test_chunk_text_sees_a_disallowed_token_overlapping_an_allowed_one():
    # A cut right after an allowed special token may leave fewer characters than the longest special
    # token; "y!" began before that cut, in "x<|aaaa|>y", and chunk_text let the stream through.
    allowed, disallowed = frozenset({"x<|aaaa|>y"}), frozenset({"y!"})
    with pytest.raises(ValueError, match=re.escape("disallowed special token 'y!'")):
        list(chunk_text(["hello x<|aaaa|>y", "!"], allowed_special=allowed, disallowed_special=disallowed,
                        chunk_chars=1))
    assert "".join(chunk_text(["hello x<|aaaa|>y", "?"], allowed_special=allowed, disallowed_special=disallowed,
                              chunk_chars=1)) == "hello x<|aaaa|>y?"


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
