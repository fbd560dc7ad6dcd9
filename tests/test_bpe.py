"""`npgpt.Encoding`: golden GPT-2 ids from the seeds, tiktoken's API and its error paths."""

import itertools
import pickle
import re

import numpy as np
import pytest

import npgpt
from npgpt import Encoding, InvalidTokenError
from tests.conftest import corpus_file, corpus_files

SEED_TEXT = "Hello, do you like tea? <|endoftext|> In the sunlit terracesof someunknownPlace."
SEED_IDS = [15496, 11, 466, 345, 588, 8887, 30, 220, 50256, 554, 262, 4252, 18250, 8812, 2114, 1659,
            617, 34680, 27271, 13]


# ------------------------------------------------------------------------------------------
# golden values


def test_seed_special_token_example(enc):
    ids = enc.encode(SEED_TEXT, allowed_special={"<|endoftext|>"})
    assert ids == SEED_IDS
    assert enc.decode(ids) == SEED_TEXT


@pytest.mark.parametrize(("text", "ids"), [
    ("Akwirw ier", [33901, 86, 343, 86, 220, 959]),
    ("unbelievability", [403, 6667, 11203, 1799]),
    ("hello world", [31373, 995]),
    ("", []),
])
def test_seed_golden_ids(enc, text, ids):
    assert enc.encode(text) == ids
    assert enc.decode(ids) == text


def test_verdict(enc, verdict):
    ids = enc.encode(verdict)
    assert len(ids) == 5145
    assert ids[:10] == [40, 367, 2885, 1464, 1807, 3619, 402, 271, 10899, 2138]
    assert enc.decode(ids) == verdict


def test_attributes(enc):
    assert (enc.name, enc.n_vocab, enc.max_token_value, enc.eot_token) == ("gpt2", 50257, 50256, 50256)
    assert enc.special_tokens_set == {"<|endoftext|>"}
    assert repr(enc) == "<Encoding 'gpt2'>"
    assert len(enc.token_byte_values()) == 50256
    assert enc.token_byte_values() == sorted(enc.token_byte_values())
    assert len(enc.merges) == 50000 and enc.merges[0] == (b" ", b"t")
    assert enc.vocab[50256] == b"<|endoftext|>" and enc.vocab[262] == b" the"


def test_get_encoding_alias_and_cache(enc):
    assert npgpt.get_encoding("gpt2") is enc
    r50k = npgpt.get_encoding("r50k_base")
    assert r50k.name == "r50k_base"
    assert r50k.encode("hello world") == [31373, 995]
    assert set(npgpt.list_encoding_names()) >= {"gpt2", "r50k_base"}


def test_unknown_encoding_name():
    with pytest.raises(ValueError, match="cl100k_base"):
        npgpt.get_encoding("cl100k_base")


# ------------------------------------------------------------------------------------------
# special tokens


def test_disallowed_special_raises(enc):
    with pytest.raises(ValueError, match="disallowed special token '<\\|endoftext\\|>'"):
        enc.encode("a <|endoftext|> b")
    with pytest.raises(ValueError):
        enc.encode_to_numpy("<|endoftext|>")


def test_special_as_ordinary_text(enc):
    expected = [27, 91, 437, 1659, 5239, 91, 29]
    assert enc.encode("<|endoftext|>", disallowed_special=()) == expected
    assert enc.encode_ordinary("<|endoftext|>") == expected
    assert enc.encode("<|endoftext|>", allowed_special="all") == [50256]
    assert enc.encode("<|endoftext|><|endoftext|>", allowed_special="all") == [50256, 50256]


def test_allowed_special_must_be_a_set(enc):
    with pytest.raises(TypeError, match="did you mean"):
        enc.encode("x", allowed_special="<|endoftext|>")
    with pytest.raises(TypeError):
        enc.encode("x", disallowed_special=5)


def test_longest_special_token_wins():
    vocab = {i: bytes([i]) for i in range(256)}
    enc = Encoding(vocab, [], ["<|a|>", "<|a|>b", "<|fim|>"])
    assert enc.special_tokens == {"<|a|>": 256, "<|a|>b": 257, "<|fim|>": 258}
    assert enc.encode("<|a|>bc", allowed_special="all") == [257, ord("c")]
    assert enc.encode("<|a|>c", allowed_special="all") == [256, ord("c")]
    # only the shorter one allowed: it is used, and the 'b' is text
    assert enc.encode("<|a|>b", allowed_special={"<|a|>"}, disallowed_special=()) == [256, ord("b")]


