"""Robustness tests for pytorch_playground.tensorboard: reading event files, the fit callback, and a real
TensorBoard server on 127.0.0.1 whose HTTP API must serve the same scalars as the files."""
import socket, time, urllib.error, urllib.request
import pytest
import torch
import torch.nn as nn
from torch.utils.tensorboard import SummaryWriter

from pytorch_playground.data import InMemoryLoader
from pytorch_playground.tensorboard import (TensorBoardCallback, read_scalars, server_scalars, server_tags,
                                            tensorboard_server)
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def _tiny_fit(log_dir, epochs=2, callbacks=None, **cb_kw):
    "Fit a small CNN on random 8x8 images with a TensorBoardCallback; returns (history, callback, batches per epoch)."
    from pytorch_playground.training import fit
    torch.manual_seed(0)
    X, y = torch.rand(96, 1, 8, 8), torch.randint(0, 3, (96,))
    train_dl, valid_dl = InMemoryLoader(X[:64], y[:64], batch_size=16), InMemoryLoader(X[64:], y[64:], batch_size=16)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(256, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    cb = TensorBoardCallback(log_dir, **cb_kw)
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
    hist, cb, n = _tiny_fit(tmp_path, epochs=2, callbacks=[Stop()])  # fit stops on Ctrl-C and returns
    assert hist == [] and cb.writers == {}  # after_fit ran on the way out and closed the writers
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
    run(2, False, [Stop()])
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
