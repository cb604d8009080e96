"""The documentation points only at what the repository holds: every relative Markdown link in
README.md, docs/ and examples/ resolves, and nothing refers to a design document that is not
shipped (docs/architecture.md and docs/statistics.md carry what a reader needs)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)\s]*)?\)")


def _tracked(*patterns: str) -> list[Path]:
    out = subprocess.run(["git", "ls-files", *patterns], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0 or not out.stdout.strip():  # not a git checkout: walk the tree
        return sorted(p for pat in patterns for p in ROOT.glob(pat) if ".venv" not in p.parts)
    return [ROOT / line for line in out.stdout.splitlines()]


def test_relative_markdown_links_resolve() -> None:
    files = _tracked("*.md", "docs/*.md", "examples/**/*.md", "tests/schemas/*.md")
    assert len(files) >= 10
    broken = []
    for f in files:
        for target in _LINK.findall(f.read_text()):
            if re.match(r"^[a-z]+:", target):
                continue
            if not (f.parent / target).exists():
                broken.append(f"{f.relative_to(ROOT)} → {target}")
    assert not broken, broken


def test_no_reference_to_an_unshipped_design_document() -> None:
    files = _tracked("*.md", "*.py", "**/*.md", "**/*.py", "**/*.yaml", "**/*.yml", "**/*.toml")
    shipped = {p.name for p in files}
    hits = []
    for f in files:
        if f.name == Path(__file__).name:
            continue
        for m in re.finditer(r"\b([A-Z][A-Z_]+\.md)\b|\bDESIGN\s*§", f.read_text(errors="replace")):
            name = m.group(1)
            if name is None or name not in shipped:
                hits.append(f"{f.relative_to(ROOT)}: {m.group(0)}")
    assert not hits, hits
