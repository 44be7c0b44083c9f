#!/usr/bin/env python
"""`make nb NB=...`: re-run one notebook top to bottom in a fresh kernel, from its own folder, and save
the outputs into it. Cells flagged `#| slow` or `#| cuda` are skipped, as nbdev_test and CI skip them,
and keep the outputs they have: those are measured results (minutes of training, timings taken on a
quiet machine) that a routine re-run must not replace. `--slow` runs them too (`make nb NB=... SLOW=1`);
`#| cuda` cells run only where CUDA is available.

  python .ci/run_nb.py nbs/04_training.ipynb [--slow]
"""
from __future__ import annotations
import argparse, json, sys, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import learner_paths as lp

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebook"); ap.add_argument("--slow", action="store_true", help="also run #| slow (and, with CUDA, #| cuda) cells")
    ap.add_argument("--timeout", type=int, default=900, help="seconds one cell may run")
    a = ap.parse_args(argv)
    import nbformat, torch
    from nbclient import NotebookClient
    from pytorch_playground.exercises import _flags
    path = Path(a.notebook).resolve()
    nb = nbformat.read(path, as_version=4)
    skip = set() if a.slow else {"slow", "cuda"}
    if not torch.cuda.is_available(): skip.add("cuda")
    skip.add("eval:false")
    run = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and not (_flags(c.source) & skip)]
    client = NotebookClient(nb, timeout=a.timeout, kernel_name="python3", allow_errors=False, coalesce_streams=True,
                            resources={"metadata": {"path": str(path.parent)}}, config=lp.ipc_config())
    t0 = time.perf_counter()
    with client.setup_kernel():
        for i in run: client.execute_cell(nb.cells[i], i)
    nbformat.write(nb, path)
    kept = sum(1 for c in nb.cells if c.cell_type == "code") - len(run)
    print(f"{path.name}: ran {len(run)} code cells in {time.perf_counter() - t0:.0f} s"
          + (f"; {kept} skipped (slow/cuda/eval: false) kept their saved outputs" if kept else ""))
    return 0

if __name__ == "__main__": sys.exit(main())
