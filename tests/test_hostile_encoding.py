"""Hostile arguments through Encoding's construction and methods, in a subprocess: a clean Python
exception or a right answer, never a signal (a crash in a numba kernel would kill the process)."""

import subprocess
import sys
import textwrap

CHILD = textwrap.dedent(r'''
    import sys
    import numpy as np
    from hypothesis import given, settings, strategies as st, HealthCheck
    import npgpt
    from npgpt.reference import ReferenceEncoder

    CLEAN = (ValueError, TypeError, KeyError, IndexError, UnicodeError, OverflowError)
    hostile_ids = st.one_of(st.integers(-2**70, 2**70), st.booleans(), st.floats(allow_nan=True), st.none(),
                            st.integers(-3, 300), st.builds(np.int64, st.integers(0, 300)))
    hostile_tokens = st.one_of(st.binary(max_size=4), st.text(max_size=3), st.none(), st.integers())
    BYTES = {i: bytes([i]) for i in range(256)}

    @st.composite
    def vocabularies(draw):
        """A consistent vocabulary (random merges over a small alphabet), then at most one hostile edit."""
        vocab, merges, known = dict(BYTES), [], [b"a", b"b", b" ", b"\xc3", b"\xa9"]
        for _ in range(draw(st.integers(0, 12))):
            pair = (draw(st.sampled_from(known)), draw(st.sampled_from(known)))
            if pair in merges or pair[0] + pair[1] in known:
                continue
            merges.append(pair)
            vocab[len(vocab)] = pair[0] + pair[1]
            known.append(pair[0] + pair[1])
        special = draw(st.sampled_from([[], ["<|endoftext|>"], {"<|endoftext|>": len(vocab)}]))
        edit = draw(st.sampled_from(["none", "drop byte", "extra token", "special id", "special text",
                                     "bad merge", "repeat merge", "swap ids"]))
        if edit == "drop byte":
            vocab.pop(draw(st.integers(0, 255)))
        elif edit == "extra token":
            vocab[draw(hostile_ids)] = draw(hostile_tokens)
        elif edit == "special id":
            special = {"<|endoftext|>": draw(hostile_ids)}
        elif edit == "special text":
            special = [draw(st.one_of(st.text(max_size=4), st.integers(), st.binary(max_size=2)))]
        elif edit == "bad merge":
            merges.insert(draw(st.integers(0, len(merges))), (draw(hostile_tokens), draw(hostile_tokens)))
        elif edit == "repeat merge" and merges:
            merges.append(merges[0])
        elif edit == "swap ids" and len(vocab) > 257:
            i, j = draw(st.integers(0, len(vocab) - 1)), draw(st.integers(0, len(vocab) - 1))
            vocab[i], vocab[j] = vocab[j], vocab[i]
        return vocab, merges, special

    @settings(max_examples=int(sys.argv[1]), deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(v=vocabularies(), text=st.text(st.sampled_from("ab é<|endoftext|>"), max_size=30),
           decode_ids=st.lists(hostile_ids, max_size=5))
    def run(v, text, decode_ids):
        try:
            enc = npgpt.Encoding(*v)
        except CLEAN:
            return
        built.append(1)
        # constructed: it must be right, not merely alive
        ref = ReferenceEncoder(enc.vocab, enc.merges, enc.special_tokens, enc.pattern)
        assert enc.encode(text, disallowed_special=()) == ref.encode(text)
        assert enc.encode(text, allowed_special="all") == ref.encode(text, enc.special_tokens_set)
        assert enc.decode(enc.encode(text, disallowed_special=())) == text
        try:
            enc.decode(decode_ids)
        except CLEAN:
            pass
        for arg in (text, text.encode(), 7):
            try:
                enc.encode_single_token(arg)
            except CLEAN:
                pass

    built = []
    run()
    assert len(built) > int(sys.argv[1]) // 10, f"only {len(built)} vocabularies were valid"  # 7 of 8 edits are hostile
    print("ok")
''')


def test_hostile_vocabularies_never_crash():
    done = subprocess.run([sys.executable, "-c", CHILD, "300"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"signal or failure (exit {done.returncode}):\n{done.stderr[-3000:]}"
    assert done.stdout.strip() == "ok"
