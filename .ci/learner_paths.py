"""Checks of the paths learners take: a standard Jupyter kernel, JupyterLab in a real browser,
the docs pipeline, and Colab. Imported by .ci/checks.py, which counts each check."""
from __future__ import annotations
import json, os, re, secrets, shutil, socket, subprocess, sys, tempfile, time, urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/"nbs"
ART = ROOT/"ci-artifacts"
COLAB = "https://colab.research.google.com/github/pytorch-playground/pytorch-playground/blob/main/nbs/"

def notebooks() -> list[Path]:
    return sorted(p for p in NBS.glob("*.ipynb") if not p.name.startswith(("_", ".")))

def _src(c) -> str:
    return "".join(c["source"]) if isinstance(c["source"], list) else c["source"]

def _skipped(c) -> bool:
    "Cells nbdev_test skips by default (`#| slow`, `#| cuda`, `#| eval: false`), so a kernel run skips them too."
    from pytorch_playground.exercises import _flags  # the package's parser of a cell's nbdev flags
    return bool(_flags(_src(c)) & {"slow", "cuda", "eval:false"})

# --- a standard Jupyter kernel ------------------------------------------------------------------
def ipc_config():
    """Kernels talk over local IPC sockets in a private temporary folder, not over TCP: nothing listens on
    the network, and the kernel has no reason to warn that TCP traffic is unencrypted."""
    from traitlets.config import Config
    c = Config()
    c.KernelManager.transport = "ipc"
    c.KernelManager.ip = str(Path(tempfile.mkdtemp(prefix="kernel-"))/"ipc")  # socket files kernel-ipc-1, -2, ... live here
    return c

def execute_in_kernel(path: Path, cwd: Path, timeout: int = 600):
    "Run a notebook top to bottom in a fresh kernel, as Run All does, skipping slow/cuda cells; raise on error."
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.read(path, as_version=4)
    saved = [c for c in nb.cells]
    keep = [c for c in nb.cells if not (c.cell_type == "code" and _skipped(c))]
    run = nbformat.v4.new_notebook(cells=[nbformat.from_dict(json.loads(json.dumps(c))) for c in keep], metadata=nb.metadata)
    client = NotebookClient(run, timeout=timeout, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(cwd)}}, config=ipc_config())
    client.execute()
    return keep, run.cells

# lines that change from run to run by nature: timings, and readings of how busy the machine is
_TIMING = re.compile(r"(\d[\d.,]*\s*(s|ms|µs|us|sec|seconds|min|it/s|img/s|images/s|samples/s)\b)|time|took|elapsed|speed|ratio|×|latency|/s\b|load average", re.I)

def _stdout(c) -> list[str]:
    text = ""  # the kernel may split one print into several stream chunks: join them before splitting lines
    for o in c.get("outputs", []):
        if o.get("output_type") == "stream" and o.get("name") == "stdout":
            text += "".join(o.get("text", ""))
        elif o.get("output_type") in ("execute_result",) and "text/plain" in o.get("data", {}):
            t = o["data"]["text/plain"]; text += ("".join(t) if isinstance(t, list) else t) + "\n"
    lines = text.splitlines()
    return [l.rstrip() for l in lines if not _TIMING.search(l) and not re.search(r"0x[0-9a-f]{6,}", l)]

_NUM = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")

def _same_line(a: str, b: str) -> bool:
    """Equal text, equal integers (shapes, counts), and decimals within 5% or 1e-3: a fresh run on
    another machine or thread count may round the last digit of a float differently."""
    if a == b: return True
    if _NUM.sub("#", a) != _NUM.sub("#", b): return False
    for x, y in zip(_NUM.findall(a), _NUM.findall(b)):
        if x == y: continue
        if not any(ch in x + y for ch in ".e"): return False  # integers must match exactly
        fx, fy = float(x), float(y)
        if abs(fx - fy) > max(0.05 * max(abs(fx), abs(fy)), 1e-3): return False
    return True

