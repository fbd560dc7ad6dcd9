"""The plain tier: a new Encoding's first texts run on `npgpt.reference`'s algorithm, exactly.

The rest of the suite sets `PLAIN_BUDGET` to 0 (see conftest.py), so that it holds the numba kernels
to the references from the first text. Here each Encoding gets a budget again, and both tiers are
held equal: on GPT-2 (specials included), on random vocabularies with another pattern, and across the
switch from one tier to the other.
"""

import random
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import npgpt
from npgpt import Encoding
from npgpt.bpe import encoding as encoding_module
from npgpt.bpe import vocab_files
from npgpt.bpe.pretokenize import GPT2_PATTERN
from npgpt.reference import ReferenceEncoder, split
from tests.random_vocab import random_merges
from tests.test_bpe_properties import texts


def with_budget(enc: Encoding, budget: int) -> Encoding:
    """A fresh copy of `enc`'s vocabulary whose plain tier may encode `budget` bytes."""
    fresh = Encoding._from_vocabulary(vocab_files.Vocabulary(enc._encoder, enc._merges, enc._special_tokens,
                                                             enc._decoder), enc.pattern, enc.name)
    fresh._plain_budget = budget
    return fresh


@pytest.fixture(scope="module")
def plain(enc) -> Encoding:
    return with_budget(enc, 10**12)


def longest_piece(text: str, pattern: str = GPT2_PATTERN) -> int:
    return max((len(p.encode("utf-8", "surrogatepass")) for p in split(text, pattern)), default=0)


@given(texts)
def test_plain_tier_equals_kernels(enc, plain, text):
    assume(longest_piece(text) <= encoding_module.PLAIN_MAX_PIECE)  # longer: test_a_long_piece_goes_to_the_kernels
    assert plain.encode_ordinary(text) == enc.encode_ordinary(text)
    assert plain.encode_to_numpy(text).dtype == enc.encode_to_numpy(text).dtype
    assert plain._tables is None  # the plain tier did the work, not the kernels


@given(st.lists(st.sampled_from(["a", " b", "<|endoftext|>", "<|endoftext", "é", "\n", " 12"]), max_size=20))
def test_plain_tier_special_tokens(enc, plain, parts):
    text = "".join(parts)
    assume(longest_piece(text) <= encoding_module.PLAIN_MAX_PIECE)
    assert plain.encode(text, allowed_special="all") == enc.encode(text, allowed_special="all")
    assert plain.encode(text, disallowed_special=()) == enc.encode(text, disallowed_special=())
    if "<|endoftext|>" in text:
        with pytest.raises(ValueError, match="endoftext"):
            plain.encode(text)
    assert plain._tables is None


@given(st.integers(0, 2**32 - 1), st.integers(1, 120), st.text("abcd ", max_size=200))
def test_plain_tier_on_random_vocabularies(seed, n_merges, text):
    """Vocabularies unlike GPT-2's (tokens that do not encode to themselves), another pattern."""
    vocab, merges = random_merges(random.Random(seed), b"abcd ", n_merges)
    kernels = Encoding(vocab, merges, pattern=r"\S+|\s+")
    plain = with_budget(kernels, 10**12)  # a piece of more than PLAIN_MAX_PIECE bytes goes to the kernels
    ref = ReferenceEncoder(vocab, merges, pattern=r"\S+|\s+")
    assert plain.encode_ordinary(text) == kernels.encode_ordinary(text) == ref.encode_ordinary(text)


def test_a_long_piece_goes_to_the_kernels(enc):
    fresh = with_budget(enc, 10**6)
    text = "x" * (encoding_module.PLAIN_MAX_PIECE + 1)
    assert fresh.encode(text) == enc.encode(text)
    assert fresh._tables is not None and fresh._plain_budget == 0  # and they stay in charge


def test_the_kernels_take_over_when_the_budget_is_spent(enc, text):
    fresh = with_budget(enc, 10_000)
    lines = [line for line in text.splitlines() if 0 < len(line) <= 200][:300]
    got = [fresh.encode(line) for line in lines]
    assert got == [enc.encode(line) for line in lines]
    assert fresh._tables is not None  # 300 lines are more than 10 kB: the kernels took over
    assert fresh._plain_budget < 200  # not before the budget was (nearly) spent


def test_default_budget_is_positive():
    assert encoding_module.PLAIN_BUDGET == 0  # as conftest.py set it for the rest of the suite
    out = subprocess.run([sys.executable, "-c", "from npgpt.bpe import encoding; print(encoding.PLAIN_BUDGET)"],
                         capture_output=True, text=True, check=True)
    assert int(out.stdout) > 0


def test_a_first_short_encode_does_not_load_numba():
    """The start-up promise: import, get_encoding and a short encode never import numba."""
    code = ("import sys, npgpt; e = npgpt.get_encoding('gpt2'); ids = e.encode('hello world'); "
            "assert ids == [31373, 995], ids; print('numba' in sys.modules, e._tables is None)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_exact_gpt2_files_read_fast_equal_the_checked_path():
    paths = vocab_files.find_gpt2_files()
    fast = vocab_files.read_gpt2_vocabulary(paths)
    vocab, merges = vocab_files.read_gpt2(paths)
    slow = vocab_files.check_vocabulary(vocab, merges, {"<|endoftext|>": 50256})
    assert fast == slow
    assert list(fast.encoder.items()) == list(slow.encoder.items())  # the same order too


def test_other_spellings_take_the_checked_path(enc, tmp_path):
    """Files that are not OpenAI's exact bytes are read and checked in full (here: a merges file cut short)."""
    vocab_path, merges_path = enc.save(tmp_path)
    assert vocab_files.read_gpt2_vocabulary((vocab_path, merges_path)).merges == enc.merges
    lines = merges_path.read_text(encoding="utf-8").splitlines()
    merges_path.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not GPT-2's vocabulary"):
        vocab_files.read_gpt2_vocabulary((vocab_path, merges_path))


def test_plain_ids_are_the_token_dtype(plain):
    assert plain.encode_to_numpy("hi").dtype == np.uint16
    assert npgpt.get_encoding("gpt2").encode_to_numpy("").dtype == np.uint16


def test_capturing_groups_are_refused():
    """`findall` returns what groups captured, not the piece: text would be lost without a word."""
    vocab = {i: bytes([i]) for i in range(256)}
    with pytest.raises(ValueError, match="capturing group"):
        Encoding(vocab, [], pattern=r"(a)b|\S+|\s+")
    assert Encoding(vocab, [], pattern=r"(?:a)b|\S+|\s+").encode("ab ab") == [97, 98, 32, 97, 98]


def test_small_decodes_and_batches_do_not_load_numba():
    """Short decodes (arrays too) and small batches run in Python on the calling thread."""
    code = ("import sys, threading, numpy as np, npgpt; e = npgpt.get_encoding('gpt2'); "
            "assert e.decode(np.array([31373, 995])) == 'hello world'; "
            "got = e.encode_batch_to_numpy(['hello', 'world'], num_threads=8); "
            "assert [a.tolist() for a in got] == [[31373], [6894]]; "
            "print('numba' in sys.modules, threading.active_count())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "1"]


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix: deprecated, but people pass it
def test_decode_of_a_matrix(enc):
    ids = np.matrix(np.full((1, 3000), 995))
    assert enc.decode(ids) == " world" * 3000
