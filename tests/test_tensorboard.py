"""Robustness tests for pytorch_playground.tensorboard: reading event files, the fit callback, and a real
TensorBoard server on 127.0.0.1 whose HTTP API must serve the same scalars as the files."""
import socket, time, urllib.error, urllib.request
import pytest
import torch
import torch.nn as nn
from torch.utils.tensorboard import SummaryWriter

from pytorch_playground.data import InMemoryLoader
from pytorch_playground.tensorboard import (TensorBoardCallback, plot_scalars, read_scalars, server_scalars, server_tags,
                                            tensorboard_server)
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def _tiny_fit(log_dir, epochs=2, callbacks=None, cb=None, **cb_kw):
    "Fit a small CNN on random 8x8 images with a TensorBoardCallback; returns (history, callback, batches per epoch)."
    from pytorch_playground.training import fit
    torch.manual_seed(0)
    X, y = torch.rand(96, 1, 8, 8), torch.randint(0, 3, (96,))
    train_dl, valid_dl = InMemoryLoader(X[:64], y[:64], batch_size=16), InMemoryLoader(X[64:], y[64:], batch_size=16)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(256, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    cb = cb or TensorBoardCallback(log_dir, **cb_kw)
    hist = fit(model, train_dl, valid_dl, nn.CrossEntropyLoss(), opt, epochs,
               metrics={"acc": lambda o, t: (o.argmax(1) == t).float().mean().item()},
               callbacks=[cb, *(callbacks or [])], progress=False)
    return hist, cb, len(train_dl)


def test_read_scalars_keys(tmp_path):
    with SummaryWriter(tmp_path) as w: w.add_scalar("top", 1.5, 3)
    with SummaryWriter(tmp_path/"a"/"b") as w:
        for s in range(2000): w.add_scalar("x/y", s / 2, s)  # more than TensorBoard's default sample of 1,000
    got = read_scalars(tmp_path)
    assert sorted(got) == ["a/b/x/y", "top"]
    assert got["top"] == [(3, 1.5)]
    assert got["a/b/x/y"] == [(s, s / 2) for s in range(2000)]


def test_read_scalars_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no log folder"): read_scalars(tmp_path/"nope")


def test_callback_logs_every_step_and_history(tmp_path):
    hist, cb, n = _tiny_fit(tmp_path, epochs=2, image_every=1, hist_every=2, graph=True, hparams={"lr": 0.1})
    got = read_scalars(tmp_path)
    assert [s for s, _ in got["train/loss"]] == list(range(1, 2 * n + 1))
    assert len(got["train/lr"]) == 2 * n
    assert [s for s, _ in got["valid/loss"]] == [n * (e + 1) for e in range(2)]
    assert [v for _, v in got["valid/loss"]] == pytest.approx([h["valid_loss"] for h in hist], rel=1e-6)
    assert [v for _, v in got["valid/acc"]] == pytest.approx([h["acc"] for h in hist], rel=1e-6)
    assert [v for _, v in got["train/epoch_loss"]] == pytest.approx([h["train_loss"] for h in hist], rel=1e-6)
    assert got["hparams/hparam/valid_loss"][0][1] == pytest.approx(hist[-1]["valid_loss"], rel=1e-6)
    acc = EventAccumulator(str(tmp_path/"train"), size_guidance={"images": 0, "histograms": 0}).Reload()
    assert len(acc.Images("inputs")) == 2
    assert len(acc.Histograms("weights/0.weight")) == 1 and len(acc.Histograms("grads/0.weight")) == 1
    assert acc.Tags()["graph"]
    assert cb.writers == {}  # closed


def test_callback_closes_writers_on_interrupt(tmp_path):
    class Stop:
        def after_batch(self, state):
            if state.step == 3: raise KeyboardInterrupt
    cb = TensorBoardCallback(tmp_path)
    with pytest.raises(KeyboardInterrupt):  # outside IPython fit re-raises Ctrl-C, after the callbacks' after_fit
        _tiny_fit(tmp_path, epochs=2, callbacks=[Stop()], cb=cb)
    assert cb.writers == {}  # after_fit ran on the way out and closed the writers
    assert [s for s, _ in read_scalars(tmp_path)["train/loss"]] == [1, 2, 3]


def test_callback_resume_purges_the_interrupted_tail(tmp_path):
    "Interrupted mid-epoch, then resumed from the checkpoint: every step is logged exactly once."
    from pytorch_playground.training import fit
    X, y = torch.rand(64, 1, 8, 8), torch.randint(0, 3, (64,))
    def run(epochs, resume, extra=()):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        dl = InMemoryLoader(X, y, batch_size=16)
        cb = TensorBoardCallback(tmp_path/"logs")
        fit(model, dl, dl, nn.CrossEntropyLoss(), opt, epochs, checkpoint_dir=tmp_path/"ckpt", resume=resume,
            callbacks=[cb, *extra], progress=False)
    class Stop:
        def after_batch(self, state):
            if state.step == 6: raise KeyboardInterrupt  # epoch 1, after 2 of its 4 steps; last.pt holds epoch 0
    with pytest.raises(KeyboardInterrupt): run(2, False, [Stop()])  # outside IPython fit re-raises Ctrl-C
    assert [s for s, _ in read_scalars(tmp_path/"logs")["train/loss"]] == list(range(1, 7))
    time.sleep(1.1)  # event files sort by name, whose clock part has 1 s resolution; a real resume is later anyway
    run(3, True)
    got = read_scalars(tmp_path/"logs")
    assert [s for s, _ in got["train/loss"]] == list(range(1, 13))
    assert [s for s, _ in got["valid/loss"]] == [4, 8, 12]


def test_callback_only_main_writes(tmp_path):
    class State: is_main = False
    cb = TensorBoardCallback(tmp_path/"runs")
    for hook in (cb.before_fit, cb.after_batch, cb.after_epoch, cb.after_fit): hook(State())
    assert not (tmp_path/"runs").exists()


@pytest.mark.parametrize("kw", [{"image_every": 0}, {"hist_every": -1}, {"image_every": 1.5}])
def test_callback_bad_arguments(tmp_path, kw):
    with pytest.raises(ValueError, match="whole number of epochs"): TensorBoardCallback(tmp_path, **kw)


def _answers(url) -> bool:
    try:
        urllib.request.urlopen(f"{url}/data/logdir", timeout=2); return True
    except (urllib.error.URLError, OSError): return False


def test_server_round_trip(tmp_path):
    _tiny_fit(tmp_path, epochs=2)
    expected = read_scalars(tmp_path)
    with tensorboard_server(tmp_path, reload_interval=0, timeout=120) as url:
        assert url.startswith("http://127.0.0.1:")
        tags = server_tags(url)
        assert tags["train"] == ["epoch_loss", "loss", "lr"]
        served = {f"{run}/{tag}": server_scalars(url, run, tag) for run, ts in tags.items() for tag in ts}
        with pytest.raises(KeyError, match="no scalar tag"): server_scalars(url, "train", "nope", timeout=1)
    assert served == expected
    assert not _answers(url)  # stopped


def test_server_stops_after_an_error(tmp_path):
    with SummaryWriter(tmp_path) as w: w.add_scalar("a", 1.0, 0)
    with pytest.raises(ZeroDivisionError):
        with tensorboard_server(tmp_path, reload_interval=0, timeout=120) as url: 1 / 0
    assert not _answers(url)


def test_server_port_in_use_gives_its_output(tmp_path):
    with SummaryWriter(tmp_path) as w: w.add_scalar("a", 1.0, 0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); s.listen(1)
        port = s.getsockname()[1]
        with pytest.raises((RuntimeError, TimeoutError), match="its output"):
            with tensorboard_server(tmp_path, port=port, timeout=30): pass


def test_server_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no log folder"):
        with tensorboard_server(tmp_path/"nope"): pass


# --- issue 18: say when nothing was read, or the files are damaged; talk only to our own server ---

def test_read_scalars_empty_folder(tmp_path):
    (tmp_path/"run").mkdir()
    with pytest.raises(FileNotFoundError, match="no TensorBoard event files .* under"):
        read_scalars(tmp_path)


def test_read_scalars_random_bytes(tmp_path):
    (tmp_path/"events.out.tfevents.123.host").write_bytes(bytes(range(256)) * 8)
    with pytest.raises(ValueError, match=r"events\.out\.tfevents\.123\.host' is damaged after 0 good records.*checksum"):
        read_scalars(tmp_path)


def test_read_scalars_truncated_file(tmp_path):
    with SummaryWriter(tmp_path) as w:
        for s in range(50): w.add_scalar("x", float(s), s)
    f = next(tmp_path.glob("events*"))
    full = read_scalars(tmp_path)["x"]
    f.write_bytes(f.read_bytes()[:-10])  # cut short inside the last record
    with pytest.raises(ValueError, match=r"damaged after \d+ good records .*it ends inside a record.*strict=False"):
        read_scalars(tmp_path)
    with pytest.warns(UserWarning, match="reading its good records only"):
        partial = read_scalars(tmp_path, strict=False)["x"]
    assert partial == full[:len(partial)] and 0 < len(partial) < 50


def test_read_scalars_accepts_a_folder_with_no_scalars(tmp_path):
    with SummaryWriter(tmp_path) as w: w.add_text("note", "only text", 0)
    assert read_scalars(tmp_path) == {}  # files were read: there simply are no scalars


def test_plot_scalars_arguments(tmp_path):
    import matplotlib; matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    scalars = {"train/loss": [(1, 2.0), (2, 1.0)], "empty": []}
    assert len(plot_scalars(scalars, "train/loss").get_lines()) == 1  # a string is one key
    with pytest.raises(ValueError, match="no keys to plot"): plot_scalars(scalars, [])
    with pytest.raises(ValueError, match="'empty' has no points"): plot_scalars(scalars, ["empty"])
    with pytest.raises(KeyError, match="logged keys"): plot_scalars(scalars, ["nope"])
    plt.close("all")


def test_callback_more_bad_arguments(tmp_path):
    (tmp_path/"file").write_text("x")
    with pytest.raises(FileExistsError, match="is a file"): TensorBoardCallback(tmp_path/"file")
    with pytest.raises(ValueError, match="n_images must be a whole number >= 1"): TensorBoardCallback(tmp_path, n_images=0)
    with pytest.raises(ValueError, match="write_secs must be"): TensorBoardCallback(tmp_path, write_secs=float("nan"))


def test_server_bypasses_proxies(tmp_path, monkeypatch):
    with SummaryWriter(tmp_path) as w: w.add_scalar("a", 1.0, 0)
    dead = socket.socket(); dead.bind(("127.0.0.1", 0)); port = dead.getsockname()[1]; dead.close()
    for var in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(var, f"http://127.0.0.1:{port}")  # a proxy that does not exist
    for var in ("NO_PROXY", "no_proxy"): monkeypatch.delenv(var, raising=False)
    with tensorboard_server(tmp_path, reload_interval=0, timeout=120) as url:
        assert server_scalars(url, ".", "a") == [(0, 1.0)]


def test_server_refuses_another_server_on_its_port(tmp_path):
    import http.server, json, threading
    class Fake(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"logdir": "/somewhere/else"}).encode()
            self.send_response(200); self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
        def log_message(self, *a): pass
    with SummaryWriter(tmp_path) as w: w.add_scalar("a", 1.0, 0)
    fake = http.server.HTTPServer(("127.0.0.1", 0), Fake)
    threading.Thread(target=fake.serve_forever, daemon=True).start()
    try:
        with pytest.raises(RuntimeError, match=r"another server answers|exited with code"):
            with tensorboard_server(tmp_path, port=fake.server_address[1], timeout=60): pass
    finally: fake.shutdown()
    with pytest.raises(ValueError, match="port must be a whole number in 1-65535"):
        with tensorboard_server(tmp_path, port=70000): pass


