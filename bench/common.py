"""What every benchmark script shares: the default corpus, the machine, and RESULTS.md sections.

Each script writes one section of ``bench/RESULTS.md`` between ``<!-- name:start -->`` and
``<!-- name:end -->`` markers and leaves the others alone, so figures from different scripts (and
different days) live side by side, each with its own date, machine and command.
"""

from __future__ import annotations

import datetime
import os
import platform
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"
RESULTS = ROOT / "bench" / "RESULTS.md"


def default_corpus() -> tuple[str, list[Path]]:
    """``../shared/corpus`` when present, else the standard library's ``.py`` files."""
    if CORPUS.is_dir() and any(CORPUS.glob("*.txt")):
        return "shared corpus (../shared/corpus/*.txt)", sorted(CORPUS.glob("*.txt"))
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in stdlib.rglob("*.py") if "site-packages" not in p.parts)
    return f"Python standard library sources ({stdlib})", files


def read_files(paths: list[Path]) -> list[tuple[str, str]]:
    """(name, text) of each path, directories expanded to their ``.py``/``.txt`` files."""
    out = []
    for p in paths:
        if p.is_dir():
            out += read_files(sorted(q for q in p.rglob("*") if q.suffix in (".py", ".txt") and q.is_file()))
        else:
            out.append((p.name, p.read_text(encoding="utf-8", errors="replace")))
    return out


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    system = f"{platform.system()} {platform.release()}"
    return f"{cpu}, {os.cpu_count()} cores, {system}, Python {platform.python_version()}"


def versions(*packages: str) -> str:
    found = []
    for name in packages:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def header(command: str | None = None) -> str:
    command = command or "python " + " ".join([os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"- date: {now}\n- machine: {machine()}\n- command: `{command}`\n"


def add_output_args(ap) -> None:
    """The options every script shares: where its section and its headline figures go."""
    ap.add_argument("--no-write", action="store_true", help="print only; write no RESULTS.md section")
    ap.add_argument("--results", type=Path, default=RESULTS, help="the RESULTS.md to write the section into")
    ap.add_argument("--json", type=Path, help="also write the headline figures to this JSON file")


def finish(args, name: str, body: str, figures: dict) -> None:
    """Print the section, write it into RESULTS.md (unless --no-write) and the figures to --json."""
    import json

    print(body)
    if not args.no_write:
        write_section(name, body, args.results)
        print(f"\nwritten to {os.path.relpath(args.results)}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")


def write_section(name: str, body: str, results: Path = RESULTS) -> None:
    """Replace (or append) the section `name` of a RESULTS.md (default bench/RESULTS.md)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = results.read_text(encoding="utf-8") if results.exists() else (
        "# Benchmark results\n\nWritten by the scripts in `bench/`; do not edit by hand. "
        "Each section says when, where and how it was measured.\n"
    )
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    results.write_text(text, encoding="utf-8")


def table(rows: list[list[str]]) -> str:
    head, *rest = rows
    rule = "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|"
    lines = ["| " + " | ".join(head) + " |", rule]
    lines += ["| " + " | ".join(r) + " |" for r in rest]
    return "\n".join(lines)
