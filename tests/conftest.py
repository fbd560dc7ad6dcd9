"""Shared fixtures: the GPT-2 encoding, its reference encoder, texts every machine has, and the shared corpus.

Tests that need ../shared/corpus (the chapter's the-verdict.txt and the 5 MB benchmark corpus) skip
with a reason when it is absent, as in a plain clone; every other test uses text that every Python
install has (`pydoc_text`). Hypothesis explores new examples on every local run; in CI
(``CI`` set) it is derandomized, so a run is reproducible and a new find never turns CI red at random.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

import npgpt
from npgpt.bpe import vocab_files
from npgpt.reference import ReferenceEncoder

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"
SEEDS = ROOT.parent / "shared" / "seeds"

# The suite holds the numba kernels to the references, so every Encoding it builds uses them from its
# first text; tests/test_plain_tier.py gives the plain tier (`Encoding._plain_encode`) budgets of its own.
npgpt.bpe.encoding.PLAIN_BUDGET = 0

settings.register_profile("ci", max_examples=150, deadline=None, derandomize=True, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


# The corpus's files (see its README), named here so that each corpus test is listed, and skips with
# its reason, even in a clone without the corpus.
CORPUS_FILES = ["opensubtitles-en.txt", "opensubtitles-ru.txt", "opensubtitles-zh.txt", "sherlock.txt",
                "the-verdict.txt", "tinyshakespeare.txt"]


def corpus_file(name: str) -> Path:
    """A file of ../shared/corpus, or skip the test saying why."""
    path = CORPUS / name
    if not path.is_file():
        pytest.skip(f"needs the shared corpus: {path} is absent (it lives beside the project, not in it)")
    return path


def corpus_files() -> list[str]:
    return CORPUS_FILES


def pydoc_text() -> str:
    """Python's ``pydoc_data.topics``: about 800 kB of real English prose and code, on every machine."""
    from pydoc_data import topics

    return "\n\n".join(topics.topics[k] for k in sorted(topics.topics))


@pytest.fixture(scope="session")
def enc() -> npgpt.Encoding:
    return npgpt.get_encoding("gpt2")


@pytest.fixture(scope="session")
def ref() -> ReferenceEncoder:
    vocab, merges = vocab_files.read_gpt2(vocab_files.find_gpt2_files())
    return ReferenceEncoder(vocab, merges, {"<|endoftext|>": 50256})


@pytest.fixture(scope="session")
def text() -> str:
    """Real text every machine has: the first 40 kB of Python's pydoc topics."""
    return pydoc_text()[:40_000]


@pytest.fixture(scope="session")
def verdict() -> str:
    return corpus_file("the-verdict.txt").read_text(encoding="utf-8")
