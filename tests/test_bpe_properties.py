"""Hypothesis: round trips, and the numba path equal to the textbook encoder (npgpt/reference.py)."""

import random
import re
from unittest import mock

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from npgpt import Encoding
from npgpt.reference import ReferenceEncoder, bpe
from tests.conftest import corpus_file, corpus_files
from tests.random_vocab import random_merges

# All of Unicode, surrogates excluded (they are not text; see test_surrogates_like_tiktoken), plus
# text built from the characters where GPT-2's pattern has its corner cases.
unicode_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=300)
tricky = st.lists(
    st.sampled_from([*list("aZ7 \t\n\r'’sdmltvre\x85\u2028\u3000\xa0é漢😀́-.!"), "'s", "'re", "\r\n"]),
    max_size=120,
).map("".join)
texts = st.one_of(unicode_text, tricky)


@given(texts)
def test_roundtrip(enc, text):
    ids = enc.encode(text, disallowed_special=())
    assert enc.decode(ids) == text
    assert enc.decode_bytes(ids) == text.encode("utf-8")
    assert enc.encode_to_numpy(text, disallowed_special=()).tolist() == ids
    assert enc.encode_ordinary(text) == ids


@given(st.lists(texts, max_size=6), st.integers(1, 4))
def test_batches_equal_serial(enc, docs, threads):
    serial = [enc.encode_ordinary(d) for d in docs]
    assert enc.encode_ordinary_batch(docs, num_threads=threads) == serial
    assert [a.tolist() for a in enc.encode_batch_to_numpy(docs, num_threads=threads)] == serial
    assert enc.decode_batch(serial, num_threads=threads) == docs


@given(st.lists(st.one_of(texts, st.lists(texts, max_size=30).map(" ".join)), max_size=6), st.integers(2, 4),
       st.integers(1, 64), st.booleans())
def test_batches_cut_in_chunks_equal_serial(enc, docs, threads, min_chunk, special):
    # chunks of a few bytes, so that every text is cut many times and the threads share its chunks
    if special:
        docs = [d.replace(" ", "<|endoftext|>", 1) for d in docs]
    serial = [enc.encode(d, allowed_special="all") for d in docs]
    with mock.patch("npgpt.bpe.encoding._MIN_CHUNK", min_chunk):
        got = enc.encode_batch_to_numpy(docs, num_threads=threads, allowed_special="all")
    assert [a.tolist() for a in got] == serial
    assert all(a.dtype == np.uint16 for a in got)


@given(st.lists(st.one_of(texts, st.text(max_size=60), st.sampled_from(["<|endoftext|>", "<|endoftext", "a\ud800b"])),
                max_size=8).map("".join), st.integers(1, 64), st.integers(1, 3), st.booleans(),
       st.sampled_from(["all", (), {""}, {"\ud83d"}, {"\ud83d\ude00", "<|endoftext|>"}, {"😀"}, {"a", "é"}]))
@example(text="ж<|endoftext|>", long_text=1, threads=2, special=False, disallowed="all")
@example(text="\ud83d\ude00 \ud800", long_text=1, threads=2, special=False, disallowed="all")
# tokens the bytes cannot show: "" is in every text (refused, as by `in` and tiktoken), and a surrogate
# has no UTF-8 (found in the str, or not at all: the long path raised UnicodeEncodeError on every text)
@example(text="hello", long_text=1, threads=1, special=False, disallowed={""})
@example(text="hello", long_text=1, threads=1, special=False, disallowed={"\ud83d"})
@example(text="a\ud83d\ude00b", long_text=1, threads=2, special=False, disallowed={"\ud83d"})
@example(text="a\ud83d\ude00b", long_text=1, threads=2, special=False, disallowed={"😀"})
def test_long_text_path_equals_short(enc, text, long_text, threads, special, disallowed):
    # `_long_utf8` (the kernels' UTF-8 and special-token search, no GIL) against `str.encode` and `in`:
    # the same ids, the same error, whatever the text, surrogates and special tokens included
    sets = {"allowed_special": "all"} if special else {"disallowed_special": disallowed}

    def run(limit):
        with mock.patch("npgpt.bpe.encoding._LONG_TEXT", limit), mock.patch("npgpt.bpe.encoding._MIN_CHUNK", 2):
            try:
                batch = enc.encode_batch_to_numpy([text, text[::-1]], num_threads=threads, **sets)
                return enc.encode_to_numpy(text, **sets).tolist(), [a.tolist() for a in batch]
            except ValueError as e:
                return str(e)

    assert run(long_text) == run(2**62)


