"""``make bench``: run every ``benchmarks/bench_*.py`` and write ``benchmarks/RESULTS.md``.

Each module defines ``run(report: Report) -> None`` and adds sections to the report. Figures are
compared as ratios measured side by side in one run: the machines are noisy.
Run one module with ``python benchmarks/run.py core`` (the part after ``bench_``).
"""

from __future__ import annotations

import importlib.util
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: Benchmarks that run only when named (``make bench-scale``): they take long.
SEPARATE = {"scale"}


class Report:
    """Collects Markdown sections."""

    def __init__(self) -> None:
        self.sections: list[tuple[str, str]] = []

    def section(self, title: str, body: str) -> None:
        self.sections.append((title, body.rstrip() + "\n"))
        print(f"\n## {title}\n\n{body.rstrip()}\n", flush=True)

    @staticmethod
    def table(headers: list[str], rows: list[list[object]]) -> str:
        lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
        return "\n".join(lines)


def main(argv: list[str]) -> int:
    only = set(argv)
    modules = sorted(HERE.glob("bench_*.py"))
    report = Report()
    started = time.time()
    for path in modules:
        name = path.stem[len("bench_"):]
        if (only and name not in only) or (not only and name in SEPARATE):
            continue
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        print(f"# running {path.name}", flush=True)
        module.run(report)
    header = (
        "# leasehold benchmark results\n\n"
        f"Written by `make bench` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}; "
        f"Python {platform.python_version()}, {os.cpu_count()} cores, {platform.machine()}. "
        "Compare figures as ratios within this one run: the machines are noisy.\n"
    )
    body = "".join(f"\n## {title}\n\n{text}" for title, text in report.sections)
    out = HERE / "RESULTS.md"
    if only and out.exists():
        # A partial run replaces its own sections in RESULTS.md (same titles) and adds new ones.
        text = out.read_text(encoding="utf-8")
        head, *parts = text.split("\n## ")
        sections = {part.split("\n", 1)[0]: part for part in parts}
        for title, body_text in report.sections:
            sections[title] = f"{title}\n\n{body_text}"
        out.write_text(head + "".join("\n## " + part for part in sections.values()), encoding="utf-8")
        print(f"\nupdated {len(report.sections)} section(s) of {out}")
    else:
        out.write_text(header + body, encoding="utf-8")
        print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
