"""Shared fixtures: the GPT-2 encoding, its reference encoder, and the shared corpus."""

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

settings.register_profile("ci", max_examples=150, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def corpus_file(name: str) -> Path:
    """A file of ../shared/corpus, or skip the test saying why."""
    path = CORPUS / name
    if not path.is_file():
        pytest.skip(f"{path} is absent (the shared corpus lives beside the project)")
    return path


def corpus_files() -> list[str]:
    return sorted(p.name for p in CORPUS.glob("*.txt")) if CORPUS.is_dir() else []


@pytest.fixture(scope="session")
def enc() -> npgpt.Encoding:
    return npgpt.get_encoding("gpt2")


@pytest.fixture(scope="session")
def ref() -> ReferenceEncoder:
    vocab, merges = vocab_files.read_gpt2(vocab_files.find_gpt2_files())
    return ReferenceEncoder(vocab, merges, {"<|endoftext|>": 50256})


@pytest.fixture(scope="session")
def verdict() -> str:
    return corpus_file("the-verdict.txt").read_text(encoding="utf-8")