@pytest.mark.parametrize("threads", [2, 3])
def test_corpus_batches_equal_one_thread(enc, threads):
    docs = [corpus_file(name).read_text(encoding="utf-8") for name in corpus_files()]
    one = enc.encode_batch_to_numpy(docs, num_threads=1)
    got = enc.encode_batch_to_numpy(docs, num_threads=threads)
    assert all(np.array_equal(a, b) for a, b in zip(got, one, strict=True))
    whole = "<|endoftext|>".join(docs)  # one text, on all threads
    assert np.array_equal(enc.encode_batch_to_numpy([whole], num_threads=threads, allowed_special="all")[0],
                          enc.encode_to_numpy(whole, allowed_special="all"))


def test_batch_errors_are_the_first_texts_as_on_one_thread(enc):
    docs = ["fine " * 50_000, "a <|endoftext|> b", "fine", "<|fim|> <|endoftext|>", 5]
    for threads in (1, 2, 3):
        with pytest.raises(TypeError, match="text must be str, got int"):
            enc.encode_batch_to_numpy(docs, num_threads=threads)
        with pytest.raises(ValueError, match=re.escape("disallowed special token '<|endoftext|>'")):
            enc.encode_batch_to_numpy(docs[:4], num_threads=threads)
    with pytest.raises(ValueError, match="num_threads"):
        enc.encode_batch_to_numpy(["a"], num_threads=True)
    assert enc.encode_batch_to_numpy([], num_threads=2) == []
    assert [a.tolist() for a in enc.encode_batch_to_numpy(["", "a"], num_threads=2)] == [[], [64]]


def test_batch_threads_no_more_than_chunks_and_numpy_ints_accepted(enc):
    from npgpt.bpe import encoding

    started = []
    real = encoding._Batch.__init__

    def spy(self, enc_, texts, allowed, disallowed, threads):
        started.append(threads)
        real(self, enc_, texts, allowed, disallowed, threads)

    texts = ["hello world " * 20_000] * 2  # 480,000 characters: at most 7 chunks of 64k, and 2 texts
    one = [a.tolist() for a in enc.encode_batch_to_numpy(texts, num_threads=1)]
    with mock.patch.object(encoding._Batch, "__init__", spy):
        assert [a.tolist() for a in enc.encode_batch_to_numpy(texts, num_threads=1000)] == one
        assert [a.tolist() for a in enc.encode_batch_to_numpy(texts, num_threads=np.int64(2))] == one
    assert started == [9, 2]  # not 999 idle threads (tiktoken's pool, too, starts a thread per task at most)
    with pytest.raises(ValueError, match="num_threads"):
        enc.encode_batch_to_numpy(texts, num_threads=np.int64(0))


