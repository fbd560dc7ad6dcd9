"""Pre-tokenization: cut text into the pieces that byte-pair encoding works on.

GPT-2 never merges bytes across a word boundary. Before any merging, a regular expression cuts the
text into pieces -- contractions, runs of letters or digits with an optional leading space, runs of
other symbols, and white space -- and BPE then encodes each piece on its own. That is why
``" the"`` (with its space) is one GPT-2 token and why digits never merge with letters.

The pattern uses Unicode classes (``\\p{L}`` letters, ``\\p{N}`` numbers), which Python's `re`
does not support, so this module uses the `regex` package, as OpenAI's encoder does.

Example
-------
>>> split("Hello world's 123 numbers!!")
['Hello', ' world', "'s", ' 123', ' numbers', '!!']
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterable, Iterator

import numpy as np
import regex

__all__ = [
    "GPT2_PATTERN",
    "check_disallowed",
    "chunk_text",
    "compile_pattern",
    "fix_surrogates",
    "regex_rows",
    "safe_cut",
    "safe_cut_utf8",
    "special_token_regex",
    "special_token_regex_bytes",
    "split",
    "to_utf8",
]

#: GPT-2's pre-tokenization pattern, exactly as in OpenAI's ``encoder.py`` and tiktoken's ``gpt2``.
#: The white space rules matter: ``\s+(?!\S)`` leaves the last space of a run to start the next
#: word, so ``"a  b"`` splits as ``['a', ' ', ' b']``.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


@functools.lru_cache(maxsize=16)
def compile_pattern(pattern: str) -> regex.Pattern:
    """Compile a pre-tokenization pattern with `regex` (cached).

    Raises ValueError naming the pattern when it does not compile, or when it has capturing groups:
    pieces are read with ``findall``, which returns what the groups captured instead of the whole
    match, and text would be lost without a word (write groups as ``(?:...)``).
    """
    if not isinstance(pattern, str):
        raise TypeError(f"pattern must be str, got {type(pattern).__name__}")
    try:
        compiled = regex.compile(pattern)
    except regex.error as e:
        raise ValueError(f"pre-tokenization pattern {pattern!r} does not compile: {e}") from None
    if compiled.groups:
        raise ValueError(f"pre-tokenization pattern {pattern!r} has {compiled.groups} capturing group(s); each "
                         "piece must be a whole match, so write groups as (?:...)")
    return compiled


def split(text: str, pattern: str = GPT2_PATTERN) -> list[str]:
    """Cut `text` into pre-tokens with `pattern` (default: GPT-2's). The reference implementation.

    Same as ``regex.findall(pattern, text)``. For GPT-2's pattern the pieces cover the whole text,
    so ``"".join(split(text)) == text``.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    return compile_pattern(pattern).findall(text)


# --------------------------------------------------------------------------------------------
# special tokens: cut out before pre-tokenization


@functools.lru_cache(maxsize=64)
def special_token_regex(tokens: frozenset[str]) -> re.Pattern[str]:
    """A regex that finds any of `tokens`; where two start at the same place, the longer wins.

    (Alternation takes the first alternative that matches, so the longest is listed first.)
    """
    return re.compile("|".join(re.escape(t) for t in sorted(tokens, key=lambda t: (-len(t), t))))


@functools.lru_cache(maxsize=64)
def special_token_regex_bytes(tokens: frozenset[str]) -> re.Pattern[bytes]:
    """`special_token_regex` over UTF-8 bytes, for the scanner path, which works on bytes."""
    ordered = sorted(tokens, key=lambda t: (-len(t.encode("utf-8")), t))
    return re.compile(b"|".join(re.escape(t.encode("utf-8")) for t in ordered))


@functools.lru_cache(maxsize=256)
def _token_utf8(token: str) -> bytes | None:
    """The UTF-8 form of `token`; None when it has none (a surrogate) or is empty: no search of the text's
    bytes can then say the token is absent, and the str is searched."""
    try:
        return token.encode("utf-8") or None
    except UnicodeEncodeError:
        return None


def _surely_absent(token: str, buf: bytes | np.ndarray) -> bool:
    """Whether the UTF-8 bytes `buf` of a text show that `token` is not in the text.

    Exact: a token in the text has its characters there, which `to_utf8` leaves as they are (it changes
    surrogates only, and a token with one is never ruled out here), and UTF-8 is self-synchronising, so
    the token's bytes, its first byte among them, are in `buf`. On bytes the test is the first byte
    (one memchr, a twentieth of the time of a search for the token); on a uint8 array the whole token,
    by `npgpt.bpe.utf8_kernels.find_bytes`, which releases the GIL (for `encode_batch_to_numpy`).
    """
    needle = _token_utf8(token)
    if needle is None:
        return False
    if isinstance(buf, np.ndarray):
        from npgpt.bpe.utf8_kernels import find_bytes

        return find_bytes(buf, np.frombuffer(needle, np.uint8), 0) < 0
    return needle[:1] not in buf


def check_disallowed(text: str, disallowed: frozenset[str], buf: bytes | np.ndarray | None = None,
                     before: int | None = None) -> None:
    """Raise ValueError, as tiktoken does, when `text` contains one of the `disallowed` special tokens.

    `buf`, when given, is the UTF-8 of `text` (``to_utf8(text)``, or a uint8 array of it), searched
    first: a token it rules out is not looked for in the str (`_surely_absent`).
    With `before`, only for the first one found when it starts before that offset: `text` is the start
    of a stream, and one found later may be the start of a longer one (``<|end`` of ``<|endoftext|>``),
    which is the one to name.
    """
    # `in` is a fast substring search; the regex runs only to report the first offender. (A plain
    # loop: this runs on every encode call, and a generator in any() costs more than the search.)
    for t in disallowed:
        if buf is not None and _surely_absent(t, buf):
            continue
        if t in text:
            break
    else:
        return
    found = special_token_regex(disallowed).search(text)
    if before is not None and found is not None and found.start() >= before:
        return
    token = found.group() if found else next(t for t in disallowed if t in text)
    raise ValueError(
        f"Encountered text corresponding to disallowed special token {token!r}.\n"
        f"If you want this text to be encoded as a special token, pass it to `allowed_special`, "
        f"e.g. `allowed_special={{{token!r}, ...}}`.\n"
        f"If you want this text to be encoded as normal text, disable the check for this token by "
        f"passing `disallowed_special=(enc.special_tokens_set - {{{token!r}}})`.\n"
        f"To disable this check for all special tokens, pass `disallowed_special=()`.\n"
    )


def fix_surrogates(text: str) -> str:
    """As tiktoken: a surrogate pair written as two code points becomes the character it encodes; a
    lone surrogate, which has no UTF-8 form, becomes U+FFFD.

    >>> fix_surrogates("\\ud83d\\ude00 \\ud800")
    '😀 �'
    """
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def to_utf8(text: str) -> bytes:
    """The UTF-8 bytes that encoding works on (`fix_surrogates` first when `text` has surrogates)."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return fix_surrogates(text).encode("utf-8")


def regex_rows(buf: bytes, segments: np.ndarray, pattern: str) -> tuple[bytes, np.ndarray]:
    """Custom patterns: cut each ordinary segment of `buf` with the `regex` module, one row per piece.

    `segments` holds rows ``(start, end, special_id)`` (special_id -1 for ordinary text). A pattern may
    skip characters, so the pieces are joined into a new buffer; special-token rows carry over
    (their bytes are not needed, only their id). The encode kernel reads the result.
    """
    findall = compile_pattern(pattern).findall
    parts: list[bytes] = []
    blocks: list[np.ndarray] = []
    pos = 0
    for start, end, special in segments.tolist():
        if special >= 0:
            blocks.append(np.array([[pos, pos, special]], np.int64))
            continue
        encoded = [p.encode("utf-8") for p in findall(buf[start:end].decode("utf-8"))]
        lens = np.fromiter(map(len, encoded), np.int64, len(encoded))
        rows = np.full((len(encoded), 3), -1, np.int64)
        np.cumsum(lens, out=rows[:, 1])
        rows[:, 1] += pos
        rows[:, 0] = rows[:, 1] - lens
        parts += encoded
        blocks.append(rows)
        pos += int(lens.sum())
    return b"".join(parts), np.concatenate(blocks) if blocks else np.zeros((0, 3), np.int64)


# --------------------------------------------------------------------------------------------
# streaming: where a text may be cut so that its halves encode apart

_LOOK_BACK = 4096  # characters `safe_cut` tries by the local rule before it scans the whole chunk


def safe_cut(text: str, limit: int, pattern: str = GPT2_PATTERN, allowed_special: frozenset[str] = frozenset()) -> int:
    r"""A place to cut `text`, at or before `limit`, such that pre-tokenizing (and so encoding) the
    two halves apart gives exactly the pieces of the whole -- whatever text follows. Returns 0 when
    there is none. `text` must start where a piece starts (the start of a text, or an earlier cut).

    For GPT-2's pattern a cut between characters X and Y is safe, whatever came before X, when both
    are non-space (``\s`` as `regex` reads it) and not surrogates, and either

    - Y is U+0020 followed by a non-space: no piece runs through a space that a non-space follows
      (letter, number and symbol runs stop at it; white space runs never hold X), and at Y
      ``' ?\p{L}+' | ' ?\p{N}+' | ' ?[^\s\p{L}\p{N}]+'`` always starts a piece; or
    - X and Y are of different classes (letter, number, other) and X is not an apostrophe: a run
      of one class ends at X and the next piece starts at Y (only a contraction ``'s`` could join
      an apostrophe to the letter after it).

    Nothing after the cut is looked at to end the piece before it (the ``(?!\S)`` look-ahead only
    follows white space, and contractions are at most three characters long, all before the cut).
    The rule is tried from `limit` backwards; English text has such a place within a few characters.
    When `_LOOK_BACK` characters give none (a long run of one script without spaces or punctuation),
    or for any other pattern, the pieces are found from the start (numba scanner or `regex`) and the
    cut goes after the last piece ending in a non-space whose successor also ends before `limit`.
    A cut never falls inside an allowed special token; right after one is always safe (special tokens
    are cut out before pre-tokenization), so when the rules find nothing after the last allowed special
    token that starts before `limit`, the cut goes right after it, which may be past `limit`.

    >>> t = "hello world, it is me"
    >>> safe_cut(t, 15), t[:safe_cut(t, 15)]
    (15, 'hello world, it')
    """
    from npgpt.bpe.unicode_tables import SPACE, char_classes

    start = 0
    if allowed_special:  # never cut inside a special token: only after the last one that starts in time
        # (found as encoding finds them, in the repaired text: "😀" may come as a pair of surrogates)
        found, at = _repaired(text)
        for m in special_token_regex(allowed_special).finditer(found):
            begin, end = (m.start(), m.end()) if at is None else (int(at[m.start()]), int(at[m.end()]))
            if begin >= limit:
                break
            start = end
    limit = min(limit, len(text) - 1)  # Y, and the character after a space, must be known
    if pattern == GPT2_PATTERN:
        classes = char_classes()

        def cls(c: str) -> int:
            o = ord(c)
            return -1 if 0xD800 <= o < 0xE000 else int(classes[o])  # surrogates: never cut beside one

        for i in range(limit, max(start, limit - _LOOK_BACK), -1):
            cx, cy = cls(text[i - 1]), cls(text[i])
            if cx in (SPACE, -1) or cy == -1:
                continue
            if text[i] == " ":
                if i + 1 < len(text) and cls(text[i + 1]) not in (SPACE, -1):
                    return i
            elif cy != SPACE and cx != cy and text[i - 1] != "'":
                return i
    return _cut_after_pieces(text, start, limit, pattern) or start


def _repaired(text: str) -> tuple[str, np.ndarray | None]:
    """`text` as encoding sees it (`fix_surrogates`) and where each of its characters starts in `text`
    (`_repaired_offsets`); `text` itself and None when it has no surrogate, as most texts."""
    if text.isascii() or not _SURROGATE.search(text):
        return text, None
    return fix_surrogates(text), _repaired_offsets(text)


def _cut_after_pieces(text: str, start: int, limit: int, pattern: str) -> int:
    """The general rule: cut after piece k when piece k + 1 also ends before `limit` (so the regex
    chose piece k with all the look-ahead it could need) and piece k ends in a non-space (white
    space runs end differently at the end of a text: ``\\s+(?!\\S)``).

    The pieces are those of ``text[start:]`` as encoding sees it: repaired (`fix_surrogates`) when it
    has surrogates, for a pair written as two code points becomes one character, of any class (two
    "other" code points unrepaired, they swallowed an apostrophe that the repaired digit leaves to "'s").
    """
    part, at = _repaired(text[start:])  # (at: where each character of the repaired part starts in it)
    if pattern == GPT2_PATTERN:
        from npgpt.bpe import pretokenize_kernels
        from npgpt.bpe.unicode_tables import char_classes

        buf = np.frombuffer(part.encode("utf-8"), np.uint8)
        bounds = np.empty(len(buf) + 1, np.int64)
        n = pretokenize_kernels.scan(buf, 0, len(buf), char_classes(), bounds)
        ends = bounds[1 : n + 1]
        # character offsets of the byte offsets: count the bytes that start a character
        starts_char = (buf & 0xC0) != 0x80
        ends_at = np.concatenate(([0], np.cumsum(starts_char)))[ends].tolist()
    else:
        ends_at = [m.end() for m in compile_pattern(pattern).finditer(part)]
    cut = 0
    for end, next_end in itertools.pairwise(ends_at):
        if start + (next_end if at is None else int(at[next_end])) > limit:
            break
        if end > 0 and not part[end - 1].isspace():
            cut = end
    return start + (cut if at is None or not cut else int(at[cut]))


_SURROGATE = re.compile("[\ud800-\udfff]")


def _repaired_offsets(text: str) -> np.ndarray:
    """For each character of ``fix_surrogates(text)``, and its end, the offset in `text` where it starts:
    a high surrogate followed by a low one is one character (the pair), every other code point one."""
    units = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), np.uint32)
    high = (units >= 0xD800) & (units < 0xDC00)
    low = (units >= 0xDC00) & (units < 0xE000)
    second = np.zeros(len(units), bool)  # the low half of a pair: no character of its own
    second[1:] = high[:-1] & low[1:]
    return np.append(np.flatnonzero(~second), len(units))


@functools.lru_cache(maxsize=1)
def _class_bytes() -> bytes:
    """`npgpt.bpe.unicode_tables.char_classes` as bytes: indexing bytes gives a Python int, ten times
    faster than a NumPy scalar, and `safe_cut_utf8` looks up a few characters per cut."""
    from npgpt.bpe.unicode_tables import char_classes

    return char_classes().tobytes()


def _code_point(buf: bytes | memoryview, p: int) -> int:
    """The code point of the character that starts at ``buf[p]`` (valid UTF-8)."""
    b = buf[p]
    if b < 0x80:
        return b
    if b < 0xE0:
        return ((b & 0x1F) << 6) | (buf[p + 1] & 0x3F)
    if b < 0xF0:
        return ((b & 0x0F) << 12) | ((buf[p + 1] & 0x3F) << 6) | (buf[p + 2] & 0x3F)
    return ((b & 0x07) << 18) | ((buf[p + 1] & 0x3F) << 12) | ((buf[p + 2] & 0x3F) << 6) | (buf[p + 3] & 0x3F)


def _char_start(buf: bytes | memoryview, i: int, lowest: int = 0) -> int:
    """Where the character that ends at byte offset `i` starts (UTF-8 continuation bytes are 10xxxxxx)."""
    i -= 1
    while i > lowest and buf[i] & 0xC0 == 0x80:
        i -= 1
    return i


def safe_cut_utf8(buf: bytes | memoryview, limit: int, start: int = 0, end: int | None = None) -> int:
    """`safe_cut` for GPT-2's pattern on UTF-8 bytes: a byte offset in ``(start, limit]`` where
    ``buf[start:end]`` may be cut so that the two halves encode apart whatever follows `end`; 0 when
    there is none.

    This is what lets ``npgpt tokenize`` cut a file's bytes, and `npgpt.Encoding.encode_batch_to_numpy`
    a long text's bytes, without decoding them to str. ``buf[start:end]`` must be UTF-8 (a ValueError
    says otherwise when the scanner is needed) and `start` must be where a piece starts (the start of
    a text, or an earlier cut). The rule is `safe_cut`'s, character for character: tried backwards
    from `limit` over `_LOOK_BACK` characters, then the pieces found by the numba scanner.

    >>> t = "hello world, it is me".encode()
    >>> safe_cut_utf8(t, 15), t[:safe_cut_utf8(t, 15)]
    (15, b'hello world, it')
    """
    from npgpt.bpe.unicode_tables import SPACE

    end = len(buf) if end is None else min(end, len(buf))
    limit = min(limit, end - 1)  # Y, and the character after a space, must be in the buffer
    if limit <= start:
        return 0
    classes = _class_bytes()
    i = _char_start(buf, limit + 1, start)  # the start of the character at `limit`
    tried = 0
    try:
        while i > start and tried < _LOOK_BACK:
            j = _char_start(buf, i, start)  # X is buf[j:i], Y starts at i
            cx, cy = classes[_code_point(buf, j)], classes[_code_point(buf, i)]
            if cx != SPACE:
                if buf[i] == 0x20:  # Y is U+0020: a cut when the character after it is not a space
                    if i + 1 < end and classes[_code_point(buf, i + 1)] != SPACE:
                        return i
                elif cy != SPACE and cx != cy and buf[j] != 0x27:  # a change of class, X not an apostrophe
                    return i
            i = j
            tried += 1
    except IndexError:  # a code point past U+10FFFF, or a character cut short: not UTF-8
        pass  # the check below names the bad byte
    return _cut_after_pieces_utf8(buf, start, end, limit)


def _cut_after_pieces_utf8(buf: bytes | memoryview, start: int, end: int, limit: int) -> int:
    """`_cut_after_pieces` on bytes: scan ``buf[start:end]`` and cut after the last piece that ends in a
    non-space and is followed by a whole piece ending by `limit` (< `end`). Only the scanner's last two
    pieces can differ from the whole text's (a contraction needs two bytes of look-ahead), and both
    are after the cut."""
    from npgpt.bpe import pretokenize_kernels, utf8_kernels
    from npgpt.bpe.unicode_tables import SPACE, char_classes

    arr = np.frombuffer(buf, np.uint8)
    bad = utf8_kernels.valid_prefix(arr, start, end)
    if bad != end:  # the scanner reads code points: never let it see anything else
        raise ValueError(f"not UTF-8: byte {bad} (0x{buf[bad]:02x}) does not start a whole, valid character")
    bounds = np.empty(end - start + 1, np.int64)
    n = pretokenize_kernels.scan(arr, start, end, char_classes(), bounds)
    ends = bounds[1 : n + 1]
    classes = _class_bytes()
    # piece k may be cut after when piece k + 1 also ends by `limit`; the latest such k comes first
    for k in range(int(np.searchsorted(ends, limit, side="right")) - 2, -1, -1):
        e = int(ends[k])
        if classes[_code_point(buf, _char_start(buf, e))] != SPACE:
            return e
    return 0


def chunk_text(texts: Iterable[str], *, pattern: str = GPT2_PATTERN, allowed_special: frozenset[str] = frozenset(),
               disallowed_special: frozenset[str] = frozenset(), chunk_chars: int = 1 << 16) -> Iterator[str]:
    """Re-cut a stream of text into chunks of about `chunk_chars` characters that encode apart.

    Encoding the chunks one by one and concatenating the ids gives exactly the ids of the whole
    text (`safe_cut`). A special token split across two pieces of the stream is seen whole: the
    last ``len(longest special) - 1`` characters are held back until more text comes. Text that
    contains a `disallowed_special` token raises ValueError, as `npgpt.Encoding.encode` does.
    This is what lets ``encode_iterable``, ``npgpt tokenize`` and ``train_bpe`` stream files of any
    size and encode their chunks in parallel.

    >>> list(chunk_text(["hello world, it is me. ", "How are you doing today, my friend?"], chunk_chars=16))
    ['hello world, it is me', '. How are you doing today, my friend', '?']
    """
    if isinstance(chunk_chars, bool) or not isinstance(chunk_chars, int) or chunk_chars < 1:
        raise ValueError(f"chunk_chars must be a positive int, got {chunk_chars!r}")
    # (in code points: a character past U+FFFF may come as a surrogate pair, two of them)
    hold = max((len(t) + sum(c > "\uffff" for c in t) for t in allowed_special | disallowed_special), default=1) - 1
    buffered: list[str] = []
    size = 0
    ready = chunk_chars  # characters buffered before the next try at a cut
    # The last `hold` characters of the chunks yielded: a cut right after an allowed special token may
    # leave fewer than `hold` characters after it, and a disallowed token overlapping that special token
    # starts before the cut (as `encode` checks the whole text first, it must be seen).
    seen = ""
    for piece in texts:
        if not isinstance(piece, str):
            raise TypeError(f"expected str pieces of text, got {type(piece).__name__}")
        buffered.append(piece)
        size += len(piece)
        if size < ready:
            continue
        text = "".join(buffered)
        if disallowed_special:  # (raising only where any special token fits whole: the first one found
            # near the end may be the start of a longer one)
            check_disallowed(seen + text, disallowed_special, before=len(seen) + len(text) - hold)
        cut = safe_cut(text, len(text) - hold, pattern, allowed_special)
        if cut:
            yield text[:cut]
            seen = (seen + text[:cut])[-hold:] if cut < hold else text[cut - hold : cut]
        buffered, size = [text[cut:]], len(text) - cut
        # No cut: try again when the text has doubled, not at every piece, or a stream with no place to
        # cut would be searched again and again from its start (quadratic: minutes for a few MB).
        ready = chunk_chars if cut else 2 * size
    text = "".join(buffered)
    if disallowed_special:
        check_disallowed(seen + text, disallowed_special)
    if text:
        yield text
