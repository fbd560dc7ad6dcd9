"""The benchmark runner's plumbing (not its figures: those are measured, never asserted, in bench/)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_quick_run_writes_a_marked_report_elsewhere(tmp_path):
    text = tmp_path / "a.txt"
    text.write_text("The quick brown fox jumps over the lazy dog. " * 300, encoding="utf-8")
    committed = (BENCH / "RESULTS.md").read_bytes()
    done = subprocess.run([sys.executable, str(BENCH / "run.py"), str(text), "--quick", "--only", "train", "embedding",
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    md = (tmp_path / "out" / "RESULTS.md").read_text(encoding="utf-8")
    assert md.startswith("**QUICK RUN") and "<!-- train:start -->" in md and "<!-- embedding:start -->" in md
    record = json.loads((tmp_path / "out" / "RESULTS.json").read_text(encoding="utf-8"))
    assert record["quick"] and {"date", "machine", "versions", "command", "figures"} <= set(record)
    assert "npgpt backward / torch" in done.stdout or "npgpt backward / np.add.at" in done.stdout
    assert (BENCH / "RESULTS.md").read_bytes() == committed  # a quick run never overwrites the report


@pytest.mark.parametrize("argv", [["/no/such/file"], ["--out", "/proc/x"], ["--only", "frobnicate"]])
def test_runner_mistakes_fail_before_running(argv):
    done = subprocess.run([sys.executable, str(BENCH / "run.py"), "--quick", *argv], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
