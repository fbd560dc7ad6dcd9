"""train_bpe against the textbook trainer (npgpt.reference.train), which recounts every pair at every step."""


import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npgpt import Encoding, reference, train_bpe
from npgpt.bpe.pretokenize import GPT2_PATTERN
from npgpt.bpe.train import count_pretokens
from tests.conftest import corpus_file


def check(docs, vocab_size, specials=("<|endoftext|>",), min_frequency=1, pattern=GPT2_PATTERN):
    enc = train_bpe(docs, vocab_size, specials, min_frequency=min_frequency, pattern=pattern, progress=False)
    vocab, merges = reference.train(docs, vocab_size, specials, min_frequency, pattern)
    assert enc.merges == merges
    assert [enc.vocab[i] for i in range(len(vocab))] == vocab
    assert enc.special_tokens == {s: len(vocab) + j for j, s in enumerate(specials)}
    return enc


# Small alphabets: many ties, repeated words, overlapping pairs ("aaaa"), merges that remake bytes.
words = st.sampled_from(["a", "aa", "aaaa", "ab", "ba", "abab", " ab", " b", "é", "éé", "漢", "x'y", "  ", "\n"])
docs = st.lists(st.lists(words, max_size=12).map("".join), min_size=1, max_size=5)


@given(docs, st.integers(256, 300), st.integers(1, 3))
@settings(max_examples=80)
def test_equals_naive_trainer(documents, vocab_size, min_frequency):
    check(documents, vocab_size + 1, min_frequency=min_frequency)


@given(st.lists(st.text("ab <|>e", max_size=30), min_size=1, max_size=4), st.integers(258, 290))
@settings(max_examples=60)
def test_special_tokens_are_never_merged_across(documents, vocab_size):
    docs2 = [d.replace("<|>", "<|endoftext|>") for d in documents]
    enc = check(docs2, vocab_size, specials=("<|endoftext|>", "<|x|>"))
    for text in docs2:
        assert enc.decode(enc.encode(text, allowed_special="all")) == text


@given(docs, st.integers(256, 290))
@settings(max_examples=40)
def test_custom_pattern(documents, vocab_size):
    check(documents, vocab_size + 1, pattern=r"\S+|\s+")


def test_verdict_equals_naive(verdict):
    enc = check([verdict], 600)
    assert enc.decode(enc.encode(verdict)) == verdict


def test_files_streamed_in_chunks(tmp_path, verdict, monkeypatch):
    import npgpt.bpe.train as train

    monkeypatch.setattr(train, "READ_CHARS", 1000)  # many chunks: cuts must not change the counts
    path = tmp_path / "v.txt"
    path.write_text(verdict, encoding="utf-8")
    assert count_pretokens(path, progress=False) == reference.count_pretokens([verdict], ["<|endoftext|>"])
    assert train_bpe([path, str(path)], 400, progress=False).merges == reference.train([verdict, verdict], 400)[1]


def test_docstring_semantics():
    enc = train_bpe(["aaaa"] * 3, 258, special_tokens=(), progress=False)
    assert enc.merges == [(b"a", b"a"), (b"aa", b"aa")]  # "aaaa" -> aa aa -> aaaa
    assert enc.encode("aaaaa") == [257, 97]


def test_result_saves_and_loads(tmp_path, verdict):
    enc = train_bpe([verdict], 500, progress=False)
    for fmt in ("gpt2", "tiktoken"):
        paths = enc.save(tmp_path / fmt, format=fmt)
        loaded = Encoding.from_files(*paths, special_tokens=["<|endoftext|>"])
        assert loaded.encode(verdict) == enc.encode(verdict)
    hf = pytest.importorskip("tokenizers")
    from tokenizers import models, pre_tokenizers

    folder = tmp_path / "gpt2"
    tok = hf.Tokenizer(models.BPE.from_file(str(folder / "vocab.json"), str(folder / "merges.txt")))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    assert tok.encode(verdict[:2000]).ids == enc.encode(verdict[:2000])


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="vocab_size=200 leaves no room"):
        train_bpe(["x"], 200)
    with pytest.raises(FileNotFoundError, match="no such file"):
        train_bpe(tmp_path / "missing.txt", 300)
    with pytest.raises(TypeError, match="bytes"):
        train_bpe(b"abc", 300)
    with pytest.raises(ValueError, match="min_frequency"):
        train_bpe(["x"], 300, min_frequency=0)
    with pytest.raises(TypeError, match="list of str"):
        train_bpe(["x"], 300, special_tokens="<|endoftext|>")


def test_min_frequency_stops_early():
    enc = train_bpe(["ab ab ab cd"], 1000, min_frequency=3, progress=False)
    assert enc.merges == [(b"a", b"b")]  # then (b" ", b"ab") occurs only twice
    assert enc.n_vocab == 256 + 1 + 1


@pytest.mark.slow
def test_corpus_file_equals_naive():
    text = corpus_file("sherlock.txt").read_text(encoding="utf-8")[:150_000]
    check([text], 800)
