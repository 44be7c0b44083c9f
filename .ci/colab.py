#!/usr/bin/env python
"""`make colab`: the course on Colab's own packages, installed the way each chapter's Colab cell installs it.

1. A fresh virtual environment (the newest Python on this machine; Colab's CPU runtime uses 3.13) gets exactly
   the versions of .ci/colab-constraints.txt, a dated list of Colab's preinstalled packages that the course touches.
2. Each distinct install cell of the chapters runs there, word for word, with its `git+<git_url>` replaced by
   this checkout (a copy of it, as `make compat` does).
3. Any preinstalled package whose version changed fails the job; packages the course adds are listed.
4. Every chapter runs top to bottom in a fresh kernel of that environment, slow cells included (a cell that
   needs a GPU is skipped here, as on Colab's CPU runtime), with the kernel the environment's own ipykernel gives.

  python .ci/colab.py [--json FILE] [--reuse] [--only 04_training.ipynb,...]

pip's cache is reused, so only the first run downloads. Needs only the Python standard library.
"""
from __future__ import annotations
import argparse, json, os, re, shlex, shutil, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT/"_work"/"colab"   # git-ignored
CONSTRAINTS = ROOT/".ci"/"colab-constraints.txt"
COLAB_PYTHON = "3.13"
sys.path.insert(0, str(ROOT/".ci"))
import colab_cells as cc
from compat import sh  # run quietly into a log; raise with the log's tail on failure

def newest_python() -> str:
    "The newest CPython on this machine: python3.13 ... python3.10 on PATH, or pyenv's, else this one."
    cands = []
    for v in ("3.14", "3.13", "3.12", "3.11", "3.10"):
        cands += [shutil.which(f"python{v}"), *map(str, sorted(Path("~/.pyenv/versions").expanduser().glob(f"{v}.*/bin/python")))]
    for exe in filter(None, cands):
        r = subprocess.run([exe, "-c", "import venv, sys; print(sys.version.split()[0])"], capture_output=True, text=True)
        if r.returncode == 0: return exe
    return sys.executable

def freeze(venv: Path) -> dict[str, str]:
    r = subprocess.run([venv/"bin"/"python", "-m", "pip", "list", "--format", "json", "--disable-pip-version-check"],
                       capture_output=True, text=True, check=True)
    return {d["name"].lower().replace("_", "-"): d["version"] for d in json.loads(r.stdout)}

def tree() -> Path:
    t = WORK/"tree"
    shutil.rmtree(t, ignore_errors=True)
    shutil.copytree(ROOT, t, ignore=shutil.ignore_patterns(".git", ".venv", "_work", "_proc", "_docs", "ci-artifacts", "learner",
                                                          "*.egg-info", ".ipynb_checkpoints", "__pycache__", "build"))
    return t

def install_commands(t: Path) -> list[list[str]]:
    "Each distinct pip command of the chapters' install cells, its git URL replaced by the copy of this checkout."
    cfg, cmds = cc.settings(), []
    url = f"git+{cfg['git_url'].rstrip('/')}.git"
    for p in cc.chapters():
        nb = json.loads(p.read_text(encoding="utf-8"))
        for c in nb["cells"]:
            s = cc._src(c)
            if c["cell_type"] != "code" or cc.GUARD not in s: continue
            lines = [l.strip()[1:] for l in s.splitlines() if l.strip().startswith("!")]  # the shell lines, in order
            if not any(url in l for l in lines): raise SystemExit(f"{p.name}: the install cell does not use settings.ini's git_url {url}")
            lines = [l.replace(url, t.resolve().as_uri()) for l in lines]
            if lines not in cmds: cmds.append(lines)
    return cmds

RUNNER = r'''
import json, sys, time, nbformat
from nbclient import NotebookClient
path, out = sys.argv[1], sys.argv[2]
nb = nbformat.read(path, as_version=4)
nb.cells = [c for c in nb.cells if not (c.cell_type == "code" and any(l.replace(" ", "") == "#|cuda" for l in c.source.splitlines()[:5]))]
t0, err = time.perf_counter(), ""
try: NotebookClient(nb, timeout=1200, kernel_name="python3", resources={"metadata": {"path": str(__import__("pathlib").Path(path).parent)}}).execute()
except Exception as e: err = f"{type(e).__name__}: {str(e)[-1500:]}"
json.dump({"seconds": time.perf_counter() - t0, "error": err}, open(out, "w"))
'''

