#!/usr/bin/env python
"""Unbacked figures: measured-looking numbers in a notebook's prose that neither its saved outputs
nor its code contain (issue 15). A figure in the prose must be printed by a cell, so that a re-run
that changes it shows up in the outputs instead of leaving the text wrong.

  python .ci/figures.py [NOTEBOOK ...]     # default: every notebook in nbs/; exits 1 if any has one

Measured-looking: a decimal (0.289), or a number with a unit or ratio sign (1.6×, 3x, 12 ms, 40 µs,
2 s, 97%, 4.5 MB / MiB / GB / GiB). Not checked: 0, 1, 2; a line holding a link (a citation); a
number right after a name such as Python, torch or opset (a version). Figures are looked up, with
thousands separators removed, in the text of every saved output and the source of every code cell.
The same rule as the course's teaching-report tool (`--fail-on-unbacked`).
"""
from __future__ import annotations
import json, re, sys
from pathlib import Path

NBS = Path(__file__).resolve().parents[1]/"nbs"
FIG = re.compile(r"(?<![\w.])(\d+(?:[.,]\d+)?)\s*(×|x\b|ms\b|µs\b|s\b|%|GiB\b|MiB\b|MB\b|GB\b)|(?<![\w.])(\d+\.\d+)(?![\w.])")
VERSION = re.compile(r"(python|pytorch|torch|torchvision|version|opset|nbdev|onnx|onnxruntime|cuda|numpy|v)\s*$", re.I)
TRIVIAL = {"0", "1", "2"}

def _text(x) -> str: return "".join(x) if isinstance(x, list) else (x or "")

def _outputs(c) -> str:
    out = []
    for o in c.get("outputs", []):
        if "text" in o: out.append(_text(o["text"]))
        out += [_text(v) for k, v in o.get("data", {}).items() if k.startswith("text/")]
        if o.get("output_type") == "error": out.append(o.get("evalue", ""))
    return "\n".join(out)

def unbacked(nb: dict) -> list[str]:
    "The prose figures of a notebook that no saved output and no code cell contains."
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    corpus = ("\n".join(_outputs(c) for c in code) + "\n" + "\n".join(_text(c["source"]) for c in code)).replace(",", "")
    found = []
    for c in nb["cells"]:
        if c["cell_type"] != "markdown": continue
        for line in _text(c["source"]).splitlines():
            if "](http" in line or line.lstrip().startswith("[!["): continue  # a citation or a badge
            for m in FIG.finditer(line):
                num = (m.group(1) or m.group(3)).replace(",", "")
                if num in TRIVIAL or VERSION.search(line[max(0, m.start() - 14):m.start()]): continue
                if num not in corpus: found.append(m.group(0).strip())
    return found

def main(paths: list[str]) -> int:
    nbs = [Path(p) for p in paths] or sorted(p for p in NBS.glob("*.ipynb") if not p.name.startswith(("_", ".")))
    bad = 0
    for p in nbs:
        figs = unbacked(json.loads(p.read_text(encoding="utf-8")))
        print(f"{'FAIL' if figs else 'ok  '}  {p.name}" + (f": prose figures no output or code shows: {', '.join(figs)}" if figs else ""))
        bad += bool(figs)
    return 1 if bad else 0

if __name__ == "__main__": sys.exit(main(sys.argv[1:]))