def test_special_token_with_known_bytes_keeps_its_id():
    vocab = {i: bytes([i]) for i in range(256)} | {300: b"<eos>"}
    enc = Encoding(vocab, [], ["<eos>", "<pad>"])
    assert enc.special_tokens == {"<eos>": 300, "<pad>": 301}
    assert enc.n_vocab == 302
    assert enc.encode("<eos>", allowed_special="all") == [300]
    assert enc.encode_ordinary("<eos>") == list(b"<eos>")


# ------------------------------------------------------------------------------------------
# other entry points


def test_encode_to_numpy(enc):
    arr = enc.encode_to_numpy("hello world")
    assert arr.dtype == np.uint16 and arr.tolist() == [31373, 995]
    big = Encoding({i: bytes([i]) for i in range(256)}, [], {"<|endoftext|>": 70000})
    assert big.encode_to_numpy("<|endoftext|>a", allowed_special="all").dtype == np.uint32


def test_encode_single_token(enc):
    assert enc.encode_single_token("hello") == 31373
    assert enc.encode_single_token(b" world") == 995
    assert enc.encode_single_token("<|endoftext|>") == 50256
    with pytest.raises(KeyError, match="not a single token"):
        enc.encode_single_token("hello world")
    with pytest.raises(TypeError):
        enc.encode_single_token(5)


def test_batches_equal_serial(enc):
    texts = ["hello world", "", "Привет, мир", "你好，世界", SEED_TEXT.replace("<|endoftext|>", "")] * 5
    expected = [enc.encode_ordinary(t) for t in texts]
    assert enc.encode_ordinary_batch(texts, num_threads=2) == expected
    assert enc.encode_batch(texts, num_threads=3) == expected
    assert enc.decode_batch(expected, num_threads=2) == texts
    with pytest.raises(TypeError, match="single str"):
        enc.encode_batch("hello")
    with pytest.raises(ValueError, match="num_threads"):
        enc.encode_batch(["a"], num_threads=0)


def test_decode_variants(enc):
    ids = enc.encode("hello world")
    assert enc.decode_bytes(ids) == b"hello world"
    assert enc.decode_tokens_bytes(ids) == [b"hello", b" world"]
    assert enc.decode_single_token_bytes(995) == b" world"
    assert enc.decode(np.array(ids, np.uint16)) == "hello world"


def test_decode_with_offsets(enc):
    text, offsets = enc.decode_with_offsets(enc.encode("hello world"))
    assert (text, offsets) == ("hello world", [0, 5])
    # '我' is 3 bytes split across two tokens: the second token starts inside the character
    ids = enc.encode("我非常渴望与人工智能一起工作")
    text, offsets = enc.decode_with_offsets(ids)
    assert text == "我非常渴望与人工智能一起工作"
    assert offsets[:3] == [0, 0, 1]
    assert all(a <= b for a, b in itertools.pairwise(offsets))


def test_decode_partial_utf8(enc):
    ids = enc.encode("我")
    assert len(ids) == 2
    assert enc.decode(ids[:1]) == "\ufffd"
    with pytest.raises(UnicodeDecodeError):
        enc.decode(ids[:1], errors="strict")


@pytest.mark.parametrize("bad", [-1, 50257, 10**9])
def test_decode_unknown_id(enc, bad):
    with pytest.raises(ValueError, match=f"token id {bad} at position 1"):
        enc.decode([31373, bad])
    with pytest.raises(KeyError):  # tiktoken raises KeyError here; ours is both
        enc.decode_single_token_bytes(bad)
    assert issubclass(InvalidTokenError, ValueError)


def test_decode_wrong_types(enc):
    with pytest.raises(TypeError, match=r"1\.5"):
        enc.decode([1, 1.5])
    with pytest.raises(TypeError, match="float"):
        enc.decode(np.array([1.0]))
    with pytest.raises(TypeError):
        enc.decode("hello")



def test_decode_blames_the_bad_id_not_a_bool_before_it(enc):
    # A bool is an int to decode (as to tiktoken): decode([True]) is decode([1]). The error of a list with a
    # bad id named the bool instead ("token ids must be integers, got True at position 0").
    assert enc.decode([True, 995]) == enc.decode([1, 995])
    for ids in ([True, -1], [True] * 2000 + [-1]):
        with pytest.raises(ValueError, match=f"token id -1 at position {len(ids) - 1} "):
            enc.decode(ids)

