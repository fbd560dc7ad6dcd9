"""Byte-pair encoding (chapter 2.5): GPT-2's tokenizer, and a trainer for vocabularies of your own.

Text becomes token ids in three steps, and each step has a plain module and, where speed needs it,
a numba twin beside it (``X.py`` says what is computed, ``X_kernels.py`` computes it fast):

=====================  =========================  ============================================
step                   plain                      fast twin (numba)
=====================  =========================  ============================================
cut text into pieces   `pretokenize` (regex)      `pretokenize_kernels` (a hand-written scanner
                                                  over UTF-8 bytes, classes from
                                                  `unicode_tables`)
merge each piece       `npgpt.reference.bpe`      `merge_kernels` (rank tables, merge loop,
                                                  piece cache)
learn the merges       `npgpt.reference.train`    `train` + `train_kernels`
=====================  =========================  ============================================

`encoding` puts them behind tiktoken's interface (`Encoding`, `get_encoding`), and `vocab_files`
reads and writes the vocabularies (GPT-2's ``vocab.json`` + ``merges.txt``, OpenAI's
``encoder.json`` + ``vocab.bpe``, tiktoken's ``.tiktoken``).

Importing this package imports no numba: the kernels load on the first encode.
"""

from npgpt.bpe.encoding import Encoding, InvalidTokenError
from npgpt.bpe.pretokenize import GPT2_PATTERN
from npgpt.bpe.registry import get_encoding, list_encoding_names
from npgpt.bpe.train import train_bpe

__all__ = ["GPT2_PATTERN", "Encoding", "InvalidTokenError", "get_encoding", "list_encoding_names", "train_bpe"]
