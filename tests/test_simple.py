"""Chapter 2.2-2.4 tokenizers, against the seed notebook's printed values (seeds/002)."""

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import npgpt
from npgpt.simple import SimpleTokenizerV1, SimpleTokenizerV2, UnknownWordError, build_vocab, split_words

SEED_V1_TEXT = """"It's the last he painted, you know,"
           Mrs. Gisburn said with pardonable pride."""
SEED_V1_IDS = [1, 56, 2, 850, 988, 602, 533, 746, 5, 1126, 596, 5, 1, 67, 7, 38, 851, 1108, 754, 793, 7]
SEED_V2_IDS = [1131, 5, 355, 1126, 628, 975, 7, 1131, 999, 6, 115, 1131, 10, 1130, 55, 988, 956,
               984, 722, 988, 1131, 7]


def test_verdict_word_counts(verdict):
    words = split_words(verdict)
    assert len(words) == 4690
    assert words[:10] == ["I", "HAD", "always", "thought", "Jack", "Gisburn", "rather", "a", "cheap", "genius"]
    assert len(build_vocab(words)) == 1130
    assert len(build_vocab(verdict, special_tokens=["<|endoftext|>", "<|unk|>"])) == 1132


def test_seed_vocab_head(verdict):
    vocab = build_vocab(verdict)
    head = list(vocab.items())[:7]
    assert head == [("!", 0), ('"', 1), ("'", 2), ("(", 3), (")", 4), (",", 5), ("--", 6)]
    assert vocab["Hermia"] == 50


def test_v1_seed_roundtrip(verdict):
    tok = npgpt.SimpleTokenizerV1(build_vocab(verdict))
    ids = tok.encode(SEED_V1_TEXT)
    assert ids == SEED_V1_IDS
    assert tok.decode(ids) == '" It\' s the last he painted, you know," Mrs. Gisburn said with pardonable pride.'


def test_v1_unknown_words_named(verdict):
    tok = SimpleTokenizerV1(build_vocab(verdict))
    with pytest.raises(KeyError) as info:
        tok.encode("Hello, do you like tea. Is this-- a test?")
    assert isinstance(info.value, UnknownWordError)
    assert info.value.words == ["Hello", "Is", "test"]
    assert "'Hello'" in str(info.value) and "'test'" in str(info.value)


def test_v2_seed_example(verdict):
    tok = npgpt.SimpleTokenizerV2(build_vocab(verdict, special_tokens=["<|endoftext|>", "<|unk|>"]))
    text1, text2 = "Hello, do you like tea. Is this-- a test?", "In the sunlit terraces of the palace."
    text = " <|endoftext|> ".join((text1, text2))
    ids = tok.encode(text)
    assert ids == SEED_V2_IDS
    assert tok.decode(ids) == (
        "<|unk|>, do you like tea. <|unk|> this -- a <|unk|>? <|endoftext|> In the sunlit terraces of the <|unk|>."
    )


def test_v2_needs_unk():
    with pytest.raises(ValueError, match="<\\|unk\\|>"):
        SimpleTokenizerV2(build_vocab("a b"))


def test_decode_unknown_id_is_named():
    tok = SimpleTokenizerV1(build_vocab("a b"))
    with pytest.raises(KeyError, match="id 7"):
        tok.decode([0, 7])



def test_decode_and_vocabularies_refuse_what_is_not_an_id_or_a_word():
    # decode ran int() on each id: decode("12") was the words of ids 1 and 2, decode([1.7]) the word of id 1.
    # build_vocab(b"abc") made the vocabulary {97: 0, 98: 1, 99: 2}, and a vocab of str ids failed only later.
    tok = SimpleTokenizerV1(build_vocab("a b c d"))
    assert tok.decode([1, True, np.int64(2), np.uint8(3)]) == "b b c d"
    for bad, named in (("12", "str"), (b"12", "bytes"), ([1.7], "1.7"), (["1"], "'1'"), ([None], "None"),
                       (np.array([1.0]), "float64")):
        with pytest.raises(TypeError, match=re.escape(named)):
            tok.decode(bad)
    for bad, named in ((b"abc", "bytes"), ([1, 2], "1"), (["a", None], "None")):
        with pytest.raises(TypeError, match=re.escape(named)):
            build_vocab(bad)
    for bad, named in (({"a": "0"}, "'0'"), ({"a": 0.0}, "0.0"), ({1: 0}, "1")):
        with pytest.raises(TypeError, match=re.escape(named)):
            SimpleTokenizerV1(bad)

def test_split_words_type_error():
    with pytest.raises(TypeError, match="bytes"):
        split_words(b"abc")


def test_duplicate_ids_rejected():
    with pytest.raises(ValueError, match="same id"):
        SimpleTokenizerV1({"a": 0, "b": 0})


@given(st.lists(st.sampled_from(["the", "cat", "sat", ",", ".", "--", "?", "Mr", "(", ")"]), max_size=30))
def test_v1_encode_decode_encode_is_stable(words):
    # decode loses white space, but encoding the decoded text gives the same ids back
    tok = SimpleTokenizerV1(build_vocab(["the", "cat", "sat", ",", ".", "--", "?", "Mr", "(", ")"]))
    ids = tok.encode(" ".join(words))
    assert tok.encode(tok.decode(ids)) == ids


@given(st.text(max_size=200))
def test_split_words_has_no_whitespace_or_empties(text):
    words = split_words(text)
    assert all(w and w == w.strip() for w in words)
    assert "".join(words) == "".join(text.split())
