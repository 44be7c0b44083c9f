#!/usr/bin/env python
"""The course's test suite: every check CI runs, each counted as passed or failed.

Run through `make test` (which builds .venv first) or `.ci/run`. Ends with one line
`N passed, N failed` and exits non-zero when anything failed. Steps can be picked with
`--only export,clean,...`; see STEPS at the bottom.
"""
from __future__ import annotations
import argparse, json, os, re, shutil, subprocess, sys, tempfile, time, traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/"nbs"
BIN = Path(sys.executable).parent
RESULTS: list[tuple[str, bool, float, str]] = []
ART = ROOT/"ci-artifacts"

def notebooks() -> list[Path]:
    "The learner's sequence: the chapters in nbs/."
    return sorted(p for p in NBS.glob("*.ipynb") if not p.name.startswith(("_", ".")))

def internals() -> list[Path]:
    "The library's internals notebooks (nbs/internals/): outside the learner's sequence, tested like the chapters."
    return sorted(p for p in (NBS/"internals").glob("*.ipynb") if not p.name.startswith(("_", ".")))

def rel(p: Path) -> str: return p.relative_to(NBS).as_posix()

def sh(cmd, timeout=1800, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=kw.pop("cwd", ROOT), capture_output=True, text=True, timeout=timeout, **kw)

def record(name: str, fn):
    "Run one check; any exception is a failure whose message is printed."
    t0 = time.perf_counter()
    try:
        fn(); ok, msg = True, ""
    except Exception as e:
        ok, msg = False, (str(e) or traceback.format_exc()).strip()
    dt = time.perf_counter() - t0
    RESULTS.append((name, ok, dt, msg))
    print(f"{'PASS' if ok else 'FAIL'}  {dt:7.1f}s  {name}", flush=True)
    if msg: print("      " + msg[-4000:].replace("\n", "\n      "), flush=True)

def git_diff(*paths) -> str:
    return sh(["git", "status", "--porcelain", "--", *paths]).stdout.strip()

def run_ok(cmd, timeout=1800, **kw):
    r = sh(cmd, timeout=timeout, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"`{' '.join(map(str, cmd))}` exited {r.returncode}\n{(r.stdout + r.stderr)[-6000:]}")
    return r

# --- steps -------------------------------------------------------------------------------------
def step_export():
    def f():
        before = git_diff("pytorch_playground")
        run_ok([BIN/"nbdev_export"])
        after = git_diff("pytorch_playground")
        if after != before: raise AssertionError(f"nbdev_export changed the package; run it and commit:\n{after}")
    record("nbdev_export leaves no diff (notebooks and package in sync)", f)

def step_clean():
    def f():
        before = git_diff("nbs")
        run_ok([BIN/"nbdev_clean"])
        after = git_diff("nbs")
        if after != before: raise AssertionError(f"nbdev_clean changed notebooks; run it and commit:\n{after}")
    record("nbdev_clean leaves no diff (notebooks clean of metadata noise)", f)