def test_encode_wrong_types(enc):
    with pytest.raises(TypeError, match="decode bytes first"):
        enc.encode(b"hello")
    with pytest.raises(TypeError, match="NoneType"):
        enc.encode_ordinary(None)


def test_surrogates_like_tiktoken(enc):
    # a surrogate pair spelled as two code points combines; a lone surrogate becomes U+FFFD
    assert enc.encode("\ud83d\ude00") == enc.encode("😀")
    assert enc.decode(enc.encode("a\ud800b")) == "a\ufffdb"


SURROGATE_PIECES = ["\ud800", "a\udc00b", "\ud83d\ude00", "\ud83d", "x\ud83d\ude00"]


@pytest.mark.parametrize("text", SURROGATE_PIECES)
def test_single_piece_and_single_token_refuse_surrogates_as_tiktoken(enc, text):
    # encode repairs surrogates (above); encode_single_piece and encode_single_token take the piece as it is, and
    # a surrogate has no UTF-8: tiktoken raises UnicodeEncodeError. encode_single_piece made a lone one U+FFFD
    # ("\ud800" gave [4210], the id of "\ufffd"), and encode_single_token said KeyError, not a single token.
    for method in (enc.encode_single_piece, enc.encode_single_token):
        with pytest.raises(UnicodeEncodeError, match=r"surrogates not allowed: '\\ud[89a-f].*' has no UTF-8") as info:
            method(text)
        assert info.value.object == text and text[info.value.start] in "\ud800\udc00\ud83d"


def _outcome(method, arg):
    try:
        return method(arg)
    except KeyError:
        return KeyError
    except UnicodeEncodeError as e:
        return UnicodeEncodeError, e.object, e.start, e.end


def test_single_piece_and_single_token_equal_installed_tiktoken(enc):
    tiktoken = pytest.importorskip("tiktoken")
    theirs = tiktoken.Encoding("gpt2", pat_str=enc.pattern, mergeable_ranks=enc._mergeable_ranks,
                               special_tokens=enc.special_tokens)
    for arg in [*SURROGATE_PIECES, "\ufffd", "hello", "hello world", "<|endoftext|>", b"\xed\xa0\x80", b"\xff"]:
        assert _outcome(enc.encode_single_piece, arg) == _outcome(theirs._encode_single_piece, arg), arg
        assert _outcome(enc.encode_single_token, arg) == _outcome(theirs.encode_single_token, arg), arg


def test_encode_iterable_matches_whole(enc, text):
    lines = text.splitlines(keepends=True)
    assert list(enc.encode_iterable(lines, chunk_chars=200)) == enc.encode(text, disallowed_special=())
    text = "it's  \n\n  x're <|endoftext|>" * 50
    for size in (1, 2, 3, 7):
        chunks = [text[i : i + size] for i in range(0, len(text), size)]
        got = list(enc.encode_iterable(chunks, allowed_special="all", chunk_chars=5))
        assert got == enc.encode(text, allowed_special="all"), size
    with pytest.raises(ValueError, match="disallowed"):
        list(enc.encode_iterable(["abc <|endof", "text|> def"], chunk_chars=1))


def test_encode_iterable_on_a_surrogate_pair_written_as_two_code_points():
    # encode repairs the pair into U+1D400, a letter: "x" * 5000 + it + "y" * 5000 is one piece. The
    # stream was cut before the pair (two "other" code points to the scanner), and a vocabulary that
    # merges "x" with it gave other ids.
    enc = npgpt.train_bpe(["x\U0001d400y " * 50], vocab_size=270, progress=False)
    text = "x" * 5000 + "\ud835\udc00" + "y" * 5000 + " end"
    pieces = [text[i : i + 100] for i in range(0, len(text), 100)]
    assert list(enc.encode_iterable(pieces, chunk_chars=4096)) == enc.encode(text)


@pytest.mark.parametrize("size", [7, 100, 1000])
def test_chunk_text_cuts_are_safe(enc, text, size):
    # white space before a word must not end a chunk: "...?\n\n" + "He" (found at size 1000 on the-verdict)
    chunks = list(enc.chunk_text([text[i : i + size] for i in range(0, len(text), size)], chunk_chars=size))
    assert "".join(chunks) == text
    assert [i for c in chunks for i in enc.encode(c)] == enc.encode(text)


