#!/usr/bin/env python
"""Issue 16: prove that every exercise check rejects wrong answers, not just empty ones.

For each notebook with exercises, ONE kernel runs the notebook top to bottom (skipping `#| slow` and
`#| cuda` cells, as every other run does). At each exercise's check cell, once the reference has
passed, the same kernel also runs:
  - every wrong answer written in the source, uncommented in place of its solution: the check must
    fail with ExerciseFailed of kind 'message' or 'error', i.e. with a reason a learner can act on
    (not a NameError, not a bare AssertionError, not fastcore's "==:" comparison);
  - mechanical mutants of each reference solution: drop the last statement, change one numeric
    literal, swap one operator (+/-, * and /, </>, <=/>=, ==/!=, and/or). A mutant is caught when the
    check fails, or when its own cell raises or runs past its time limit.
Before each variant the names the solution cell defines are removed, so that the check never sees
a value left over from the reference; afterwards the reference solution cell runs again. The reference
itself is also run a second time first: a learner re-runs cells, and an exercise whose check fails on a
second run (files or counters left by the first) would also make every verdict below it meaningless.

Prints per-notebook figures. Fails on a reference that fails its own check, an exercise without a
wrong answer, a wrong answer not caught with a helpful message, or fewer than 90% of the mutants
caught over all notebooks checked.

    python .ci/exercise_checks.py [NOTEBOOK ...] [--max-mutants N]   (default: every notebook in nbs/)
"""
from __future__ import annotations
import argparse, ast, json, os, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/"nbs"
MIN_CAUGHT = 0.90          # share of mutants the checks must catch over the course
HELPFUL = {"message", "error"}  # kinds of ExerciseFailed that tell a learner what is wrong
MAX_MUTANTS = 12           # per solution block, beyond "drop the last statement" (evenly spread)
MUTANT_BUDGET_S = 8.0      # per exercise: mutants stop once they have used this much time (slow solutions train models)

from pytorch_playground.exercises import (strip_solutions, exercise_blocks, exercise_cells, fill_solutions, _CHECK_NAME, _flags,
                                          _src, _is_solution_cell, has_solutions, expected_checks)

CATALOGUE = ROOT/"pytorch_playground"/"exercises.json"  # shipped with the package: `check` and `pp_grade` read it

# --- mutants ----------------------------------------------------------------------------------
_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.Lt: ast.Gt, ast.Gt: ast.Lt,
         ast.LtE: ast.GtE, ast.GtE: ast.LtE, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.And: ast.Or, ast.Or: ast.And}
_SYM = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Lt: "<", ast.Gt: ">", ast.LtE: "<=",
        ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=", ast.And: "and", ast.Or: "or"}

def _quiet_zone(tree) -> set[int]:
    "Nodes whose change alters no answer: inside print(...), *seed(...) calls and f-strings."
    ids = set()
    for n in ast.walk(tree):
        f = getattr(n, "func", None)
        name = getattr(f, "id", None) or getattr(f, "attr", "") if f is not None else ""
        if isinstance(n, ast.JoinedStr) or (isinstance(n, ast.Call) and (name == "print" or "seed" in name)):
            ids |= {id(m) for m in ast.walk(n)}
    return ids

def _sites(tree) -> list[tuple]:
    "Every spot a mutant may change, in ast.walk order."
    quiet, out = _quiet_zone(tree), []
    for n in ast.walk(tree):
        if id(n) in quiet: continue
        if isinstance(n, ast.Constant) and type(n.value) in (int, float): out.append(("num", n))
        elif isinstance(n, (ast.BinOp, ast.BoolOp)) and type(n.op) in _SWAP: out.append(("op", n))
        elif isinstance(n, ast.Compare): out += [("cmp", n, k) for k, op in enumerate(n.ops) if type(op) in _SWAP]
    return out

def _mutate(site) -> str:
    "Apply one mutation in place; describe it."
    kind, node = site[0], site[1]
    if kind == "num":
        old = node.value
        node.value = old + 1 if type(old) is int else (old * 2 if old else 1.0)
        return f"line {node.lineno}: {old!r} -> {node.value!r}"
    if kind == "op": old, node.op = node.op, _SWAP[type(node.op)]()
    else: old, node.ops[site[2]] = node.ops[site[2]], _SWAP[type(node.ops[site[2]])]()
    return f"line {node.lineno}: {_SYM[type(old)]} -> {_SYM[_SWAP[type(old)]]}"

