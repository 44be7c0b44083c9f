#!/usr/bin/env python
"""One source for the learner's ways in: every chapter's Colab badge and install cell come from settings.ini.

- The badge opens the chapter's solution-free copy in `student/` (written by `make_student_copies`, kept in the
  repository so that Colab can open it), on the branch and repository of settings.ini's `git_url`.
- The install cell installs the course from that same `git_url`, with the extras the chapter's code needs
  (`export` for ONNX, `lightning` for Lightning), and nothing else: Colab's own packages stay as they are.
- Every solution cell is folded on the docs site (`#| code-fold: true`), so a stuck learner can open it and
  nobody sees it by accident.

  python .ci/colab_cells.py            rewrite the cells of every chapter, then student/
  python .ci/colab_cells.py --check    list what disagrees (CI); exit 1 if anything does
"""
from __future__ import annotations
import argparse, json, re, shutil, sys, tempfile
from configparser import ConfigParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS, STUDENT = ROOT/"nbs", ROOT/"student"
FOLD = ["#| code-fold: true", '#| code-summary: "Solution"']
GUARD = 'if "google.colab" in sys.modules:'

def settings() -> dict:
    cfg = ConfigParser(delimiters=["="]); cfg.read(ROOT/"settings.ini", encoding="utf-8")
    return dict(cfg["DEFAULT"])

def chapters() -> list[Path]:
    return sorted(p for p in NBS.glob("*.ipynb") if not p.name.startswith(("_", ".")) and p.name != "index.ipynb")

def _src(c) -> str: return "".join(c["source"]) if isinstance(c["source"], list) else c["source"]

def extras(nb: dict) -> list[str]:
    "The package extras a chapter's code imports: `export` (ONNX) and `lightning`."
    code = "\n".join(_src(c) for c in nb["cells"] if c["cell_type"] == "code")
    out = []
    uses = lambda mods: re.search(rf"\bimport\s+[\w., ]*(?<![\w.])({mods})\b|\bfrom\s+({mods})\b|(?:find_spec|import_module)\(\s*[\"']({mods})[\"']", code)
    if uses(r"onnx|onnxruntime|onnxscript|pytorch_playground\.export"): out.append("export")
    if uses(r"lightning|pytorch_lightning"): out.append("lightning")
    return out

def badge(name: str, cfg: dict) -> str:
    repo = cfg["git_url"].rstrip("/").removesuffix(".git").split("github.com/", 1)[1]
    url = f"https://colab.research.google.com/github/{repo}/blob/{cfg['branch']}/student/{name}"
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"

KEEP = "/tmp/preinstalled.txt"

def pip_line(nb: dict, cfg: dict) -> str:
    ex = extras(nb)
    spec = f"{cfg['lib_name']}{'[' + ','.join(ex) + ']' if ex else ''} @ git+{cfg['git_url'].rstrip('/')}.git"
    return f'!pip install -q -c {KEEP} "{spec}"'

def install_cell(nb: dict, cfg: dict) -> str:
    "Pin what is installed (pip freeze, less direct links, which pip refuses as constraints), then install on top."
    return ("#| hide\nimport sys\n" + GUARD + "  # only on Colab: install the course; Colab's own packages stay as they are\n"
            f"    !pip freeze --exclude {cfg['lib_name']} | grep -v ' @ ' > {KEEP}\n"
            f"    {pip_line(nb, cfg)}")

def _is_solution(c) -> bool:
    return c["cell_type"] == "code" and "### BEGIN SOLUTION" in [l.strip() for l in _src(c).splitlines()]

def folded(src: str) -> str:
    "A solution cell's source with the fold directives after its other `#|` lines (idempotent)."
    lines = [l for l in src.splitlines() if l.strip() not in FOLD]
    k = next((i for i, l in enumerate(lines) if not l.replace(" ", "").startswith("#|")), len(lines))
    return "\n".join(lines[:k] + FOLD + lines[k:])

def sync(path: Path, cfg: dict, write: bool) -> list[str]:
    "Bring one chapter's badge, install cell and solution folds in line with settings.ini; return what differed."
    nb = json.loads(path.read_text(encoding="utf-8"))
    cells, probs = nb["cells"], []
    b = next((i for i, c in enumerate(cells[:5]) if c["cell_type"] == "markdown" and "colab-badge" in _src(c)), None)
    k = next((i for i, c in enumerate(cells[:6]) if c["cell_type"] == "code" and GUARD in _src(c)), None)
    if b is None or k is None: return [f"{path.name}: no Colab badge or guarded install cell in the first cells"]
    want = {b: badge(path.name, cfg), k: install_cell(nb, cfg)}
    want.update({i: folded(_src(c)) for i, c in enumerate(cells) if _is_solution(c)})
    for i, text in want.items():
        if _src(cells[i]) != text:
            probs.append(f"{path.name}, cell {i + 1}: " + ("badge" if i == b else "install cell" if i == k else "solution not folded"))
            cells[i]["source"] = text
    if probs and write: path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return probs

def student_drift() -> list[str]:
    "Where student/ differs from fresh learner copies of nbs/ (or lacks one, or holds one too many)."
    from pytorch_playground.exercises import make_student_copies
    tmp = Path(tempfile.mkdtemp())
    try:
        fresh = {p.name: p.read_text(encoding="utf-8") for p in make_student_copies(NBS, tmp)}
        have = {p.name: p.read_text(encoding="utf-8") for p in STUDENT.glob("*.ipynb")}
    finally: shutil.rmtree(tmp, ignore_errors=True)
    return ([f"student/{n}: missing" for n in fresh if n not in have] + [f"student/{n}: stale" for n in fresh if n in have and have[n] != fresh[n]]
            + [f"student/{n}: no such chapter" for n in have if n not in fresh])

def write_student():
    from pytorch_playground.exercises import make_student_copies
    shutil.rmtree(STUDENT, ignore_errors=True)
    make_student_copies(NBS, STUDENT)

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="change nothing; list what disagrees and exit 1 if anything does")
    a = ap.parse_args(argv)
    cfg = settings()
    probs = [p for nb in chapters() for p in sync(nb, cfg, write=not a.check)]
    if a.check:
        probs += student_drift()
        for p in probs: print(p)
        print(f"{len(chapters())} chapters: {'all agree with settings.ini git_url ' + cfg['git_url'] if not probs else f'{len(probs)} problems'}")
        return 1 if probs else 0
    write_student()
    print(f"rewrote {len(probs)} cells; wrote student/ ({len(list(STUDENT.glob('*.ipynb')))} learner copies)")
    return 0

if __name__ == "__main__": sys.exit(main())
