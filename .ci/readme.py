#!/usr/bin/env python
"""Write README.md from nbs/index.ipynb with nbconvert (Quarto, which nbdev_readme needs, is not
installable everywhere). Cells whose first line is `#| hide` are left out, as on the docs site.

Links in index.ipynb are relative to nbs/ (where the docs site reads them); README.md sits at the
repository root, so each relative link is rewritten to the same file seen from there
(`00_tensors.ipynb` -> `nbs/00_tensors.ipynb`), which is where GitHub resolves it. setup.py turns
them into absolute GitHub links for PyPI, and `.ci/checks.py --only readme` checks they all resolve."""
import argparse, os, re
from pathlib import Path
import nbformat
from nbconvert import MarkdownExporter

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/"nbs"
# a markdown link or image target: ](target) or ](target#anchor)
LINK = re.compile(r"(\]\()([^)\s]+)(\))")

def relative_links(md: str) -> list[str]:
    "Every link target in `md` that is neither a URL nor an in-page anchor."
    return [m[2] for m in LINK.finditer(md) if not re.match(r"[a-z][a-z0-9+.-]*:|#", m[2])]

def _from_root(target: str) -> str:
    path, sep, anchor = target.partition("#")
    return os.path.relpath(os.path.normpath(NBS/path), ROOT).replace(os.sep, "/") + sep + anchor

def rebase_links(md: str) -> str:
    "Rewrite links relative to nbs/ so that they resolve from the repository root."
    return LINK.sub(lambda m: m[1] + (_from_root(m[2]) if m[2] in relative_links(m[0]) else m[2]) + m[3], md)

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
    return head + rebase_links(body.strip()) + "\n"

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=str(ROOT/"README.md"))
    a = ap.parse_args()
    Path(a.out).write_text(render(NBS/"index.ipynb"), encoding="utf-8")