# --- issue 15: the callback split into short hooks; the reading checks moved into helpers ---

def test_callback_skips_the_grid_for_inputs_that_are_not_images(tmp_path):
    "Rows of a table have no picture: no image is logged, the histograms still are, under the layer's own names."
    from pytorch_playground.training import fit
    torch.manual_seed(0)
    X, y = torch.rand(32, 5), torch.randint(0, 3, (32,))
    dl = InMemoryLoader(X, y, batch_size=16)
    model = nn.Linear(5, 3)
    fit(model, dl, dl, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1), 2,
        callbacks=[TensorBoardCallback(tmp_path, image_every=1, hist_every=2)], progress=False)
    acc = EventAccumulator(str(tmp_path/"train"), size_guidance={"images": 0, "histograms": 0}).Reload()
    assert acc.Tags()["images"] == []
    assert sorted(acc.Tags()["histograms"]) == ["grads/bias", "grads/weight", "weights/bias", "weights/weight"]
    assert [h.step for h in acc.Histograms("weights/weight")] == [4]  # epoch 2 of 2, after 2 batches each


def test_read_scalars_warning_points_at_the_caller(tmp_path):
    with SummaryWriter(tmp_path) as w:
        for s in range(20): w.add_scalar("x", float(s), s)
    f = next(tmp_path.glob("events*"))
    f.write_bytes(f.read_bytes()[:-10])
    with pytest.warns(UserWarning, match="reading its good records only") as rec:
        read_scalars(tmp_path, strict=False)
    assert rec[0].filename == __file__  # the line that called read_scalars, not the module's insides