def test_encode_iterable_reads_a_file(enc, tmp_path, text):
    path = tmp_path / "v.txt"
    path.write_text(text, encoding="utf-8")
    with open(path, encoding="utf-8") as f:
        assert list(enc.encode_iterable(f, chunk_chars=1000)) == enc.encode(text)


def test_pickle_roundtrip(enc):
    clone = pickle.loads(pickle.dumps(enc))
    assert clone.name == "gpt2" and clone.n_vocab == 50257
    assert clone.encode(SEED_TEXT, allowed_special="all") == SEED_IDS


# ------------------------------------------------------------------------------------------
# building an Encoding by hand


def test_constructor_checks():
    bytes_vocab = {i: bytes([i]) for i in range(256)}
    with pytest.raises(ValueError, match="single-byte"):
        Encoding({i: bytes([i]) for i in range(200)}, [])
    with pytest.raises(ValueError, match="same bytes"):
        Encoding(bytes_vocab | {256: b"a"}, [])
    with pytest.raises(ValueError, match="not in the vocabulary"):
        Encoding(bytes_vocab, [(b"a", b"b")])
    with pytest.raises(ValueError, match="earlier merge"):
        Encoding(bytes_vocab | {256: b"abc"}, [(b"ab", b"c")])
    with pytest.raises(ValueError, match="repeats an earlier merge"):
        Encoding(bytes_vocab | {256: b"ab"}, [(b"a", b"b"), (b"a", b"b")])
    with pytest.raises(TypeError, match="pair of bytes"):
        Encoding(bytes_vocab, [("a", "b")])
    with pytest.raises(ValueError, match="non-negative"):
        Encoding({-1: b"x"}, [])
    with pytest.raises(TypeError, match="list of str"):
        Encoding(bytes_vocab, [], "<|endoftext|>")
    with pytest.raises(ValueError, match="too sparse"):
        Encoding(bytes_vocab, [], {"<|x|>": 10**9})
    with pytest.raises(ValueError, match="does not compile"):
        Encoding(bytes_vocab, [], pattern="(")


def test_non_self_encoding_token_takes_no_shortcut():
    # 'abc' is a token, but BPE of b'abc' merges 'ab' first (rank 0) and (ab, c) is no merge, so
    # the text "abc" must encode as [ab, c], not as the token 'abc'.
    vocab = {i: bytes([i]) for i in range(256)} | {256: b"ab", 257: b"bc", 258: b"abc"}
    enc = Encoding(vocab, [(b"a", b"b"), (b"b", b"c"), (b"a", b"bc")])
    assert enc.encode("abc") == [256, ord("c")]
    assert enc.encode("bc") == [257]


def test_custom_pattern():
    enc = Encoding({i: bytes([i]) for i in range(256)} | {256: b"ab"}, [(b"a", b"b")], pattern=r"\S+|\s+")
    assert enc.encode("ab ab") == [256, 32, 256]


@pytest.mark.parametrize("name", corpus_files())
def test_corpus_roundtrip(enc, name):
    text = corpus_file(name).read_text(encoding="utf-8")
    assert enc.decode(enc.encode(text)) == text


# ------------------------------------------------------------------------------------------
# tiktoken's surface, and constructor arguments that must be refused

BYTES = {i: bytes([i]) for i in range(256)}


def test_encode_single_token_takes_a_special_tokens_bytes(enc):
    assert enc.encode_single_token(b"<|endoftext|>") == 50256 == enc.encode_single_token("<|endoftext|>")
    with pytest.raises(KeyError, match="not a single token"):
        enc.encode_single_token(b"<|endoftext|> ")


def test_disallowed_special_none_means_nothing_disallowed(enc):
    assert enc.encode("<|endoftext|>", disallowed_special=None) == enc.encode("<|endoftext|>", disallowed_special=())
    with pytest.raises(TypeError, match="allowed_special must hold str special tokens, got 50256"):
        enc.encode("hi", allowed_special={50256})


def test_is_special_token_single_piece_and_bytes_batch(enc):
    assert enc.is_special_token(50256) and not enc.is_special_token(262) and not enc.is_special_token(10**9)
    assert enc.encode_single_piece("hello world") == [31373, 995]  # golden, from tiktoken
    assert enc.encode_single_piece("Hello,world") == [15496, 11, 6894]  # no pre-tokenization: ",w" may merge
    assert enc.encode_single_piece(b"\xe6\xbc") == [162, 120]
    assert enc.decode_bytes_batch([[31373, 995], [], [50256]]) == [b"hello world", b"", b"<|endoftext|>"]


