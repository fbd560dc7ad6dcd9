"""train_bpe against the textbook trainer (npgpt.reference.train), which recounts every pair at every step."""


import re
from pathlib import Path

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


@given(docs, st.integers(256, 300), st.integers(1, 3))
@settings(max_examples=100, deadline=None)
def test_rebuilding_at_every_merge_changes_nothing(documents, vocab_size, min_frequency):
    # The merge loop rebuilds its pair counts, chains and heap from the words when they are full;
    # without room to spare that happens at nearly every merge, and the merges must not change.
    import npgpt.bpe.train as train

    spare, train._SPARE = train._SPARE, False
    try:
        check(documents, vocab_size + 1, min_frequency=min_frequency)
    finally:
        train._SPARE = spare


@given(docs, st.integers(1, 3))
@settings(max_examples=30, deadline=None)
def test_vocabularies_past_16_bit_ids(documents, min_frequency):
    # Past 65,536 tokens the merge loop holds token ids as int32 instead of uint16.
    check(documents, 70_000, min_frequency=min_frequency)


def test_rebuilding_on_a_corpus_file(verdict, monkeypatch):
    import npgpt.bpe.train as train

    enc = train_bpe([verdict], 1000, progress=False)
    monkeypatch.setattr(train, "_SPARE", False)
    assert train_bpe([verdict], 1000, progress=False).merges == enc.merges


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


@pytest.mark.parametrize("pattern", [r"\w*|\s+", r"\p{L}*", r" ?\w*"])
def test_a_pattern_that_matches_empty_text_counts_no_empty_pre_token(tmp_path, pattern):
    # Such a pattern finds an empty match between words. It was counted as a pre-token b"", which the merge
    # loop's table refused: "a counted table of words is inconsistent". An empty piece has no pairs to merge.
    docs = ["low lower lowest newer newest"] * 10
    (tmp_path / "d.txt").write_text(docs[0], encoding="utf-8")
    counts = count_pretokens(docs, pattern=pattern, progress=False)
    assert b"" not in counts and counts == reference.count_pretokens(docs, pattern=pattern)
    assert count_pretokens(files=[tmp_path / "d.txt"], pattern=pattern, progress=False) == {
        w: c // 10 for w, c in counts.items()}
    enc = check(docs, 280, pattern=pattern)
    assert enc.merges == train_bpe(files=[tmp_path / "d.txt"] * 10, vocab_size=280, pattern=pattern,
                                   progress=False).merges

def test_verdict_equals_naive(verdict):
    enc = check([verdict], 600)
    assert enc.decode(enc.encode(verdict)) == verdict


@pytest.mark.parametrize("block", [1, 7, 1000])
def test_files_streamed_in_blocks(tmp_path, verdict, monkeypatch, block):
    import npgpt.bpe.train as train

    monkeypatch.setattr(train, "READ_BYTES", block)  # many blocks: the cuts must not change the counts
    text = verdict[:5000] + "<|endoftext|>\r\n  \n\n" + "é漢\U0001f600 x" * 50 + "<|endoftext|>"
    path = tmp_path / "v.txt"
    path.write_bytes(text.encode())  # bytes exactly: no newline translation
    assert count_pretokens(files=[path], progress=False) == reference.count_pretokens([text], ["<|endoftext|>"])
    merges = train_bpe(files=[path, str(path)], vocab_size=400, progress=False).merges
    assert merges == reference.train([text, text], 400)[1]


# Text cut into blocks anywhere: at special tokens, in runs of white space, inside characters.
pieces = ["a", "ab", " ", "  ", "\n", "\r\n", "'s", "'re", "é", "漢", "\U0001f600", "1", "!!", "<|endoftext|>", "<|x|>",
          "<|end", "\u3000"]
stream_text = st.lists(st.sampled_from(pieces), max_size=40).map("".join)


@given(stream_text, st.integers(1, 9))
@settings(max_examples=60, deadline=None)
def test_block_cuts_are_exact(tmp_path_factory, text, block):
    import npgpt.bpe.train as train

    path = tmp_path_factory.mktemp("cuts") / "t.txt"
    path.write_bytes(text.encode())
    old, train.READ_BYTES = train.READ_BYTES, block
    try:
        got = count_pretokens(files=[path], special_tokens=["<|endoftext|>", "<|x|>"], progress=False)
    finally:
        train.READ_BYTES = old
    assert got == reference.count_pretokens([text], ["<|endoftext|>", "<|x|>"])


def test_threads_give_the_same_counts(tmp_path, verdict):
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"{i}.txt")
        paths[-1].write_text(verdict[i * 5000 : (i + 1) * 5000], encoding="utf-8")
    one = count_pretokens(files=paths, progress=False, num_threads=1)
    assert count_pretokens(files=paths, progress=False, num_threads=2) == one
    assert one == reference.count_pretokens([verdict[i * 5000 : (i + 1) * 5000] for i in range(3)])


def test_docstring_semantics():
    enc = train_bpe(["aaaa"] * 3, 258, special_tokens=(), progress=False)
    assert enc.merges == [(b"a", b"a"), (b"aa", b"aa")]  # "aaaa" -> aa aa -> aaaa
    assert enc.encode("aaaaa") == [257, 97]