# --- issue 27: tensorboard cases ---

def _state(model, xb, step=1, epoch=0):
    from types import SimpleNamespace
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return SimpleNamespace(model=model, opt=opt, xb=xb, step=step, epoch=epoch, loss=1.0,
                           history=[{"epoch": epoch, "train_loss": 1.0, "valid_loss": 0.5}], is_main=True)


def test_second_run_into_one_log_dir_is_refused(tmp_path):
    from pytorch_playground.training import fit
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    dl = InMemoryLoader(torch.randn(16, 4), torch.randint(0, 2, (16,)), batch_size=8)
    fit(model, dl, dl, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1), 1,
        callbacks=[TensorBoardCallback(tmp_path/"run")], progress=False)
    with pytest.raises(FileExistsError, match="already holds a run.*own log_dir"):
        fit(model, dl, dl, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1), 1,
            callbacks=[TensorBoardCallback(tmp_path/"run")], progress=False)
    assert len(read_scalars(tmp_path/"run")["train/loss"]) == 2  # the first run is untouched


def test_graph_with_tuple_inputs(tmp_path):
    class Two(nn.Module):
        def __init__(self): super().__init__(); self.a, self.b = nn.Linear(3, 2), nn.Linear(4, 2)
        def forward(self, x, y): return self.a(x) + self.b(y)
    cb = TensorBoardCallback(tmp_path, graph=True)
    model, xb = Two(), (torch.randn(5, 3), torch.randn(5, 4))
    st = _state(model, xb)
    cb.before_fit(_state(model, xb, step=0))
    cb.after_batch(st)
    cb.close()
    acc = EventAccumulator(str(tmp_path/"train")).Reload()
    assert acc.Tags()["graph"]


def test_graph_and_grid_with_dict_inputs_are_skipped_with_a_message(tmp_path):
    class Dicty(nn.Module):
        def __init__(self): super().__init__(); self.a = nn.Linear(3, 2)
        def forward(self, d): return self.a(d["x"])
    cb = TensorBoardCallback(tmp_path, graph=True, image_every=1)
    model, xb = Dicty(), {"x": torch.randn(5, 3)}
    cb.before_fit(_state(model, xb, step=0))
    with pytest.warns(UserWarning, match="logs no graph: the batch's inputs are a dict"):
        cb.after_batch(_state(model, xb))
    with pytest.warns(UserWarning, match=r"logs no image grid: the batch's inputs \(dict\) are not images"):
        cb.after_epoch(_state(model, xb))
    cb.close()
    assert read_scalars(tmp_path)["valid/loss"] == [(1, 0.5)]


def test_tilde_log_dir_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    cb = TensorBoardCallback("~/tb")
    assert cb.log_dir == tmp_path/"tb"
