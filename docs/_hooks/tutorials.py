"""MkDocs hook: render the tutorial scripts (jupytext py:percent) as documentation pages.

A page whose source holds the marker `<!-- tutorial: NN_name.py -->` gets, in its place, the
script `tutorials/NN_name.py` turned into Markdown: markdown cells (`# %% [markdown]`) become
text, code cells (`# %%`) become Python code blocks, and links to sibling tutorials
(`02_reaching.py`) point to their pages. The scripts stay the single source.
"""

from __future__ import annotations

import re
from pathlib import Path

MARKER = re.compile(r"<!--\s*tutorial:\s*([0-9A-Za-z_.-]+\.py)\s*-->")
SIBLING = re.compile(r"\]\((\d\d_[0-9A-Za-z_]+)\.py\)")


def _strip_header(lines: list[str]) -> list[str]:
    """Drop the jupytext YAML header (`# ---` ... `# ---`) at the top."""
    if lines and lines[0].strip() == "# ---":
        for i in range(1, len(lines)):
            if lines[i].strip() == "# ---":
                return lines[i + 1 :]
    return lines


def _uncomment(line: str) -> str:
    if line.startswith("# "):
        return line[2:]
    return line[1:] if line.startswith("#") else line


def percent_to_markdown(text: str) -> str:
    """The Markdown rendering of a py:percent script."""
    cells: list[tuple[str, list[str]]] = []
    for line in _strip_header(text.splitlines()):
        if line.startswith("# %%"):
            kind = "markdown" if "[markdown]" in line else "code"
            cells.append((kind, []))
        elif cells:
            cells[-1][1].append(line)
    parts = []
    for kind, body in cells:
        while body and not body[-1].strip():
            body.pop()
        while body and not body[0].strip():
            body.pop(0)
        if not body:
            continue
        if kind == "markdown":
            parts.append("\n".join(_uncomment(line) for line in body))
        else:
            parts.append("```python\n" + "\n".join(body) + "\n```")
    return SIBLING.sub(r"](\1.md)", "\n\n".join(parts)) + "\n"


def on_page_markdown(markdown, page, config, files, **kwargs):
    """Replace a tutorial marker by the rendered script."""
    root = Path(config.config_file_path).resolve().parent

    def render(match):
        path = root / "tutorials" / match.group(1)
        return percent_to_markdown(path.read_text(encoding="utf-8"))

    return MARKER.sub(render, markdown)
