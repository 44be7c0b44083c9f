#!/usr/bin/env python
"""Run every `#| slow` benchmark cell of the course (each notebook in a fresh kernel, its slow cells
included) and print one table of the ratios they report. `make bench` runs it.

Benchmark cells print their figures as lines holding a ratio (`ratio`, `×` or `x over`); those
lines are gathered per notebook. Usage: python .ci/bench.py [NOTEBOOK ...]"""
from __future__ import annotations
import json, re, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/".ci"))
import nbformat
from nbclient import NotebookClient
from pytorch_playground.exercises import _flags  # the nbdev flags at the top of a cell


RATIO = re.compile(r"ratio|×|\bx\s+(over|vs|faster|slower)|speed-?up|ort/torch", re.I)

def bench(path: Path, cuda: bool) -> tuple[list[str], float]:
    nb = nbformat.read(path, as_version=4)
    slow_ids = []
    keep = []
    for c in nb.cells:
        fl = _flags(c.source) if c.cell_type == "code" else set()
        if "cuda" in fl and not cuda: continue
        if "eval:false" in fl: continue
        if "slow" in fl: slow_ids.append(len(keep))
        keep.append(c)
    if not slow_ids: return [], 0.0
    nb.cells = keep
    t0 = time.perf_counter()
    NotebookClient(nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    lines = []
    for i in slow_ids:
        for o in nb.cells[i].get("outputs", []):
            if o.get("output_type") == "stream" and o.get("name") == "stdout":
                lines += [l.strip() for l in o["text"].splitlines() if RATIO.search(l)]
    return lines, time.perf_counter() - t0

def main():
    import torch
    cuda = torch.cuda.is_available()
    paths = [Path(a) for a in sys.argv[1:]] or sorted(p for p in (ROOT/"nbs").glob("[0-9]*.ipynb"))
    rows = []
    for p in paths:
        print(f"running {p.name} with its slow cells{' and cuda cells' if cuda else ''} …", flush=True)
        lines, dt = bench(p, cuda)
        if lines or dt: rows.append((p.name, lines, dt))
    print("\nBenchmark ratios (each measured side by side in one run on this machine)")
    print(f"device: {'cuda: ' + torch.cuda.get_device_name(0) if cuda else 'cpu'}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    for name, lines, dt in rows:
        print(f"\n{name}  ({dt:.0f} s)")
        for l in lines or ["(no ratio printed)"]: print(f"  {l}")

if __name__ == "__main__": main()
