"""The `npgpt` command through `main(argv)` and as `python -m npgpt`, error paths included."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from npgpt.cli import default_text, main

TEXT = default_text()[1]  # Python's pydoc topics: real text on every machine


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_encode_and_decode(capsys):
    assert run(capsys, "encode", "Hello, do you like tea?") == (0, "15496 11 466 345 588 8887 30\n", "")
    assert run(capsys, "decode", "15496", "11", "466", "345")[1] == "Hello, do you\n"
    assert run(capsys, "encode", "--count", "Akwirw ier")[1] == "6\n"
    assert run(capsys, "encode", "--allow-special", "a<|endoftext|>")[1] == "64 50256\n"


def test_inspect_file(capsys, tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("hello world " * 10, encoding="utf-8")
    code, out, _ = run(capsys, "inspect", str(path))
    assert code == 0
    assert "tokens    21 with gpt2" in out  # hello, world, 9 x (hello, world), " "
    assert "decode(encode(text)) == text: True" in out


@pytest.mark.parametrize(("argv", "message"), [
    (["inspect", "/no/such/file"], "no such file: /no/such/file"),
    (["decode", "1", "99999999"], "token id 99999999"),
    (["decode", "x1"], "not a token id: 'x1'"),
    (["encode", "x", "--encoding", "cl100k_base"], "Unknown encoding 'cl100k_base'"),
    (["encode", "x", "--vocab", "/no/such/dir"], "no such folder: /no/such/dir"),
    (["encode", "x", "--file", "f"], "either TEXT or --file"),
])
def test_user_errors_exit_2_in_one_line(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("npgpt: ") and message in err
    assert "Traceback" not in err


def test_not_utf8(capsys, tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("café".encode("latin-1"))
    code, _, err = run(capsys, "inspect", str(path))
    assert code == 2 and "not UTF-8" in err


def test_python_dash_m_runs_the_demo():
    done = subprocess.run([sys.executable, "-m", "npgpt", "demo", "--steps", "3"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    for stage in ("pydoc_data.topics", "SimpleTokenizerV1 refuses", "<|unk|>", "[33901, 86, 343, 86, 220, 959]",
                  "== text: True", "-->", "first batch: x (8, 4) int64", "input embeddings (8, 4, 256)", "loss"):
        assert stage in done.stdout


def test_no_command_is_the_demo_on_the_built_in_text(monkeypatch):
    from npgpt import demo

    calls = []
    monkeypatch.setattr(demo, "run", lambda text, source, steps: calls.append((source, len(text), steps)))
    assert main([]) == 0
    assert calls == [("pydoc_data.topics", len(TEXT), 100)]


def test_demo_on_the_verdict(capsys, verdict, tmp_path):
    path = tmp_path / "v.txt"
    path.write_text(verdict, encoding="utf-8")
    code, out, _ = run(capsys, "demo", str(path), "--steps", "20")
    assert code == 0
    for stage in ("2.2-2.3", "SimpleTokenizerV1 refuses", "<|unk|>", "[33901, 86, 343, 86, 220, 959]",
                  "-->", "first batch: x (8, 4) int64", "input embeddings (8, 4, 256)", "loss"):
        assert stage in out
    assert "x[0] = [40, 367, 2885, 1464], y[0] = [367, 2885, 1464, 1807]" in out


def test_demo_refuses_tiny_text(capsys, tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("too short", encoding="utf-8")
    code, _, err = run(capsys, "demo", str(path))
    assert code == 2 and "too short" in err


def test_show(capsys, tmp_path):
    code, out, _ = run(capsys, "show", "unbelievability", "--ids", "--color", "never")
    assert code == 0 and out == "un|bel|iev|ability\n403 6667 11203 1799\n"
    code, out, _ = run(capsys, "show", "a b", "--color", "always")
    assert "\x1b[48;5;" in out and out.count("\x1b[0m") == 2
    page = tmp_path / "t.html"
    assert run(capsys, "show", "a <b>", "--html", str(page))[0] == 0
    html = page.read_text(encoding="utf-8")
    assert html.count("<span") == 4 and "&lt;" in html and 'title="64"' in html


def test_vocab_folder_of_any_vocabulary(capsys, tmp_path):
    from npgpt import Encoding

    small = Encoding({i: bytes([i]) for i in range(256)} | {256: b"ab"}, [(b"a", b"b")], ["<|endoftext|>"])
    small.save(tmp_path)
    assert run(capsys, "encode", "abab", "--vocab", str(tmp_path))[1] == "256 256\n"
    code, _, err = run(capsys, "encode", "x", "--vocab", str(tmp_path / "none"))
    assert code == 2 and "no such folder" in err


def test_train_then_encode_with_the_vocab(capsys, tmp_path):
    path = tmp_path / "v.txt"
    path.write_text(TEXT[:20_000], encoding="utf-8")
    out_dir = tmp_path / "vocab"
    code, out, _ = run(capsys, "train", str(path), "--vocab-size", "400", "--out", str(out_dir))
    assert code == 0 and "learned 143 merges: 400 tokens" in out  # 400 - 256 bytes - <|endoftext|>
    code, out, _ = run(capsys, "encode", "the verdict", "--vocab", str(out_dir))
    ids = [int(x) for x in out.split()]
    assert code == 0 and all(i < 400 for i in ids)
    assert run(capsys, "decode", *map(str, ids), "--vocab", str(out_dir))[1] == "the verdict\n"
    assert run(capsys, "train", str(tmp_path / "nope.txt"), "--vocab-size", "300", "--out", "x")[0] == 2
    assert run(capsys, "train", str(path), "--vocab-size", "10", "--out", "x")[0] == 2


# ------------------------------------------------------------------------------------------
# every subcommand, called wrongly: exit 2, one line on stderr, no traceback, nothing written


@pytest.fixture
def files(tmp_path):
    ok = tmp_path / "ok.txt"
    ok.write_text(TEXT[:3000], encoding="utf-8")
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("café crème".encode("latin-1"))
    a_file = tmp_path / "a_file"
    a_file.write_text("x", encoding="utf-8")
    return {"ok": str(ok), "latin1": str(latin1), "file": str(a_file), "dir": str(tmp_path),
            "file/sub": str(a_file / "sub"), "missing": str(tmp_path / "missing" / "x")}


BAD_CALLS = [
    (["decode", "²"], "not a token id: '²'"),
    (["decode", "-1"], "token id -1"),
    (["decode", "1", "99999999"], "token id 99999999"),
    (["encode", "x", "--encoding", "cl100k_base"], "Unknown encoding 'cl100k_base'"),
    (["encode", "--file", "{latin1}"], "not UTF-8"),
    (["inspect", "{missing}"], "no such file"),
    (["inspect", "{latin1}"], "not UTF-8"),
    (["show", "hi", "--html", "{missing}"], "does not exist"),
    (["show", "hi", "--html", "{dir}"], "is a folder"),
    (["show", "hi", "--color", "purple"], "invalid choice"),
    (["demo", "{ok}", "--steps", "0"], "--steps must be at least 1"),
    (["demo", "{ok}", "--steps", "many"], "invalid int value"),
    (["train", "{ok}", "--vocab-size", "3000000000", "--out", "{dir}/v"], "too large"),
    (["train", "{ok}", "--vocab-size", "300", "--min-frequency", "0", "--out", "{dir}/v"], "--min-frequency"),
    (["train", "{ok}", "--vocab-size", "300", "--threads", "-1", "--out", "{dir}/v"], "--threads"),
    (["train", "{ok}", "--vocab-size", "300", "--special", "", "--out", "{dir}/v"], "--special ''"),
    (["train", "{ok}", "--vocab-size", "300", "--special", "a", "--out", "{dir}/v"], "--special 'a'"),
    (["train", "{ok}", "--vocab-size", "300", "--out", "{file}"], "is a file"),
    (["train", "{ok}", "--vocab-size", "300", "--out", "{file/sub}"], "is a file"),
    (["train", "{latin1}", "--vocab-size", "300", "--out", "{dir}/v"], "not UTF-8"),
    (["train", "{ok}", "--out", "{dir}/v"], "--vocab-size"),
    (["tokenize", "{ok}", "--out", "{dir}"], "{dir}"),
    (["tokenize", "{ok}", "--out", "{file/sub}"], "{file}"),
    (["tokenize", "{ok}", "--out", "{ok}"], "{ok}"),
    (["tokenize", "{ok}", "--out", "{dir}/t.npy", "--threads", "-2"], "--threads"),
    (["tokenize", "{latin1}", "--out", "{dir}/t.npy"], "not UTF-8"),
    # bytes that are not UTF-8 in an argument arrive as lone surrogates (PEP 383): they were encoded as U+FFFD
    (["encode", "ab\udcffcd"], "TEXT is not UTF-8 text (byte 0xff at character 2)"),
    (["show", "ab\udcffcd"], "TEXT is not UTF-8 text (byte 0xff at character 2)"),
    (["train", "{ok}", "--vocab-size", "300", "--special", "<|\udcfe|>", "--out", "{dir}/v"],
     "is not UTF-8 text (byte 0xfe at character 2)"),
    (["frobnicate"], "invalid choice"),
    (["inspect", "{dir}"], "not a regular file"),
    (["train", "{dir}", "--vocab-size", "300", "--out", "{dir}/v"], "not a regular file"),
    (["tokenize", "{dir}", "--out", "{dir}/t.npy"], "not a regular file"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_CALLS, ids=[" ".join(a[:3]) for a, _ in BAD_CALLS])
def test_every_mistake_is_one_line_and_exit_2(capsys, files, argv, message):
    before = {p.name: p.stat().st_mtime_ns for p in Path(files["dir"]).iterdir()}
    code, _, err = run(capsys, *[a.format(**files) for a in argv])
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("npgpt") and "Traceback" not in err
    assert message.format(**files) in err
    after = {p.name: p.stat().st_mtime_ns for p in Path(files["dir"]).iterdir()}
    assert after == before  # nothing written, nothing half-written


def test_non_utf8_stdin_is_one_line():
    done = subprocess.run([sys.executable, "-m", "npgpt", "inspect", "-"], input=b"\xff\xfe", capture_output=True,
                          timeout=120)
    assert done.returncode == 2 and done.stderr.decode().count("\n") == 1
    assert b"stdin is not UTF-8" in done.stderr


def test_unwritable_output_is_one_line(capsys, tmp_path, monkeypatch):
    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "write_text", refuse)  # as a read-only folder would, even for root
    code, out, err = run(capsys, "show", "hi", "--html", str(tmp_path / "x.html"))
    assert (code, out) == (2, "") and err == f"npgpt: {tmp_path / 'x.html'}: Permission denied\n"


def test_ctrl_c_is_one_line_and_exit_130():
    # `npgpt decode` with no ids waits for them on stdin: interrupt it there.
    code = "import sys, npgpt.cli; print('ready', flush=True); sys.exit(npgpt.cli.main(['decode']))"
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout.readline() == b"ready\n"
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err == b"npgpt: interrupted\n"
