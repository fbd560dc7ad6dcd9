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
    (["encode", "x", "--vocab", "/no/such/dir"], "were not found"),
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