def test_out_of_range_ids_raise_keyerror_as_tiktoken(enc):
    with pytest.raises(KeyError):
        enc.decode([50257])
    with pytest.raises(KeyError):
        enc.decode_single_token_bytes(-1)


# Golden values from tiktoken 0.14's encode_with_unstable on GPT-2 (number of completions, one of them).
UNSTABLE = [("hello wor", [31373], 69, [266, 419]), ("hello world, fan", [31373, 995, 11], 123, [277, 392]),
            ("hello world ", [31373, 995], 33135, [220]), ("abc<|endoftext|>de", [39305, 50256], 438, [67, 298]),
            ("漢字", [], 1, [162, 120, 95, 27764, 245]), ("abc<|endoftext|>", [39305, 50256], 0, None)]


@pytest.mark.parametrize(("text", "stable", "n", "one"), UNSTABLE)
def test_encode_with_unstable_matches_tiktoken(enc, text, stable, n, one):
    got_stable, completions = enc.encode_with_unstable(text, allowed_special="all")
    assert got_stable == stable and len(completions) == n
    assert one is None or one in completions
    assert len(set(map(tuple, completions))) == n


def test_encode_with_unstable_equals_installed_tiktoken(enc):
    tiktoken = pytest.importorskip("tiktoken")
    theirs = tiktoken.Encoding("gpt2", pat_str=enc.pattern, mergeable_ranks=enc._mergeable_ranks,
                               special_tokens=enc.special_tokens)
    for text in ["the  ", "x!!", " !", "a\n\n", "naïve", "é", "I said 'hel", "12", "ab\t"]:
        stable, comp = theirs.encode_with_unstable(text)
        got_stable, got = enc.encode_with_unstable(text)
        assert got_stable == stable and set(map(tuple, got)) == set(map(tuple, comp)), text


def test_special_token_ids_must_be_their_own():
    merges = [(b"a", b"b")]
    vocab = BYTES | {256: b"ab"}
    with pytest.raises(ValueError, match=re.escape("special token '<|endoftext|>' has id -1: ids must be")):
        Encoding(vocab, merges, {"<|endoftext|>": -1})
    with pytest.raises(ValueError, match="which vocab uses for b'ab'"):
        Encoding(vocab, merges, {"<|endoftext|>": 256})
    with pytest.raises(ValueError, match="which another special token has"):
        Encoding(vocab, merges, {"<|a|>": 300, "<|b|>": 300})
    with pytest.raises(ValueError, match="special token 'a' is also an ordinary token"):
        Encoding(vocab, merges, ["a"])
    with pytest.raises(ValueError, match="special token 'ab' is also an ordinary token"):
        Encoding(vocab, merges, ["ab"])
    with pytest.raises(TypeError, match="not the str"):
        Encoding(vocab, merges, "<|endoftext|>")
    with pytest.raises(ValueError, match=re.escape(r"special token '<|x\ud800|>' is not text: '\ud800' at 3")):
        Encoding(vocab, merges, ["<|x\ud800|>"])  # (was UnicodeEncodeError, naming no special token)


def test_a_token_no_merge_makes_is_refused():
    with pytest.raises(ValueError, match=r"token 257 \(b'xyz'\) is made by no merge"):
        Encoding(BYTES | {256: b"ab", 257: b"xyz"}, [(b"a", b"b")])


def test_the_first_compile_is_announced_once(tmp_path, capsys, enc):
    from types import SimpleNamespace

    from npgpt.bpe import merge_kernels

    index = tmp_path / "kernel.nbi"
    kernel = SimpleNamespace(_cache=SimpleNamespace(_cache_file=SimpleNamespace(_index_path=str(index))))
    merge_kernels.say_if_compiling(kernel, "the test's kernels")
    assert capsys.readouterr().err == "npgpt: compiling the test's kernels, once (numba caches them on disk)\n"
    index.write_bytes(b"")  # numba has cached it: nothing to say
    merge_kernels.say_if_compiling(kernel, "the test's kernels")
    merge_kernels.say_if_compiling(object(), "kernels of an unknown numba")  # internals differ: silent
    assert capsys.readouterr().err == ""
    enc.encode("compiled and cached by now")  # so the real check finds numba's index and says nothing
    capsys.readouterr()
    merge_kernels.say_if_compiling(merge_kernels.encode_segments, "x")
    assert capsys.readouterr().err == ""
