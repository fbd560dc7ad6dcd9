"""The `npgpt` command through `main(argv)` and as `python -m npgpt`, error paths included."""

import subprocess
import sys

import pytest

from npgpt.cli import main


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
    assert "tokens    21 with gpt2" in out  # hello, world, 9 x (hello, world), " " and "== text: True" in out


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


def test_python_dash_m_runs_the_main_job():
    done = subprocess.run([sys.executable, "-m", "npgpt"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "pydoc_data.topics" in done.stdout and "== text: True" in done.stdout


def test_demo_on_a_file(capsys, verdict, tmp_path):
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


def test_bench_quick(capsys, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("The quick brown fox jumps over the lazy dog. " * 300, encoding="utf-8")
    code, out, _ = run(capsys, "bench", str(corpus), "--quick", "--out", str(tmp_path / "out"))
    assert code == 0
    assert "npgpt MB/s" in out and "npgpt backward ms" in out
    md = (tmp_path / "out" / "RESULTS.md").read_text(encoding="utf-8")
    assert all(f"<!-- {name}:start -->" in md for name in ("encode", "train", "windows", "embedding"))
    import json

    record = json.loads((tmp_path / "out" / "RESULTS.json").read_text(encoding="utf-8"))
    assert {"date", "machine", "versions", "command", "figures"} <= set(record)
    assert run(capsys, "bench", str(tmp_path / "missing"))[0] == 2


def test_train_then_encode_with_the_vocab(capsys, tmp_path, verdict):
    path = tmp_path / "v.txt"
    path.write_text(verdict, encoding="utf-8")
    out_dir = tmp_path / "vocab"
    code, out, _ = run(capsys, "train", str(path), "--vocab-size", "400", "--out", str(out_dir))
    assert code == 0 and "learned 143 merges: 400 tokens" in out
    code, out, _ = run(capsys, "encode", "the verdict", "--vocab", str(out_dir))
    ids = [int(x) for x in out.split()]
    assert code == 0 and all(i < 400 for i in ids)
    assert run(capsys, "decode", *map(str, ids), "--vocab", str(out_dir))[1] == "the verdict\n"
    assert run(capsys, "train", str(tmp_path / "nope.txt"), "--vocab-size", "300", "--out", "x")[0] == 2
    assert run(capsys, "train", str(path), "--vocab-size", "10", "--out", "x")[0] == 2