def run_all(venv: Path, t: Path, only: list[str]|None, jobs: int=1) -> dict[str, dict]:
    "Every chapter (and the front page) top to bottom in a fresh kernel of the Colab venv, `jobs` at a time."
    nbs = [p for p in sorted((t/"nbs").glob("*.ipynb")) if not p.name.startswith(("_", ".")) and (not only or p.name in only)]
    (WORK/"runner.py").write_text(RUNNER)
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1", "PATH": f"{venv/'bin'}:{os.environ.get('PATH', '')}",
           "VIRTUAL_ENV": str(venv), "JUPYTER_DATA_DIR": str(WORK/"jupyter-data")}  # no user kernelspec shadows the venv's
    env.pop("PYTHONPATH", None)
    res, queue, running = {}, list(nbs), []
    while queue or running:
        while queue and len(running) < jobs:
            p = queue.pop(0); out = WORK/f"{p.stem}.json"; out.unlink(missing_ok=True)
            running.append((p, out, subprocess.Popen([venv/"bin"/"python", WORK/"runner.py", p, out], env=env, cwd=p.parent,
                                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
        time.sleep(0.5)
        for item in [r for r in running if r[2].poll() is not None]:
            running.remove(item); p, out, proc = item
            res[p.name] = json.loads(out.read_text()) if out.exists() else {"seconds": 0, "error": f"runner exited {proc.returncode}"}
            print(f"{'PASS' if not res[p.name]['error'] else 'FAIL'}  {p.name}  ({res[p.name]['seconds']:.0f} s)"
                  + (f"\n      {res[p.name]['error'][-600:]}" if res[p.name]["error"] else ""), flush=True)
    return res

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--reuse", action="store_true", help="keep an existing Colab venv (quicker re-runs)")
    ap.add_argument("--only", default="", help="chapters to run, comma-separated (default: all)")
    ap.add_argument("--jobs", type=int, default=1, help="notebooks run at once. Each kernel uses every core, as on Colab, so "
                    "one at a time is faster here: 545 s for all with slow cells, against 903 s two at a time (2 cores)")
    ap.add_argument("--build-only", action="store_true", help="only build the venv of Colab's packages (.ci/run does this "
                    "in the background while the main suite runs, then calls this script again with --reuse)")
    a = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True); log = WORK/"colab.log"; log.write_text("")
    venv, t0 = WORK/"venv", time.perf_counter()
    date = (m := re.search(r"release (\d{4}\.\d{2})", CONSTRAINTS.read_text())) and f"Colab {m[1]}" or "undated"
    pins = dict(re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)", CONSTRAINTS.read_text(), re.M))
    python = newest_python()
    t = tree()
    if not (a.reuse and (venv/"bin"/"python").exists()):
        shutil.rmtree(venv, ignore_errors=True)
        sh([python, "-m", "venv", venv], log)
        sh([venv/"bin"/"python", "-m", "pip", "install", "-q", "--upgrade", "pip"], log)
        sh([venv/"bin"/"python", "-m", "pip", "install", "-q", "-r", CONSTRAINTS], log)
    py = subprocess.run([venv/"bin"/"python", "-c", "import platform; print(platform.python_version())"], capture_output=True, text=True).stdout.strip()
    if a.build_only:
        print(f"Colab venv built ({time.perf_counter() - t0:.0f} s): Python {py}, {len(pins)} pinned packages ({date})"); return
    before = freeze(venv)
    off = {k: before.get(k.lower().replace("_", "-")) for k, v in pins.items() if before.get(k.lower().replace("_", "-")) != v}
    if off: raise SystemExit(f"the Colab venv does not hold the listed versions: {off}")
    t1 = time.perf_counter()
    print(f"Colab venv ({t1 - t0:.0f} s): Python {py} (Colab's CPU runtime: {COLAB_PYTHON}), {len(pins)} pinned packages from "
          f"{CONSTRAINTS.relative_to(ROOT)} ({date}), {len(before)} in all")
    cmds = install_commands(t)
    env = {**os.environ, "PATH": f"{venv/'bin'}:{os.environ.get('PATH', '')}", "VIRTUAL_ENV": str(venv)}
    for lines in cmds:  # each cell's shell lines word for word, `pip` being the Colab venv's
        for line in lines:
            print(line.replace(t.resolve().as_uri(), "<checkout>"))
            sh(["bash", "-c", line], log, cwd=t, env=env)
    after = freeze(venv)
    changed = {k: f"{v} -> {after.get(k, 'removed')}" for k, v in before.items() if after.get(k) != v}
    added = sorted(k for k in after if k not in before)
    t2 = time.perf_counter()
    print(f"install cells ({t2 - t1:.0f} s): {len(cmds)} distinct commands; {len(changed)} of {len(before)} preinstalled "
          f"packages changed version{': ' + str(changed) if changed else ''}; {len(added)} added: {', '.join(added)}")
    res = run_all(venv, t, a.only.split(",") if a.only else None, a.jobs)
    t3 = time.perf_counter()
    ok = sum(not r["error"] for r in res.values())
    print(f"every chapter in a fresh kernel, slow cells included: {ok} of {len(res)} pass ({t3 - t2:.0f} s); "
          f"make colab took {t3 - t0:.0f} s in all; log: {log.relative_to(ROOT)}")
    if a.json:
        Path(a.json).write_text(json.dumps({"python": py, "date": date, "changed": changed, "added": added,
                                            "results": {k: not v["error"] for k, v in res.items()}}))
    sys.exit(0 if ok == len(res) and not changed else 1)

if __name__ == "__main__": main()