def _drop_last(tree) -> int:
    "Drop the last statement, inside a trailing def or class (dropping a whole definition is too easy to catch)."
    body = tree.body
    while isinstance(body[-1], (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)): body = body[-1].body
    line = body.pop().lineno
    if not body: body.append(ast.Pass())
    return line

def mutants(code: str, max_mutants: int = MAX_MUTANTS) -> list[tuple[str, str]]:
    "(description, mutated code) for a solution's code: drop the last statement, then up to max_mutants others."
    try: tree = ast.parse(code)
    except SyntaxError: return []
    if not tree.body: return []
    t = ast.parse(code)
    out = [(f"drop the last statement (line {_drop_last(t)})", ast.unparse(t))]
    n = len(_sites(tree))
    picks = range(n) if n <= max_mutants else sorted({round(i * (n - 1) / (max_mutants - 1)) for i in range(max_mutants)})
    for k in sorted(picks, key=lambda k: (k * 0.6180339887) % 1):  # any prefix is spread over the code (time budget)
        t = ast.parse(code)
        desc = _mutate(_sites(t)[k])
        out.append((desc, ast.unparse(t)))
    return out

def bound_names(code: str) -> list[str]:
    "Names a cell defines at top level before reading them: removed before each variant runs."
    try: tree = ast.parse(code)
    except SyntaxError: return []
    read_first, bound = set(), []
    for st in tree.body:  # a statement reads (its value) before it binds (its targets)
        loads = {n.id for n in ast.walk(st) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        if isinstance(st, ast.AugAssign) and isinstance(st.target, ast.Name): loads.add(st.target.id)
        read_first |= loads - set(bound)
        stores = [st.name] if isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) else []
        if isinstance(st, (ast.Assign, ast.AnnAssign)):
            for t in (st.targets if isinstance(st, ast.Assign) else [st.target]):
                stores += [n.id for n in ast.walk(t) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)]
        bound += [n for n in stores if n not in read_first and n not in bound]
    return bound

# --- one kernel per notebook ------------------------------------------------------------------
_SETUP = """import json as _ppx_json
from pytorch_playground import exercises as _ppx
def _ppx_last(clear=False):
    "The latest check's outcome, from the `check` the notebook uses (99 defines its own)."
    c = get_ipython().user_ns.get("check")
    last = getattr(c, "__globals__", {}).get("_LAST", _ppx._LAST)
    if not clear: return print(_ppx_json.dumps(last))
    last.clear(); _ppx._LAST.clear()"""

class Kernel:
    "A Jupyter kernel (nbclient) started in the notebook's folder; `run` executes code and reports."
    def __init__(self, path: Path, timeout: int = 600):
        import nbformat
        from nbclient import NotebookClient
        self.nbformat, self.timeout = nbformat, timeout
        self.client = NotebookClient(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("")]), timeout=timeout, kernel_name="python3",
                                     allow_errors=True, interrupt_on_timeout=True,
                                     resources={"metadata": {"path": str(path.parent)}})
    def __enter__(self):
        self._quiet = open(os.devnull, "w")  # the kernel's own log lines (e.g. IPKernelApp warnings)
        self._cm = self.client.setup_kernel(stderr=self._quiet)
        self._cm.__enter__()
        self.run(_SETUP)
        return self
    def __exit__(self, *exc):
        try: self._cm.__exit__(*exc)
        finally: self._quiet.close()
    def run(self, source: str, timeout: float | None = None) -> dict:
        cell = self.nbformat.v4.new_code_cell(source)
        self.client.timeout = int(timeout or self.timeout)
        t0 = time.perf_counter()
        self.client.execute_cell(cell, 0)
        dt = time.perf_counter() - t0
        err = next((o for o in cell.outputs if o.get("output_type") == "error"), None)
        out = "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream" and o.get("name") == "stdout")
        return dict(error=f"{err['ename']}: {(err['evalue'] or '').splitlines()[0] if err['evalue'] else ''}" if err else None,
                    stdout=out, seconds=dt, timeout=err is None and dt >= self.client.timeout)
    def last_check(self) -> dict:
        r = self.run("_ppx_last()")
        return json.loads(r["stdout"].strip().splitlines()[-1]) if r["stdout"].strip() else {}