@pytest.mark.parametrize("specials", [(), ("<|endoftext|>",), ("<|endoftext|>", "<|pad|>")])
def test_result_equals_a_checked_encoding(verdict, specials):
    # train_bpe builds its Encoding without Encoding's check of the vocabulary (it is consistent by
    # construction): the result must be the one the checked constructor makes, down to dict order.
    enc = train_bpe([verdict], 700, specials, progress=False)
    n_tokens = enc.n_vocab - len(specials)
    checked = Encoding({i: enc.decode_single_token_bytes(i) for i in range(n_tokens)}, enc.merges,
                       {s: n_tokens + j for j, s in enumerate(specials)})
    for attr in ("_encoder", "_merges", "_special_tokens", "_decoder", "_decode_list", "max_token_value"):
        assert getattr(enc, attr) == getattr(checked, attr), attr
        if isinstance(getattr(enc, attr), dict):
            assert list(getattr(enc, attr)) == list(getattr(checked, attr)), attr
    assert enc.name == "trained" and enc._pat_str == checked._pat_str


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
    with pytest.raises(FileNotFoundError, match=r"missing\.txt"):
        train_bpe(files=[str(tmp_path / "missing.txt")], vocab_size=300)
    with pytest.raises(TypeError, match="bytes"):
        train_bpe(b"abc", 300)
    with pytest.raises(TypeError, match="vocab_size"):
        train_bpe(["x"])
    with pytest.raises(ValueError, match="min_frequency"):
        train_bpe(["x"], 300, min_frequency=0)
    with pytest.raises(TypeError, match="list of str"):
        train_bpe(["x"], 300, special_tokens="<|endoftext|>")
    with pytest.raises(ValueError, match="too large"):
        train_bpe(["x"], 3_000_000_000)
    with pytest.raises(ValueError, match="num_threads"):
        train_bpe(["x"], 300, num_threads=-1)
    with pytest.raises(ValueError, match="num_threads"):
        train_bpe(["x"], 300, num_threads=0)
    # a special token of one byte is already a token: say so (not "vocab lacks 1 of the 256 single-byte tokens")
    with pytest.raises(ValueError, match="special token 'a' is a single byte"):
        train_bpe(["abc"], 300, special_tokens=["a"])
    with pytest.raises(ValueError, match="empty"):
        train_bpe(["abc"], 300, special_tokens=[""])
    with pytest.raises(ValueError, match=re.escape(r"special token '\ud800<|x|>' is not text")):
        train_bpe(["abc"], 300, special_tokens=["\ud800<|x|>"])  # (was UnicodeEncodeError from a regex helper)


def test_a_str_is_always_a_document(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "typo.txt").write_text("xyxyxy " * 20, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    # a str in `texts` is text, even when a file of that name exists
    assert count_pretokens(["data/typo.txt"], progress=False) == {b"data": 1, b"/": 1, b"typo": 1, b".": 1,
                                                                   b"txt": 1}
    with pytest.raises(TypeError, match="not one str"):  # a bare str: a path or a document? refuse
        train_bpe("data/typo.txt", 300)
    from_file = train_bpe(files=["data/typo.txt"], vocab_size=259, progress=False)
    assert from_file.merges == [(b"x", b"y"), (b"xy", b"xy")]
    assert train_bpe([Path("data/typo.txt")], 259, progress=False).merges == from_file.merges


def test_non_utf8_file_names_file_and_offset(tmp_path, monkeypatch):
    import npgpt.bpe.train as train

    path = tmp_path / "latin1.txt"
    path.write_bytes(b"caf\xc3\xa9 " * 300 + b"caf\xe9 and more")
    for block in (1, 5, 1 << 20):
        monkeypatch.setattr(train, "READ_BYTES", block)
        with pytest.raises(UnicodeDecodeError, match=r"invalid continuation byte at byte 1803 of .*latin1.txt$"):
            train_bpe(files=[path], vocab_size=300, progress=False)
    path.write_bytes(b"abc \xe6\xbc")  # a character cut short by the end of the file
    with pytest.raises(UnicodeDecodeError, match="unexpected end of data at byte 4 of") as info:
        count_pretokens(files=[path], progress=False)
    assert (info.value.path, info.value.offset) == (path, 4)  # as npgpt tokenize's error (FileDecodeError)


def test_min_frequency_stops_early():
    enc = train_bpe(["ab ab ab cd"], 1000, min_frequency=3, progress=False)
    assert enc.merges == [(b"a", b"b")]  # then (b" ", b"ab") occurs only twice
    assert enc.n_vocab == 256 + 1 + 1



def test_a_min_frequency_past_any_count_learns_no_merge(tmp_path):
    # 2**63 and more overflowed the kernel's int64 argument after the counting: OverflowError, or numba's
    # TypingError and a traceback from the CLI. No pair occurs that often: no merge, as for 10**6 here.
    for huge in (10**6, 2**62, 2**63, 10**30):
        enc = train_bpe(["ab ab ab cd"], 1000, min_frequency=huge, progress=False)
        assert enc.merges == [] and enc.n_vocab == 257
    from npgpt.cli import main

    (tmp_path / "a.txt").write_text("ab ab ab cd", encoding="utf-8")
    assert main(["train", str(tmp_path / "a.txt"), "--vocab-size", "300", "--out", str(tmp_path / "v"),
                 "--min-frequency", "99999999999999999999"]) == 0

@pytest.mark.slow
def test_corpus_file_equals_naive():
    text = corpus_file("sherlock.txt").read_text(encoding="utf-8")[:150_000]
    check([text], 800)