def stale_outputs(saved_cells, fresh_cells) -> list[str]:
    "Cells whose saved printed output differs from a fresh run's (timing lines ignored, float rounding tolerated)."
    diffs = []
    for i, (a, b) in enumerate(zip(saved_cells, fresh_cells)):
        if a.cell_type != "code": continue
        sa, sb = _stdout(a), _stdout(b)
        if len(sa) != len(sb) or not all(_same_line(x, y) for x, y in zip(sa, sb)):
            first = next(((x, y) for x, y in zip(sa + [""] * 99, sb + [""] * 99) if not _same_line(x, y)), ("", ""))
            diffs.append(f"cell {i}: saved {first[0]!r} but fresh run printed {first[1]!r}")
    return diffs

# --- JupyterLab in headless Chromium ------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]

def wait_http(url: str, timeout: float, proc=None):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc is not None and proc.poll() is not None: raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200: return
        except Exception: time.sleep(0.5)
    raise TimeoutError(f"no answer from {url} in {timeout:.0f} s")

def chromium_path() -> str|None:
    """A Chromium to drive: the system's (Debian's `chromium`, which `make test` installs where it can),
    else the one `playwright install chromium` downloads (None: Playwright's own); FileNotFoundError if neither."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p: return p
    try:
        from playwright.sync_api import sync_playwright
        with sync_playwright() as pw:
            if Path(pw.chromium.executable_path).exists(): return None
    except Exception: pass
    raise FileNotFoundError("no Chromium: install Debian's `chromium` (apt-get install chromium) "
                            "or run `.venv/bin/playwright install chromium`")

# the kernel is ready when JupyterLab's status bar or toolbar says so
_KERNEL_IDLE = """() => [...document.querySelectorAll('.jp-StatusBar-TextItem')].some(e => /\\|\\s*Idle/.test(e.textContent || ''))"""

# JupyterLab settings for a quiet, checkable page: every cell in the DOM (no windowing, so the checks
# see all outputs), no "receive Jupyter news?" pop-up and no update check over the screenshots
LAB_SETTINGS = {"@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
                "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False}}

def _start_lab(work: Path, log) -> tuple[subprocess.Popen, str]:
    "JupyterLab on a free local port with kernels over IPC and the settings above; returns (process, base URL with token)."
    for name, value in LAB_SETTINGS.items():
        f = work/".jupyter"/"lab"/"user-settings"/name
        f.parent.mkdir(parents=True, exist_ok=True); f.write_text(json.dumps(value))
    token, port = secrets.token_hex(16), free_port()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(work/".jupyter"), "JUPYTER_RUNTIME_DIR": str(work/"runtime")}
    env.pop("MPLBACKEND", None)  # .ci/run exports Agg, which would keep every plot off the page: a learner's Lab has the inline backend
    lab = subprocess.Popen([str(Path(sys.executable).parent/"jupyter"), "lab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
                            f"--port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work/'nbs'}",
                            "--ServerApp.open_browser=False", "--LabApp.news_url=",
                            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                            "--KernelManager.transport=ipc"],  # local sockets: no TCP, no "without encryption" warning
                           stdout=log, stderr=subprocess.STDOUT, env=env)
    wait_http(f"http://127.0.0.1:{port}/api/status?token={token}", 90, lab)
    return lab, f"http://127.0.0.1:{port}", token

def _run_all(page, saved: Path, nb_name: str, timeout: float) -> float:
    "Run All through the menu, then wait until the saved file has every code cell run (or an error)."
    page.click(".lm-MenuBar-itemLabel:text-is('Run')", timeout=30_000)   # the Run menu
    page.click(".lm-Menu-itemLabel:text-is('Run All Cells')", timeout=30_000)
    t0 = time.time()
    while True:
        page.wait_for_timeout(2000)
        if page.evaluate(_KERNEL_IDLE):
            page.keyboard.press("Control+s"); page.wait_for_timeout(1500)
            code = [c for c in json.loads(saved.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == "code"]
            if all(c.get("execution_count") for c in code) or any(o.get("output_type") == "error" for c in code for o in c.get("outputs", [])):
                return time.time() - t0
        if time.time() - t0 > timeout:
            page.screenshot(path=str(ART/f"jupyterlab-{nb_name}-failed.png"))
            raise TimeoutError(f"Run All of {nb_name} did not finish in {timeout:.0f} s")

# what the page shows, read from the DOM after Run All. JupyterLab loads output images lazily (an image
# outside the viewport has naturalWidth 0), so a detached copy of each <img> is decoded: an image counts
# when the output area holds one whose data decodes to a picture.
# A finished tqdm bar is a line with "100%|" in a stream output: stderr where fit draws it, stdout where a
# chapter captures the bars and prints how each ended.
_PAGE = """async () => {
  const outs = [...document.querySelectorAll('.jp-Notebook .jp-OutputArea-output')];
  const imgs = outs.map(o => o.querySelector('img')).filter(i => i);
  const sizes = await Promise.all(imgs.map(async i => {  // a detached copy of each loads at once
    const copy = new Image(); copy.src = i.src;
    try { await copy.decode(); return copy.naturalWidth; } catch (e) { return 0; } }));
  const mime = m => outs.filter(o => o.getAttribute('data-mime-type') === m);
  const stderr = mime('application/vnd.jupyter.stderr').map(o => o.textContent || '');
  const streams = stderr.concat(mime('application/vnd.jupyter.stdout').map(o => o.textContent || ''));
  return {errors: mime('application/vnd.jupyter.error').length,
          images: sizes.filter(w => w > 0).length,
          bars: streams.map(t => (t.match(/100%\\|/g) || []).length).reduce((a, b) => a + b, 0),
          warnings: stderr.filter(t => /\\w+Warning:|^[WE]\\d{4} \\d\\d:/m.test(t)).map(t => t.trim().split('\\n')[0].slice(0, 160)),
          cells: document.querySelectorAll('.jp-Notebook .jp-CodeCell').length};
}"""

def _shoot(page, selector: str, path: Path):
    "Scroll the first element matching `selector` into view (if any) and keep a screenshot of the window."
    el = page.locator(selector).first
    if el.count(): el.scroll_into_view_if_needed(); page.wait_for_timeout(500)
    page.screenshot(path=str(path), full_page=False)

def browser_run_all(nb_name: str = "00_tensors.ipynb", timeout: float = 600) -> dict:
    """Open a chapter in JupyterLab in headless Chromium, Run All through the UI, save, and report what
    the saved file and the page show; screenshots go to ci-artifacts/."""
    from playwright.sync_api import sync_playwright
    work = Path(tempfile.mkdtemp(prefix="lab-"))
    shutil.copytree(NBS, work/"nbs", ignore=shutil.ignore_patterns("_work", ".ipynb_checkpoints"))
    log_path = ART/f"jupyterlab-{Path(nb_name).stem}.log"
    log = open(log_path, "w")
    lab = None
    try:
        lab, url, token = _start_lab(work, log)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium_path(), headless=True, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{url}/lab/tree/{nb_name}?token={token}", timeout=120_000)
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
            page.wait_for_timeout(3000)
            if page.locator(".jp-Dialog").count():  # a notebook without a kernelspec asks which kernel
                page.locator(".jp-Dialog button.jp-mod-accept").click()
            try:
                page.wait_for_function(_KERNEL_IDLE, timeout=120_000, polling=500)
            except Exception:
                page.screenshot(path=str(ART/f"jupyterlab-{nb_name}-failed.png")); raise
            run_s = _run_all(page, work/"nbs"/nb_name, nb_name, timeout)
            seen = page.evaluate(_PAGE)
            stem = Path(nb_name).stem
            page.screenshot(path=str(ART/f"jupyterlab-{stem}.png"))
            _shoot(page, ".jp-OutputArea-output:has-text('100%|')", ART/f"jupyterlab-{stem}-progress.png")
            _shoot(page, ".jp-OutputArea-output img", ART/f"jupyterlab-{stem}-plot.png")
            dialogs = page.locator(".jp-Dialog, .jp-toast-container .Toastify__toast").count()
            browser.close()
    finally:
        if lab is not None:
            lab.terminate()
            try: lab.wait(20)
            except subprocess.TimeoutExpired: lab.kill()
        log.close()
    nb = json.loads((work/"nbs"/nb_name).read_text(encoding="utf-8"))
    shutil.rmtree(work, ignore_errors=True)
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    errors = [o.get("ename", "") + ": " + o.get("evalue", "") for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    unrun = [i for i, c in enumerate(code) if c.get("execution_count") is None]
    noise = [l.strip() for l in log_path.read_text(errors="replace").splitlines() if re.search(r"without encryption|Traceback", l)]
    outs = [o for c in code for o in c.get("outputs", [])]
    saved = {"images": sum(1 for o in outs if any(k.startswith("image/") for k in o.get("data", {}))),
             "bars": sum(_src({"source": o.get("text", "")}).count("100%|") for o in outs if o.get("output_type") == "stream")}
    return {"run_s": run_s, "errors": errors, "unrun_cells": unrun, "cells": len(code), "page": seen, "saved": saved,
            "popups": dialogs, "log_noise": noise}

# --- docs pipeline and Colab ----------------------------------------------------------------------
def sidebar_entries() -> list[str]:
    return re.findall(r"-\s+(\S+\.ipynb)", (NBS/"sidebar.yml").read_text(encoding="utf-8"))

def internal_links(nb: dict) -> list[str]:
    links = []
    for c in nb["cells"]:
        if c["cell_type"] == "markdown":
            links += [l for l in re.findall(r"\]\(([^)#\s]+\.ipynb)(?:#[^)]*)?\)", _src(c)) if "://" not in l]
    return links

def colab_problems(path: Path) -> list[str]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    probs = []
    md = "\n".join(_src(c) for c in nb["cells"][:4] if c["cell_type"] == "markdown")
    badges = re.findall(r"colab\.research\.google\.com/github/[^)\s]+", md)
    if not badges: probs.append("no Open-in-Colab badge in the first cells")
    elif badges[0] != (COLAB + path.name).split("://", 1)[1]:
        probs.append(f"the badge points at {badges[0]}, not at this notebook")
    # an install cell runs pip (`!pip install` / `%pip install` at the start of a line); a string that
    # merely mentions the command (an error message telling the learner what to type) is not one
    runs_pip = re.compile(r"^\s*[!%]pip\s+install", re.M)
    installs = [c for c in nb["cells"] if c["cell_type"] == "code" and runs_pip.search(_src(c))]
    if not installs: probs.append("no Colab install cell")
    for c in installs:
        s = _src(c)
        if 'if "google.colab" in sys.modules' not in s and "if 'google.colab' in sys.modules" not in s:
            probs.append("an install cell is not guarded by `\"google.colab\" in sys.modules`")
    return probs

def mixed_import_cells(path: Path) -> list[str]:
    """Cells that nbdev's docs build would execute out of context: it runs every cell holding an
    import (anywhere in it) to prepare `show_doc`, so such a cell must hold imports only."""
    import ast
    nb = json.loads(path.read_text(encoding="utf-8"))
    bad = []
    for i, c in enumerate(nb["cells"]):
        if c["cell_type"] != "code": continue
        src = _src(c)
        dirs = [l.replace(" ", "") for l in src.splitlines() if l.replace(" ", "").startswith("#|")]
        if any(d.startswith(("#|export", "#|exec_doc", "#|eval:false")) for d in dirs): continue
        code = "\n".join(l for l in src.splitlines() if not l.lstrip().startswith(("!", "%")))
        try: tree = ast.parse(code)
        except SyntaxError: continue
        if "google.colab" in src: continue  # the guarded install cell: harmless anywhere
        has_import = any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.walk(tree))
        if has_import and any(not isinstance(n, (ast.Import, ast.ImportFrom)) for n in tree.body):
            bad.append(f"cell {i}: {src.strip().splitlines()[0][:70]!r}")
    return bad
