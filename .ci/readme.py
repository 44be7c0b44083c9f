#!/usr/bin/env python
"""Write README.md from nbs/index.ipynb with nbconvert (Quarto, which nbdev_readme needs, is not
installable everywhere). Cells whose first line is `#| hide` are left out, as on the docs site."""
import argparse, json
from pathlib import Path
import nbformat
from nbconvert import MarkdownExporter

ROOT = Path(__file__).resolve().parents[1]

def render(nb_path: Path) -> str:
    nb = nbformat.read(nb_path, as_version=4)
    keep = []
    for c in nb.cells:
        first = c.source.lstrip().splitlines()[0] if c.source.strip() else ""
        if first.replace(" ", "") in ("#|hide", "#|exporti", "#|hide_input"): continue
        if c.cell_type == "code":
            c.source = "\n".join(l for l in c.source.splitlines() if not l.lstrip().startswith("#|"))
        keep.append(c)
    nb.cells = keep
    body, _ = MarkdownExporter().from_notebook_node(nb)
    head = "<!-- Generated from nbs/index.ipynb by .ci/readme.py: edit the notebook, not this file. -->\n\n"
    return head + body.strip() + "\n"

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=str(ROOT/"README.md"))
    a = ap.parse_args()
    Path(a.out).write_text(render(ROOT/"nbs/index.ipynb"), encoding="utf-8")