def judge(k: Kernel, clear: list[str], variant: str, check_src: str, limit: float) -> dict:
    "Run one variant of a solution cell and the check; status: passed, failed, crashed, timeout or unjudged."
    k.run(f"for _n in {clear!r}: get_ipython().user_ns.pop(_n, None)\n_ppx_last(clear=True)")
    r = k.run(variant, timeout=limit)
    if r["timeout"]: return dict(status="timeout", reason=f"ran past {limit:.0f} s")
    if r["error"]: return dict(status="crashed", reason=r["error"])
    r = k.run(check_src, timeout=limit)
    last = k.last_check()
    if r["timeout"]: return dict(status="timeout", reason=f"the check ran past {limit:.0f} s")
    if not last: return dict(status="unjudged", reason=r["error"] or "the check cell never called check")
    return dict(status="passed" if last["passed"] else "failed", kind=last.get("kind"), reason=last.get("reason", ""))

def _exercise(k: Kernel, nb: dict, si: int, ci: int, rep: dict, ref_s: float, max_mutants: int,
              budget_s: float = MUTANT_BUDGET_S) -> None:
    "At an exercise's check cell (the reference has run): judge the wrong answers and the mutants, then restore."
    sol, chk = _src(nb["cells"][si]), _src(nb["cells"][ci])
    name = (m := _CHECK_NAME.search(chk)) and m["name"] or f"cell {ci + 1}"
    r, last = k.run(chk), k.last_check()
    if not last.get("passed"):
        rep["problems"].append(f"{name}: the reference solution fails its own check: {last.get('reason') or r['error'] or 'the check cell never called check'}")
        return
    blocks = exercise_blocks(sol)
    clear, limit = bound_names(fill_solutions(sol)), max(20.0, 5 * (ref_s + r["seconds"]) + 10)
    again = judge(k, clear, fill_solutions(sol), chk, limit)  # a learner re-runs cells: the reference must pass twice
    if again["status"] != "passed":
        rep["problems"].append(f"{name}: the reference solution fails its check when its cell runs a second time "
                               f"({again['status']}: {again.get('reason', '')[:120]}); state left by the first run (files, "
                               "counters, a trained model) leaks into the second: start the exercise cell from a clean state")
        k.run(sol)
        return
    # the learner copy's cell (solution stubbed, wrong answers gone): its check must fail there too. Judged here,
    # in the kernel that already holds the lesson, instead of a separate run of every learner copy
    stub = judge(k, clear, strip_solutions(sol), chk, limit)
    rep["stubs"].append((name, stub["status"] != "passed"))
    if stub["status"] == "passed":
        rep["problems"].append(f"{name}: the check passes on the learner copy's empty cell: it must read the learner's answer")
    wrongs = [b for b in blocks if b["kind"] == "wrong"]
    if not wrongs: rep["problems"].append(f"{name}: no wrong answer in the solution cell (write at least one)")
    for b in wrongs:
        o = judge(k, clear, fill_solutions(sol, {b["solution"]: b["code"]}), chk, limit)
        ok = o["status"] == "failed" and o.get("kind") in HELPFUL
        rep["wrong"].append((name, b["label"], ok, o))
        rep["log"].append(f"  {name}: wrong answer '{b['label']}': {o['status']} {o.get('kind') or ''} {o.get('reason', '')[:90]}")
        if not ok: rep["problems"].append(f"{name}: wrong answer '{b['label']}': {_why_not(o)}")
    t0, muts = time.perf_counter(), []
    for i, b in enumerate(blocks):
        if b["kind"] != "solution": continue
        if not (m := mutants(b["code"], max_mutants)): rep["unparsable"].append(name)
        muts += [(i, d, c) for d, c in m]
    for n_run, (i, desc, code) in enumerate(muts):
        if n_run and time.perf_counter() - t0 > budget_s:
            rep["over_budget"].append(f"{name}: {len(muts) - n_run} of {len(muts)} mutants not run (the {budget_s:.0f} s budget is spent)")
            break
        o = judge(k, clear, fill_solutions(sol, {i: code}), chk, limit)
        rep["mutants"].append((name, desc, o["status"] != "passed"))
        rep["log"].append(f"  {name}: mutant {desc}: {o['status']} {o.get('kind') or ''} {o.get('reason', '')[:90]}")
    k.run(f"for _n in {clear!r}: get_ipython().user_ns.pop(_n, None)")
    k.run(sol)  # restore the reference for the cells that follow

