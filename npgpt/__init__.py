"""npgpt: the front half of a GPT -- text, tokens, ids -- in NumPy and numba.

Chapter 2 of "Build a Large Language Model (From Scratch)", written as a library:

- `SimpleTokenizerV1` / `SimpleTokenizerV2`: the chapter's word-level tokenizers (`npgpt.simple`);
- `get_encoding("gpt2")` / `Encoding`: exact GPT-2 byte-pair encoding with tiktoken's interface
  (the `npgpt.bpe` package: pre-tokenizer, merge loop, vocabulary files), and `train_bpe` to learn
  a vocabulary of your own;
- `GPTDatasetV1`, `DataLoader`, `create_dataloader_v1`: the book's training windows as zero-copy
  views (`npgpt.data`), and token files on disk (`write_tokens`, `TokenFile`, `tokenize_files`);
- `Embedding`, `GPTEmbedding` (``tok_emb`` + ``pos_emb``) with manual gradients, and the `SGD` and
  `AdamW` optimizers (`npgpt.embedding`, `npgpt.optim`).

``import npgpt`` stays light: numba is imported, and its kernels loaded, on the first encode.

Example
-------
>>> import npgpt
>>> tokenizer = npgpt.get_encoding("gpt2")   # instead of tiktoken.get_encoding("gpt2")
>>> tokenizer.encode("Akwirw ier")
[33901, 86, 343, 86, 220, 959]
"""

from npgpt.bpe.encoding import Encoding, InvalidTokenError
from npgpt.bpe.pretokenize import GPT2_PATTERN
from npgpt.bpe.registry import get_encoding, list_encoding_names
from npgpt.bpe.train import train_bpe
from npgpt.data import DataLoader, GPTDatasetV1, create_dataloader_v1, sliding_windows
from npgpt.embedding import Embedding, GPTEmbedding
from npgpt.optim import SGD, AdamW, Parameter
from npgpt.simple import SimpleTokenizerV1, SimpleTokenizerV2, UnknownWordError, build_vocab
from npgpt.token_files import TokenFile, tokenize_files, write_tokens

__version__ = "0.1.0"

__all__ = [
    "GPT2_PATTERN",
    "SGD",
    "AdamW",
    "DataLoader",
    "Embedding",
    "Encoding",
    "GPTDatasetV1",
    "GPTEmbedding",
    "InvalidTokenError",
    "Parameter",
    "SimpleTokenizerV1",
    "SimpleTokenizerV2",
    "TokenFile",
    "UnknownWordError",
    "build_vocab",
    "create_dataloader_v1",
    "get_encoding",
    "list_encoding_names",
    "sliding_windows",
    "tokenize_files",
    "train_bpe",
    "write_tokens",
]
