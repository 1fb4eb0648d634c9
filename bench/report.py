"""Writing a benchmark's section into BENCHMARKS.md, shared by every benchmark."""

from __future__ import annotations

from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def write_section(text: str, heading: str | None = None) -> None:
    """Replace the section that starts with `heading` (default: the text's first line)
    up to the next `## ` heading, or append it. The heading is matched as a whole line."""
    heading = heading or text.split("\n", 1)[0]
    current = BENCHMARKS.read_text() if BENCHMARKS.exists() else "# Benchmarks\n\n"
    start = current.find(heading + "\n")
    if start == -1:
        updated = current.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n"
    else:
        end = current.find("\n## ", start + len(heading))
        rest = "" if end == -1 else "\n" + current[end + 1 :]
        updated = current[:start] + text.rstrip("\n") + "\n" + rest
    BENCHMARKS.write_text(updated)