def _why_not(o: dict) -> str:
    if o["status"] == "passed": return "the check passes on it, so the mistake goes unnoticed"
    if o["status"] == "failed": return (f"the check fails with a {o.get('kind')} reason, which does not tell the learner what "
                                        f"is wrong: give the assert a message ({o.get('reason', '')[:100]})")
    return f"{o['status']} before the check judged it: {o.get('reason', '')[:120]}"

def check_notebook(path: Path, max_mutants: int = MAX_MUTANTS, timeout: int = 600) -> dict:
    "Run one notebook in one kernel, judging every exercise's wrong answers and mutants on the way."
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    by_check = {j: i for i, j in exercise_cells(nb)}
    rep = dict(name=Path(path).name, exercises=len(by_check), wrong=[], mutants=[], stubs=[], problems=[], unparsable=[], skipped=[], log=[], over_budget=[])
    rep["problems"] += [f"cell {i + 1}: a solution cell without a check cell of its own after it: its wrong answers "
                        "and mutants cannot be judged" for i, c in enumerate(nb["cells"])
                        if _is_solution_cell(c) and i not in by_check.values()]
    t0, ref_s = time.perf_counter(), {}
    with Kernel(Path(path), timeout) as k:
        for idx, cell in enumerate(nb["cells"]):
            if cell["cell_type"] != "code": continue
            src = _src(cell)
            if _flags(src) & {"slow", "cuda"}:
                if idx in by_check: rep["skipped"].append(idx)
                continue
            if idx in by_check: _exercise(k, nb, by_check[idx], idx, rep, ref_s.get(by_check[idx], 0.0), max_mutants)
            else:
                r = k.run(src); ref_s[idx] = r["seconds"]
                if r["error"]: rep["problems"].append(f"cell {idx + 1} raised {r['error'][:160]} (the notebook must run clean)")
    rep["seconds"] = time.perf_counter() - t0
    return rep

def summary(rep: dict) -> str:
    w_ok, n_m, c_m = sum(w[2] for w in rep["wrong"]), len(rep["mutants"]), sum(m[2] for m in rep["mutants"])
    pct = f" ({100 * c_m / n_m:.0f}%)" if n_m else ""
    s_ok = sum(x[1] for x in rep.get("stubs", []))
    return (f"{rep['name']}: {rep['exercises']} exercises, {s_ok}/{len(rep.get('stubs', []))} fail on the learner copy, "
            f"{w_ok}/{len(rep['wrong'])} wrong answers caught with a message, "
            f"{c_m}/{n_m} mutants caught{pct}, {rep['seconds']:.0f} s")

def details(rep: dict) -> list[str]:
    out = [f"  ✗ {p}" for p in rep["problems"]]
    out += [f"  survived: {n}: {d}" for n, d, c in rep["mutants"] if not c]
    out += [f"  no mutants (solution is not plain Python): {n}" for n in rep["unparsable"]]
    out += [f"  skipped (slow/cuda check cell): cell {i + 1}" for i in rep["skipped"]]
    out += [f"  {l}" for l in rep["over_budget"]]
    return out

def course_notebooks() -> list[Path]:
    return [p for p in sorted(NBS.glob("*.ipynb")) if not p.name.startswith(("_", "."))
            and has_solutions(json.loads(p.read_text(encoding="utf-8")))]

def catalogue(reps: list[dict]) -> dict:
    "Each chapter's exercises, and each wrong answer's label with the reason its check gave (what `check` matches)."
    chapters = {p.name: expected_checks(json.loads(p.read_text(encoding="utf-8"))) for p in course_notebooks()}
    mistakes: dict[str, list] = {}
    for r in reps:
        for name, label, ok, o in r["wrong"]:
            if ok: mistakes.setdefault(name, []).append({"mistake": label, "reason": o.get("reason", "")})
    return {"about": "Generated by .ci/exercise_checks.py --write-catalogue from the chapters' exercises; do not edit.",
            "chapters": chapters, "mistakes": dict(sorted(mistakes.items()))}