@given(texts, st.lists(st.integers(1, 40), min_size=1, max_size=20), st.booleans(), st.integers(1, 64))
@example(text='get it?"\n\nHe answered  \n\n\tslowly: x\'re', sizes=[9], with_special=False, chunk_chars=8)
def test_encode_iterable_equals_encode(enc, text, sizes, with_special, chunk_chars):
    if with_special:
        text = text + "<|endoftext|>" + text[: len(text) // 2]
    chunks, i = [], 0
    while i < len(text):
        n = sizes[len(chunks) % len(sizes)]
        chunks.append(text[i : i + n])
        i += n
    got = list(enc.encode_iterable(chunks, allowed_special="all", chunk_chars=chunk_chars))
    assert got == enc.encode(text, allowed_special="all")


# Special tokens that meet: a prefix of another ("<|e" of "<|endoftext|>"), one overlapping another's
# end ("y!" after "x<|aaaa|>y"), non-ASCII ones, ones that come with their "😀" as a surrogate pair (which
# encoding repairs: they are special tokens then); streams cut anywhere.
_MANY_SPECIALS = ["<|endoftext|>", "<|e", "<|end|>", "x<|aaaaaaaaaaaaa|>y", "y!", "«spé»", "😀tok", "<x1😀>"]
_stream_parts = st.lists(st.sampled_from([*_MANY_SPECIALS, "a", " ", "\n", "é", "字", "'s", "1", ",", "<|", "|>",
                                          "ndoftext", "tok", "\ud800", "\ud83d", "\ude00", "\ud83d\ude00tok",
                                          "<x1\ud83d\ude00>", "<x1\ud83d"]), max_size=30).map("".join)


@pytest.fixture(scope="module")
def many_specials(enc):
    return Encoding(enc.vocab, enc.merges, special_tokens=_MANY_SPECIALS)


@given(_stream_parts, st.lists(st.integers(1, 9), min_size=1, max_size=10), st.integers(1, 16),
       st.sampled_from([{}, {"allowed_special": "all"}, {"disallowed_special": ()},
                        {"allowed_special": {"x<|aaaaaaaaaaaaa|>y"}}, {"allowed_special": {"<|e", "y!"}}]))
@example(text="ab <|endoftext|> c", sizes=[1], chunk_chars=1, sets={})  # named "<|e", seen first
@example(text="hello world and more <x1\ud83d\ude00> world more words", sizes=[1], chunk_chars=5,
         sets={"allowed_special": "all"})  # the special token comes with "😀" as a surrogate pair
@example(text="hello x<|aaaaaaaaaaaaa|>y!", sizes=[25, 1], chunk_chars=1,  # "y!" overlaps the allowed one
         sets={"allowed_special": {"x<|aaaaaaaaaaaaa|>y"}})
def test_encode_iterable_equals_encode_with_many_special_tokens(many_specials, text, sizes, chunk_chars, sets):
    chunks, i = [], 0
    while i < len(text):
        n = sizes[len(chunks) % len(sizes)]
        chunks.append(text[i : i + n])
        i += n

    def run(encode):
        try:
            return encode()
        except ValueError as e:  # the same error too, naming the same special token
            return str(e)

    assert run(lambda: list(many_specials.encode_iterable(chunks, chunk_chars=chunk_chars, **sets))) == \
        run(lambda: many_specials.encode(text, **sets))


@pytest.mark.parametrize("fill", ["a ", "é ", "ж ", "😀 "])  # each storage width of CPython's str
def test_long_text_path_equals_short_with_many_special_tokens(many_specials, fill):
    # Past _LONG_TEXT characters the special tokens are searched in the UTF-8 bytes (`_long_utf8`): the
    # same ids and the same error as `in` on the str, whichever token comes first, at either end or
    # across 65,536, whatever the width, with the shorter of two tokens at the same place or not.
    body = fill * (1 << 15)
    for token in [*_MANY_SPECIALS, "<|endoftext|", "\ud83d\ude00tok", "<|e" + "\ud800"]:
        for text in (token + body, body + token, body[: (1 << 16) - 3] + token + body[(1 << 16) - 3 :]):
            for sets in ({}, {"disallowed_special": ()}, {"disallowed_special": {"<|e", "y!"}}):
                def run(limit, text=text, sets=sets):
                    with mock.patch("npgpt.bpe.encoding._LONG_TEXT", limit):
                        try:
                            batch = many_specials.encode_batch_to_numpy([text, "x"], num_threads=2, **sets)
                            return many_specials.encode_to_numpy(text, **sets).tolist(), batch[0].tolist()
                        except ValueError as e:
                            return str(e)

                assert run(1 << 16) == run(2**62), (token, sets)


@given(texts)
def test_equals_reference_encoder(enc, ref, text):
    assert enc.encode_ordinary(text) == ref.encode_ordinary(text)


@given(st.lists(st.sampled_from(["a", " b", "<|endoftext|>", "é", "\n"]), max_size=20))
def test_special_tokens_equal_reference(enc, ref, parts):
    text = "".join(parts)
    assert enc.encode(text, allowed_special="all") == ref.encode(text, {"<|endoftext|>"})


@given(st.integers(0, 2**32 - 1), st.integers(1, 120), st.text("abcd ", max_size=400))
def test_random_vocabularies_equal_reference(seed, n_merges, text):
    """Vocabularies unlike GPT-2's: tokens that do not encode to themselves, long pieces (heap path)."""
    vocab, merges = random_merges(random.Random(seed), b"abcd ", n_merges)
    enc = Encoding(vocab, merges, pattern=r"\S+|\s+")
    ref = ReferenceEncoder(vocab, merges, pattern=r"\S+|\s+")
    assert enc.encode_ordinary(text) == ref.encode_ordinary(text)


@given(st.integers(0, 2**32 - 1), st.integers(65, 600))
@example(seed=6900, length=241)  # two pairs make the same bytes: merging one at a time would differ
def test_long_pieces_take_the_heap_path(seed, length):
    rng = random.Random(seed)
    vocab, merges = random_merges(rng, b"ab", 60)
    text = "".join(rng.choice("ab") for _ in range(length))
    enc = Encoding(vocab, merges, pattern=r"\S+")
    ranks = {p: r for r, p in reversed(list(enumerate(merges)))}
    inverse = {b: i for i, b in vocab.items()}
    assert enc.encode_ordinary(text) == [inverse[b] for b in bpe(text.encode(), ranks)]


def test_piece_cache_stays_bounded_and_correct(enc, ref):
    from npgpt.bpe.merge_kernels import PieceCaches

    enc._get_tables()
    caches, saved = PieceCaches(enc._get_tables().tokens, pool_bytes=64, pool_ids=16), enc._caches  # tiny pools
    enc._caches = caches
    try:
        rng = np.random.default_rng(0)
        words = ["".join(rng.choice(list("qxzjkv"), size=rng.integers(3, 20))) for _ in range(300)]
        text = " ".join(words * 3)
        assert enc.encode_ordinary(text) == ref.encode_ordinary(text)
        assert caches.current is not None and caches.current.state[3] > 0  # emptied and refilled, in place
        assert caches.spare is None  # one thread: never a second cache
        assert enc.encode_ordinary(text) == ref.encode_ordinary(text)
    finally:
        enc._caches = saved


def test_no_quadratic_blowup(enc, ref):
    # correctness of the long-piece path on GPT-2 (speed is measured in bench/encode.py)
    for text in ("a" * 5000, "ab" * 3000, "".join(random.Random(1).choice("xyzXYZ") for _ in range(4000))):
        assert enc.encode(text) == ref.encode_ordinary(text)


@pytest.mark.parametrize("name", corpus_files())
def test_corpus_equals_reference(enc, ref, name):
    text = corpus_file(name).read_text(encoding="utf-8")
    assert enc.encode_ordinary(text) == ref.encode_ordinary(text)


@given(st.lists(st.integers(0, 50256), min_size=1024, max_size=2000))
def test_long_decode_equals_token_bytes(enc, ids):
    """Long inputs take the numba decoder; short ones the Python join. Same bytes."""
    expected = b"".join(enc.decode_tokens_bytes(ids))
    assert enc.decode_bytes(ids) == expected
    assert enc.decode_bytes(np.array(ids, np.uint16)) == expected
    assert enc.decode(ids) == expected.decode("utf-8", errors="replace")


def test_long_decode_grows_its_buffer(enc):
    """The decoder guesses 4 bytes per id; GPT-2's longest tokens (up to 128 bytes) overflow that."""
    longest = max(range(50256), key=lambda i: len(enc.decode_single_token_bytes(i)))
    ids = [longest] * 3000 + [31373, 995] * 600
    assert enc.decode_bytes(ids) == b"".join(enc.decode_tokens_bytes(ids))
    assert enc.decode_bytes(np.array(ids[::-1])) == b"".join(enc.decode_tokens_bytes(ids[::-1]))


def test_long_decode_of_long_tokens():
    """Tokens of 512 and 131,072 bytes: the decoder's table packs longer lengths, and its buffer grows."""
    merges = [(b"a", b"b")] + [(b"ab" * 2**k, b"ab" * 2**k) for k in range(8)]
    merges += [(b"x", b"x")] + [(b"x" * 2**k, b"x" * 2**k) for k in range(1, 17)]
    vocab = {i: bytes([i]) for i in range(256)} | {256 + r: a + b for r, (a, b) in enumerate(merges)}
    enc = Encoding(vocab, merges, special_tokens=())
    long_ab, long_x = enc.encode_single_token(b"ab" * 256), enc.encode_single_token(b"x" * 2**17)
    ids = [long_ab, 97, long_x, 98] * 600
    assert enc.decode_bytes(ids) == b"".join(vocab[i] for i in ids)


@pytest.mark.parametrize("bad", [50257, -1, 2**70])
def test_long_decode_names_the_bad_id(enc, bad):
    ids = [31373] * 2000
    ids[1500] = bad
    with pytest.raises(ValueError, match=f"token id {bad} at position 1500"):
        enc.decode(ids)
    if abs(bad) < 2**62:
        with pytest.raises(ValueError, match="at position 1500"):
            enc.decode(np.array(ids, np.int64))


def test_long_decode_refuses_non_integers(enc):
    with pytest.raises(TypeError, match="at position 3"):
        enc.decode([1, 2, 3, 1.5] + [1] * 2000)
    with pytest.raises(TypeError):
        enc.decode(np.ones(2000, np.float64))