def step_hygiene():
    for p in notebooks() + internals():
        def f(p=p):
            nb = json.loads(p.read_text(encoding="utf-8"))
            code = [c for c in nb["cells"] if c["cell_type"] == "code"]
            errs = [i for i, c in enumerate(code) if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
            if errs: raise AssertionError(f"error output in code cells {errs}")
            counts = [c["execution_count"] for c in code if c.get("execution_count") is not None]
            if counts != sorted(counts) or len(set(counts)) != len(counts):
                raise AssertionError("execution counts out of order: run the notebook top to bottom in a fresh kernel")
            if code and not any(c.get("outputs") for c in code) and rel(p).count("/") == 0:
                raise AssertionError("no saved outputs")  # a chapter shows what it runs; an internals notebook may be all silent checks
            if nb.get("metadata", {}).get("kernelspec", {}).get("name") != "python3":
                raise AssertionError("no python3 kernelspec: run `python .ci/kernelspec.py`")
        record(f"{rel(p)}: saved outputs, no errors, run in order", f)

def step_readme():
    def f():
        with tempfile.TemporaryDirectory() as d:
            run_ok([sys.executable, ROOT/".ci/readme.py", "--out", Path(d)/"README.md"])
            new = (Path(d)/"README.md").read_text(encoding="utf-8")
        if new != (ROOT/"README.md").read_text(encoding="utf-8"):
            raise AssertionError("README.md is not in step with nbs/index.ipynb: run `python .ci/readme.py` and commit")
    record("README.md is generated from nbs/index.ipynb and in step", f)
    sys.path.insert(0, str(ROOT/".ci")); import readme
    def links():
        md = (ROOT/"README.md").read_text(encoding="utf-8")
        bad = [l for l in readme.relative_links(md) if not (ROOT/l.partition("#")[0]).exists()]
        if bad: raise AssertionError(f"README.md links to files the repository does not have: {bad}")
        print(f"      {len(readme.relative_links(md))} relative links in README.md, all resolve from the repository root")
    record("every relative link in README.md resolves", links)
    def example():
        md = (ROOT/"README.md").read_text(encoding="utf-8")
        blocks = re.findall(r"```python\n(.*?)```", md, re.S)
        if not blocks: raise AssertionError("README.md has no ```python example")
        with tempfile.TemporaryDirectory() as d:  # it writes ./checkpoints: keep that out of the clone
            for i, code in enumerate(blocks):
                (Path(d)/f"readme_{i}.py").write_text(code, encoding="utf-8")
                r = run_ok([sys.executable, f"readme_{i}.py"], timeout=600, cwd=d, env={**os.environ, "TQDM_DISABLE": "1"})
                print("      " + r.stdout.strip().replace("\n", "\n      "))
    record("README.md's python example runs as it stands", example)

TIMES: dict[str, float] = {}
def step_nbdev_test():
    for p in notebooks() + internals():
        def f(p=p):
            t0 = time.perf_counter()
            try: run_ok([BIN/"nbdev_test", "--path", p, "--do_print", "--timing"], timeout=900)
            finally: TIMES[rel(p)] = time.perf_counter() - t0
        record(f"nbdev_test {rel(p)}", f)
    total = sum(TIMES.values())
    print("\nPer-notebook nbdev_test times (budget: 60 s each, 300 s in all; printed, not asserted):")
    for k, v in TIMES.items(): print(f"  {k:<34} {v:6.1f} s{'   over budget' if v > 60 else ''}")
    print(f"  {'total':<34} {total:6.1f} s{'   over budget' if total > 300 else ''}\n")

def step_proc_nbs():
    # .ci/bin/quarto stands in for Quarto so that nbdev does not try to install it (with sudo and a global pip)
    env = {**os.environ, "PATH": f"{ROOT/'.ci/bin'}:{BIN}:{os.environ.get('PATH', '')}"}
    def f():
        try: run_ok([BIN/"nbdev_proc_nbs", "--n_workers", "1"], timeout=900, env=env)
        finally: (NBS/"nbdev.yml").unlink(missing_ok=True)  # written for Quarto beside the chapters: not part of the course
    record("nbdev_proc_nbs succeeds (docs pipeline up to Quarto)", f)

def step_learner_copies():
    from pytorch_playground.exercises import make_student_copies, verify_student_copy, expected_checks, has_solutions
    out = Path(tempfile.mkdtemp(prefix="learner-"))
    written = make_student_copies(NBS, out)
    for dest in written:
        src = NBS/dest.name
        nb = json.loads(src.read_text(encoding="utf-8"))
        # only notebooks with solution blocks have exercises (99_exercises only demonstrates checks)
        if not (has_solutions(nb) and expected_checks(nb)): continue
        def f(src=src, dest=dest):
            # the copy holds no solution and no wrong answer, and keeps every check; that each check fails on the
            # stubbed cell is judged by the `exercises` step, in the kernel that runs the lesson once
            learner = json.loads(dest.read_text(encoding="utf-8"))
            text = "\n".join("".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in learner["cells"])
            marks = ("### BEGIN SOLUTION", "### END SOLUTION", "### BEGIN WRONG ANSWER", "### END WRONG ANSWER")
            left = sorted({l.strip() for l in text.splitlines() if l.strip().startswith(marks)})
            if left: raise AssertionError(f"the learner copy still holds {left}")
            if expected_checks(learner) != expected_checks(nb): raise AssertionError("the learner copy lost exercise checks")
            kept = [c for c in learner["cells"] if c["cell_type"] == "code" and c.get("outputs")
                    and not "".join(c["source"]).startswith("#| slow")]   # a slow cell keeps its saved result
            if kept: raise AssertionError(f"outputs left in the learner copy ({len(kept)} cells that are not slow)")
            print(f"      {len(expected_checks(learner))} checks, every solution stubbed")
        record(f"learner copy of {src.name}: solutions and wrong answers stripped, checks kept", f)
    def g():
        bad = [p.name for p in notebooks() if p.name not in ("index.ipynb", "99_exercises.ipynb")
               and not expected_checks(json.loads(p.read_text(encoding="utf-8")))]
        if bad: raise AssertionError(f"chapters without exercise checks: {bad}")
    record("every chapter has exercises", g)

def step_pytest():
    tests = sorted((ROOT/"tests").glob("test_*.py"))
    if not tests:
        print("no pytest files in tests/"); return
    xml = Path(tempfile.mkdtemp())/"junit.xml"
    r = sh([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}", "tests"], timeout=2400)
    print(r.stdout[-6000:], r.stderr[-2000:])
    import xml.etree.ElementTree as ET
    if not xml.exists():
        RESULTS.append(("pytest tests/", False, 0.0, f"pytest exited {r.returncode} without a report")); return
    for tc in ET.parse(xml).getroot().iter("testcase"):
        failed = tc.find("failure") is not None or tc.find("error") is not None
        if tc.find("skipped") is not None: continue
        RESULTS.append((f"pytest {tc.get('classname')}::{tc.get('name')}", not failed, float(tc.get("time", 0)), ""))

sys.path.insert(0, str(ROOT/".ci"))
import learner_paths as lp
KTIMES: dict[str, dict[str, float]] = {"nbs": {}}

def step_kernel():
    """Every notebook in a fresh standard Jupyter kernel from nbs/, outputs compared with the saved ones.
    Runs from a folder other than nbs/ are covered elsewhere, without a third pass over the course:
    the learner copies run outside the sources, and `make compat` runs every notebook in a copy."""
    for p in notebooks() + internals():
        def f(p=p):
            t0 = time.perf_counter()
            saved, fresh = lp.execute_in_kernel(p, cwd=p.parent)
            KTIMES["nbs"][rel(p)] = time.perf_counter() - t0
            stale = lp.stale_outputs(saved, fresh)
            if stale: raise AssertionError("saved outputs are stale (re-run with `make nb NB=...`):\n" + "\n".join(stale[:8]))
        record(f"kernel run from its folder, outputs current: {rel(p)}", f)
    for k, v in KTIMES.items(): print(f"kernel runs ({k}): {sum(v.values()):.0f} s in all")

# chapters opened in JupyterLab: 00 (the first a learner runs), 04 (loss plots; its progress bars, when saved), 02 (image grids).
# Each must render on the page every image and finished progress bar that its saved Run All holds, and at
# least the counts below (so a chapter that stopped drawing its plots or bars fails too).
BROWSER = {"00_tensors.ipynb": {"images": 1}, "04_training.ipynb": {"images": 3}, "02_data.ipynb": {"images": 4}}

def step_browser():
    try: lp.chromium_path()
    except FileNotFoundError as e:
        if os.environ.get("CI"): raise  # CI must run the browser check: a missing browser is a failure there
        print(f"SKIP  browser check (JupyterLab in Chromium): {e}"); return
    for nb_name, want in BROWSER.items():
        def f(nb_name=nb_name, want=want):
            r = lp.browser_run_all(nb_name)
            seen = r["page"]
            print(f"      JupyterLab Run All of {nb_name}: {r['cells']} code cells in {r['run_s']:.0f} s; the page shows "
                  f"{seen['images']} images, {seen['bars']} finished progress bars; screenshots in ci-artifacts/")
            if r["errors"] or seen["errors"]: raise AssertionError(f"error outputs after Run All in JupyterLab: {r['errors'][:5]}")
            if r["unrun_cells"]: raise AssertionError(f"cells left unrun after Run All: {r['unrun_cells'][:10]}")
            need = {k: max(want.get(k, 0), r["saved"][k]) for k in ("images", "bars")}
            short = {k: f"{seen[k]} on the page < {n}" for k, n in need.items() if seen[k] < n}
            if short: raise AssertionError(f"the page does not render what the chapter shows: {short}")
            if seen["warnings"]: raise AssertionError(f"warnings printed on the page: {seen['warnings'][:3]}")
            if r["popups"]: raise AssertionError(f"{r['popups']} dialog or notification(s) cover the page")
            if r["log_noise"]: raise AssertionError(f"JupyterLab's log has noise: {r['log_noise'][:3]}")
        record(f"JupyterLab in headless Chromium: Run All of {nb_name} renders, no error", f)

def step_docs():
    def sidebar():
        listed = lp.sidebar_entries()
        missing = [rel(p) for p in notebooks() + internals() if rel(p) not in listed]
        gone = [n for n in listed if not (NBS/n).exists()]
        if missing or gone: raise AssertionError(f"sidebar.yml misses {missing}; lists missing files {gone}")
    record("every chapter and internals notebook appears in the docs sidebar", sidebar)
    def links():
        bad = [f"{p.name} -> {l}" for p in notebooks() for l in lp.internal_links(json.loads(p.read_text(encoding="utf-8")))
               if not (NBS/l).exists()]
        if bad: raise AssertionError(f"links to chapters that do not exist: {bad}")
    record("internal links between chapters resolve", links)
    for p in notebooks() + internals():
        def imports(p=p):
            bad = lp.mixed_import_cells(p)
            if bad: raise AssertionError("imports must stand in cells of their own (nbdev's docs build runs such cells "
                                         "out of context): " + "; ".join(bad[:6]))
        record(f"imports in cells of their own: {rel(p)}", imports)
    def proc_links():
        proc = ROOT/"_proc"
        if not proc.exists(): raise AssertionError("_proc/ missing: run the proc_nbs step first")
        missing = [rel(p) for p in notebooks() + internals() if not (proc/rel(p)).exists()]
        if missing: raise AssertionError(f"nbdev_proc_nbs did not write {missing}")
    record("nbdev_proc_nbs wrote every chapter", proc_links)

def step_colab():
    "Issue 23: every badge and install cell from settings.ini's git_url, solutions folded, student/ current."
    import colab_cells as cc
    cfg = cc.settings()
    for p in cc.chapters():
        def f(p=p):
            probs = cc.sync(p, cfg, write=False)
            if probs: raise AssertionError("; ".join(probs) + ": run `python .ci/colab_cells.py` and commit")
            print(f"      {cc.pip_line(json.loads(p.read_text(encoding='utf-8')), cfg)}")
        record(f"Colab badge and install cell from settings.ini's git_url, solutions folded: {p.name}", f)
    def g():
        drift = cc.student_drift()
        if drift: raise AssertionError("; ".join(drift[:6]) + ": run `python .ci/colab_cells.py` and commit student/")
    record("student/ holds a current solution-free copy of every chapter (what the Colab badges open)", g)

def step_figures():
    "Issue 15: a measured-looking figure in the prose must be printed by a cell (or stand in code)."
    import figures
    for p in notebooks():
        def f(p=p):
            bad = figures.unbacked(json.loads(p.read_text(encoding="utf-8")))
            if bad: raise AssertionError(f"figures in the prose that no saved output or code cell shows: {', '.join(bad)}; "
                                         "print them from a cell (an f-string sentence) or drop them")
        record(f"prose figures backed by outputs: {p.name}", f)

def step_scratch():
    "What `make lab` shows in nbs/ is the course: run-time files go to nbs/_work/ (ignored), nothing else is left."
    def f():
        r = sh(["git", "status", "--porcelain", "--ignored", "--untracked-files=all", "--", "nbs"])
        # run-time files belong in a _work/ folder (nbs/_work/, or nbs/internals/_work/ beside an internals notebook)
        left = sorted({l[3:].rstrip("/") for l in r.stdout.splitlines() if l[:2] in ("??", "!!")
                       and not {"_work", ".ipynb_checkpoints"} & set(l[3:].split("/"))})
        if left: raise AssertionError(f"files left in nbs/ after the suite: {left}; write run-time files under nbs/_work/")
    record("nothing but the course and nbs/_work/ left in nbs/ after the runs", f)
    def g():
        text = (ROOT/"CONTRIBUTING.md").read_text(encoding="utf-8")
        out = re.findall(r"(?<![\w/])\.\./[^\s)`'\"]*", text)
        if out: raise AssertionError(f"CONTRIBUTING.md points outside the repository: {out}")
    record("CONTRIBUTING.md stands on its own (no paths outside the repository)", g)

def step_python_floor():
    "One Python floor everywhere (settings.ini min_python, pyproject.toml, README, CI's floor job, Makefile); the README's torch floor too."
    def f():
        from configparser import ConfigParser
        cfg = ConfigParser(delimiters=["="]); cfg.read(ROOT/"settings.ini", encoding="utf-8")
        py = cfg["DEFAULT"]["min_python"]
        fl = dict(re.findall(r"([A-Za-z0-9_.\-]+)>=([0-9][^,;\s]*)", cfg["DEFAULT"]["requirements"]))
        where = [("pyproject.toml", f'requires-python=">={py}"'), ("README.md", f"Python {py} or newer"),
                 (".github/workflows/test.yaml", f'python: "{py}"'), ("Makefile", "min_python"),
                 ("README.md", f"torch {fl['torch']} and torchvision {fl['torchvision']}")]
        bad = [f"{k} (expected {v!r})" for k, v in where if v not in (ROOT/k).read_text(encoding="utf-8")]
        if bad: raise AssertionError(f"settings.ini says min_python = {py}, torch>={fl['torch']}, but these files disagree: {bad}")
        print(f"      Python floor {py} and torch floor {fl['torch']} stated alike in settings.ini and " + ", ".join(sorted({k for k, _ in where})))
    record("one Python floor everywhere (settings.ini, pyproject.toml, README, CI, Makefile)", f)

def step_compat():
    "The floor versions of settings.ini in a separate venv, every notebook under nbdev_test (.ci/compat.py, `make compat`)."
    out = Path(tempfile.mkdtemp())/"compat.json"
    t0 = time.perf_counter()
    r = sh([sys.executable, ROOT/".ci/compat.py", "--json", out], timeout=1800)
    print("      " + (r.stdout + r.stderr).strip()[-4000:].replace("\n", "\n      "))
    if not out.exists():  # the floor venv could not be built
        RESULTS.append(("make compat: the floor versions install", False, time.perf_counter() - t0, r.stderr[-2000:])); return
    res = json.loads(out.read_text())
    RESULTS.append((f"make compat: the floor versions install (Python {res['python']})", True, 0.0, ""))
    for nb, ok in res["results"].items():
        RESULTS.append((f"nbdev_test on the floor versions: {nb}", ok, 0.0, "" if ok else "see _work/compat/compat.log"))

def step_colab_job():
    "Issue 23: the course installed as Colab's cells install it, on Colab's package versions (.ci/colab.py, `make colab`)."
    out = Path(tempfile.mkdtemp())/"colab.json"
    t0 = time.perf_counter()
    reuse = ["--reuse"] if os.environ.get("PP_COLAB_PREBUILT") else []  # .ci/run builds the venv during the main suite
    r = sh([sys.executable, ROOT/".ci/colab.py", "--json", out, *reuse], timeout=2400)
    print("      " + (r.stdout + r.stderr).strip()[-5000:].replace("\n", "\n      "))
    if not out.exists():
        RESULTS.append(("make colab: the Colab package set installs", False, time.perf_counter() - t0, r.stderr[-2000:])); return
    res = json.loads(out.read_text())
    RESULTS.append((f"make colab: Colab's package set ({res['date']}) on Python {res['python']}", True, 0.0, ""))
    RESULTS.append(("make colab: the install cells change no preinstalled package", not res["changed"], 0.0, str(res["changed"])))
    for nb, ok in res["results"].items():
        RESULTS.append((f"Colab package set, slow cells included: {nb}", ok, 0.0, "" if ok else "see _work/colab/colab.log"))

STEPS = {"export": step_export, "clean": step_clean, "hygiene": step_hygiene, "readme": step_readme,
         "colab": step_colab, "nbdev_test": step_nbdev_test, "proc_nbs": step_proc_nbs, "docs": step_docs,
         "kernel": step_kernel, "browser": step_browser, "learner": step_learner_copies,
         "exercises": lambda: __import__("exercise_checks").ci_step(record),
         "pytest": step_pytest, "figures": step_figures, "python_floor": step_python_floor,
         "scratch": step_scratch,
         "compat": step_compat, "colab_job": step_colab_job}
# `make compat` (a separate venv with the floor versions) is run on its own, after the main suite: .ci/run does both
# nbdev_test on its own is not repeated in the main suite: `make compat` runs it over every notebook (after the
# main suite), and here the `kernel` step executes the same cells (nbdev's skip flags) and compares the outputs,
# and the `exercises` step runs every chapter again with its checks. `--only nbdev_test` still runs it.
NOT_BY_DEFAULT = {"compat", "nbdev_test", "colab_job"}

def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", default="", help="comma-separated steps: " + ",".join(STEPS))
    args = ap.parse_args()
    os.chdir(ROOT); ART.mkdir(exist_ok=True)
    chosen = [s for s in args.only.split(",") if s] or [s for s in STEPS if s not in NOT_BY_DEFAULT]
    t0 = time.perf_counter()
    for s in chosen:
        print(f"\n=== {s} ===", flush=True); t = time.perf_counter()
        try: STEPS[s]()
        except Exception as e: RESULTS.append((f"step {s}", False, 0.0, str(e))); print(f"FAIL step {s}: {e}")
        print(f"--- {s}: {time.perf_counter() - t:.1f} s", flush=True)
    failed = [r for r in RESULTS if not r[1]]
    print(f"\nTotal time {time.perf_counter() - t0:.0f} s")
    if failed:
        print("Failed:"); [print("  -", r[0]) for r in failed]
    print(f"{len(RESULTS) - len(failed)} passed, {len(failed)} failed")
    sys.exit(1 if failed else 0)

if __name__ == "__main__": main()