def catalogue_drift(old: dict, new: dict) -> list[str]:
    "Where the committed catalogue no longer lists the chapters' exercises and wrong answers."
    out = [f"{nb}: exercises {old.get('chapters', {}).get(nb)} in the catalogue, {names} in the chapter"
           for nb, names in new["chapters"].items() if old.get("chapters", {}).get(nb) != names]
    om = old.get("mistakes", {})
    for name, ms in new["mistakes"].items():
        have = om.get(name, [])
        # labels must match; a reason may vary a little from run to run (a float, a timing), so it is not compared here
        if [m["mistake"] for m in have] != [m["mistake"] for m in ms]: out.append(f"{name}: the catalogued mistakes changed")
    out += [f"{name}: no longer an exercise with wrong answers" for name in om if name not in new["mistakes"]]
    return out

def ci_step(record) -> None:
    "The `exercises` step of .ci/checks.py: one record per notebook, and one for the course's mutant figure."
    reps = []
    for p in course_notebooks():
        def f(p=p):
            rep = check_notebook(p); reps.append(rep)
            print("      " + summary(rep)); [print("      " + l) for l in details(rep)]
            if rep["problems"]: raise AssertionError("\n".join(rep["problems"]))
        record(f"{p.name}: every wrong answer is caught with a message", f)
    def g():
        n, c = sum(len(r["mutants"]) for r in reps), sum(sum(m[2] for m in r["mutants"]) for r in reps)
        print(f"      mutants caught over the course: {c}/{n}" + (f" ({100 * c / n:.1f}%)" if n else ""))
        if n and c / n < MIN_CAUGHT:
            raise AssertionError(f"only {100 * c / n:.1f}% of mutants caught (need {100 * MIN_CAUGHT:.0f}%): "
                                 "make the checks test exact values on several cases")
    record(f"exercise checks catch >= {100 * MIN_CAUGHT:.0f}% of mutants over the course", g)
    def h():
        old = json.loads(CATALOGUE.read_text(encoding="utf-8")) if CATALOGUE.exists() else {}
        if drift := catalogue_drift(old, catalogue(reps)):
            raise AssertionError(f"{CATALOGUE.relative_to(ROOT)} is out of step with the chapters ({'; '.join(drift[:4])}): "
                                 "run `python .ci/exercise_checks.py --write-catalogue` and commit it")
        print(f"      {sum(len(v) for v in old['mistakes'].values())} catalogued mistakes over {len(old['chapters'])} chapters")
    record("the exercise catalogue (pytorch_playground/exercises.json) is in step with the chapters", h)

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("notebooks", nargs="*", help="notebooks to check (default: every notebook in nbs/ with exercises)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every variant's outcome")
    ap.add_argument("--max-mutants", type=int, default=MAX_MUTANTS, help="mutants per solution block besides drop-last")
    ap.add_argument("--write-catalogue", action="store_true", help=f"write {CATALOGUE.name} from the chapters' runs (named "
                    "chapters: only their entries are replaced)")
    args = ap.parse_args(argv)
    paths = [Path(p) for p in args.notebooks] or course_notebooks()
    reps, bad = [], 0
    for p in paths:
        rep = check_notebook(p, args.max_mutants); reps.append(rep)
        print(summary(rep), flush=True)
        for l in details(rep) + (rep["log"] if args.verbose else []): print(l)
        bad += bool(rep["problems"])
    n, c = sum(len(r["mutants"]) for r in reps), sum(sum(m[2] for m in r["mutants"]) for r in reps)
    print(f"mutants caught over {len(reps)} notebooks: {c}/{n}" + (f" ({100 * c / n:.1f}%)" if n else ""))
    if args.write_catalogue:
        new = catalogue(reps)
        if args.notebooks and CATALOGUE.exists():  # keep the other chapters' entries (a renamed exercise's old one goes)
            mine = {n for p in paths for n in expected_checks(json.loads(Path(p).read_text(encoding="utf-8")))}
            others = {n for names in new["chapters"].values() for n in names} - mine
            old = json.loads(CATALOGUE.read_text(encoding="utf-8")).get("mistakes", {})
            new["mistakes"] = dict(sorted({**{k: v for k, v in old.items() if k in others}, **new["mistakes"]}.items()))
        CATALOGUE.write_text(json.dumps(new, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {CATALOGUE.relative_to(ROOT)}")
    low = n and c / n < MIN_CAUGHT
    if low: print(f"below the {100 * MIN_CAUGHT:.0f}% floor")
    return 1 if bad or low else 0

if __name__ == "__main__": sys.exit(main())
