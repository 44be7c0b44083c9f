#!/usr/bin/env python
"""Give every notebook the standard Python 3 kernelspec, so JupyterLab and Colab open it without asking,
and drop jupytext authoring metadata."""
import json, sys
from pathlib import Path
SPEC = {"display_name": "python3", "language": "python", "name": "python3"}  # as nbdev_clean writes it
changed = []
for p in sorted((Path(__file__).resolve().parents[1]/"nbs").glob("*.ipynb")):
    nb = json.loads(p.read_text(encoding="utf-8"))
    md = nb.setdefault("metadata", {})
    if md.get("kernelspec") != SPEC or "jupytext" in md:
        md["kernelspec"] = SPEC; md.pop("jupytext", None)  # jupytext's authoring metadata is noise here
        p.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"); changed.append(p.name)
print("kernelspec set in:", ", ".join(changed) or "nothing")
