"""Fast tests of `training.fit`'s contract on a tiny model and data set (not the chapter's CNN and digits)."""
import math, os
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from pytorch_playground import training
from pytorch_playground.training import FitState, accuracy, fit

CPU = torch.device("cpu")


def blobs(n=60, seed=0):
    "Three Gaussian blobs in 4 dimensions: (X, y)."
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    X = torch.randn(n, 4, generator=g) * 0.7 + nn.functional.one_hot(y, 4).float() * 2
    return X, y


def make(seed=0, dropout=0.2):
    "A small MLP with dropout (so that resuming must restore the RNG too) and its Adam optimiser."
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 3))
    return model, torch.optim.Adam(model.parameters(), lr=0.01)


def loaders(batch_size=8, shuffle=True, generator=None):
    X, y = blobs()
    train = DataLoader(TensorDataset(X[:40], y[:40]), batch_size=batch_size, shuffle=shuffle, generator=generator)
    valid = DataLoader(TensorDataset(X[40:], y[40:]), batch_size=6)  # 20 samples: batches of 6, 6, 6, 2
    return train, valid


def weights(model): return [p.detach().clone() for p in model.parameters()]


def same(a, b): return all(torch.equal(x, y) for x, y in zip(a, b))


def run(model, opt, epochs=3, **kw):
    train, valid = kw.pop("dls", None) or loaders()
    return fit(model, train, valid, nn.CrossEntropyLoss(), opt, epochs, device=CPU, progress=False, **kw)


# --- the plain loop ---------------------------------------------------------------------------
def plain_loop(model, opt, train, valid, loss_fn, epochs, scheduler=None):
    for _ in range(epochs):
        model.train()
        for xb, yb in train:
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            for xb, yb in valid: loss_fn(model(xb), yb)
        if scheduler is not None: scheduler.step()


def test_same_weights_as_the_plain_loop():
    m1, o1 = make(); s1 = torch.optim.lr_scheduler.StepLR(o1, 1, gamma=0.5)
    torch.manual_seed(1); plain_loop(m1, o1, *loaders(), nn.CrossEntropyLoss(), 3, s1)
    m2, o2 = make(); s2 = torch.optim.lr_scheduler.StepLR(o2, 1, gamma=0.5)
    torch.manual_seed(1); run(m2, o2, 3, scheduler=s2, metrics={"accuracy": accuracy})
    assert same(weights(m1), weights(m2))
    assert o2.param_groups[0]["lr"] == pytest.approx(0.01 / 8)


def test_history_metrics_are_weighted_means_over_the_validation_set():
    model, opt = make(dropout=0.0)
    train, valid = loaders()
    hist = run(model, opt, 2, dls=(train, valid), metrics={"accuracy": accuracy})
    assert [h["epoch"] for h in hist] == [0, 1]
    assert set(hist[-1]) == {"epoch", "train_loss", "valid_loss", "accuracy"}
    X, y = valid.dataset.tensors
    with torch.no_grad(): out = model.eval()(X)
    assert hist[-1]["valid_loss"] == pytest.approx(nn.functional.cross_entropy(out, y).item(), rel=1e-5)
    assert hist[-1]["accuracy"] == pytest.approx(accuracy(out, y), rel=1e-6)
    assert all(math.isfinite(h["train_loss"]) for h in hist)


def test_accuracy():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0], [0.0, 1.0]])
    assert accuracy(logits, torch.tensor([0, 1, 1, 1])) == 0.75
    with pytest.raises(ValueError, match="logits"): accuracy(logits, torch.tensor([[0], [1], [1], [1]]))


# --- checkpoints and resume -------------------------------------------------------------------
@pytest.mark.parametrize("private_generator", [False, True])
def test_resume_reproduces_the_uninterrupted_run(tmp_path, private_generator):
    def setup(seed):
        model, opt = make()
        sched = torch.optim.lr_scheduler.StepLR(opt, 1, gamma=0.7)
        g = torch.Generator().manual_seed(5) if private_generator else None
        torch.manual_seed(seed)
        return model, opt, sched, loaders(generator=g)
    m, o, s, dls = setup(3)
    straight = run(m, o, 4, dls=dls, scheduler=s, checkpoint_dir=tmp_path / "a")
    w_straight = weights(m)

    m, o, s, dls = setup(3)
    first = run(m, o, 2, dls=dls, scheduler=s, checkpoint_dir=tmp_path / "b")
    assert len(first) == 2
    m, o, s, dls = setup(99)  # fresh objects and another RNG state: everything must come from last.pt
    resumed = run(m, o, 4, dls=dls, scheduler=s, checkpoint_dir=tmp_path / "b", resume=True)
    assert same(weights(m), w_straight)
    assert resumed == straight
    assert o.param_groups[0]["lr"] == pytest.approx(0.01 * 0.7**4)


def test_checkpoints_load_with_weights_only(tmp_path):
    model, opt = make()
    seen = []
    class Keep:  # remember each epoch's weights to find the best one afterwards
        def after_epoch(self, state): seen.append({k: v.clone() for k, v in state.model.state_dict().items()})
    hist = run(model, opt, 4, checkpoint_dir=tmp_path, callbacks=[Keep()],
               scheduler=torch.optim.lr_scheduler.CosineAnnealingLR(opt, 4))
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    i_best = min(range(4), key=lambda i: hist[i]["valid_loss"])
    assert all(torch.equal(best[k], seen[i_best][k]) for k in best)
    assert last["epoch"] == 4 and last["history"] == hist
    assert set(last) >= {"model", "opt", "scheduler", "epoch", "history", "rng"}
    assert set(last["rng"]) == {"torch", "cuda", "numpy", "python"}
    fresh, _ = make(seed=7)
    fresh.load_state_dict(best)  # best.pt is a plain state_dict
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    umask = os.umask(0); os.umask(umask)
    assert (tmp_path / "best.pt").stat().st_mode & 0o777 == 0o666 & ~umask  # an ordinary file, not a private temp file


def test_a_failed_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    model, opt = make()
    run(model, opt, 1, checkpoint_dir=tmp_path)
    before = (tmp_path / "last.pt").read_bytes()
    real_save = torch.save
    def broken_save(obj, f, *a, **kw):
        f.write(b"half a checkpoint")
        raise OSError("disk full")
    monkeypatch.setattr(training.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        run(model, opt, 2, checkpoint_dir=tmp_path, resume=True)
    monkeypatch.setattr(training.torch, "save", real_save)
    assert (tmp_path / "last.pt").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]  # no temporary file left


def test_resume_errors(tmp_path):
    model, opt = make()
    with pytest.raises(FileNotFoundError, match="no checkpoint"): run(model, opt, 2, checkpoint_dir=tmp_path / "new", resume=True)
    assert not (tmp_path / "new").exists()  # a failed resume creates nothing
    with pytest.raises(ValueError, match="needs checkpoint_dir"): run(model, opt, 2, resume=True)
    run(model, opt, 1, checkpoint_dir=tmp_path)
    other = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    with pytest.raises(ValueError, match="does not fit this model"):
        run(other, torch.optim.Adam(other.parameters()), 2, checkpoint_dir=tmp_path, resume=True)
    model2, opt2 = make()
    with pytest.raises(ValueError, match="scheduler"):
        run(model2, opt2, 2, checkpoint_dir=tmp_path, resume=True, scheduler=torch.optim.lr_scheduler.StepLR(opt2, 1))
    (tmp_path / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot be read"): run(model2, opt2, 2, checkpoint_dir=tmp_path, resume=True)
    torch.save({"model": model2.state_dict()}, tmp_path / "last.pt")
    with pytest.raises(ValueError, match="not written by training.fit"):
        run(model2, opt2, 2, checkpoint_dir=tmp_path, resume=True)


# --- interrupt and nan ------------------------------------------------------------------------
def test_keyboard_interrupt_returns_the_history_and_keeps_last_pt(tmp_path, capsys):
    class CtrlC:
        def after_batch(self, state):
            if state.epoch == 2 and state.batch_idx == 1: raise KeyboardInterrupt
    calls = []
    class AfterFit:
        def after_fit(self, state): calls.append(len(state.history))
    model, opt = make()
    hist = run(model, opt, 5, checkpoint_dir=tmp_path, callbacks=[CtrlC(), AfterFit()])
    assert len(hist) == 2 and calls == [2]
    out = capsys.readouterr().out
    assert "interrupted" in out and "after 2 completed epochs" in out
    assert torch.load(tmp_path / "last.pt", weights_only=True)["epoch"] == 2


def test_nan_loss_stops_with_the_epoch_and_batch():
    X, y = blobs()
    X[17] = float("nan")  # sample 17 is in batch 2 of an unshuffled loader with batch_size 8
    train = DataLoader(TensorDataset(X[:40], y[:40]), batch_size=8)
    valid = DataLoader(TensorDataset(X[40:], y[40:]), batch_size=8)
    model, opt = make()
    with pytest.raises(FloatingPointError, match=r"nan.*epoch 0, batch 2"):
        fit(model, train, valid, nn.CrossEntropyLoss(), opt, 2, device=CPU, progress=False)
    model, opt = make()
    big = TensorDataset(torch.full((8, 4), 1e38), torch.zeros(8, 4))
    lin = nn.Linear(4, 4); o = torch.optim.SGD(lin.parameters(), lr=0.1)
    with pytest.raises(FloatingPointError, match="inf"):
        fit(lin, DataLoader(big, batch_size=4), DataLoader(big, batch_size=4), nn.MSELoss(), o, 1, device=CPU, progress=False)


def test_after_fit_runs_when_training_fails():
    "Callbacks get after_fit (to close their files) before a training error propagates."
    X, y = blobs()
    X[3] = float("nan")
    train = DataLoader(TensorDataset(X[:40], y[:40]), batch_size=8)
    valid = DataLoader(TensorDataset(X[40:], y[40:]), batch_size=8)
    calls = []
    class Closer:
        def after_fit(self, state): calls.append("closed")
    class Broken:
        def after_fit(self, state): raise RuntimeError("a broken cleanup")
    model, opt = make()
    with pytest.raises(FloatingPointError, match="nan"):  # the training error, not the cleanup's
        fit(model, train, valid, nn.CrossEntropyLoss(), opt, 2, device=CPU, progress=False, callbacks=[Broken(), Closer()])
    assert calls == ["closed"]


# --- bad input --------------------------------------------------------------------------------
def test_bad_inputs_get_clear_errors():
    model, opt = make()
    X, y = blobs()
    train, valid = loaders()
    empty = DataLoader(TensorDataset(X[:0], y[:0]), batch_size=4)
    with pytest.raises(ValueError, match="train_dl is empty"): run(model, opt, 1, dls=(empty, valid))
    with pytest.raises(ValueError, match="valid_dl is empty"): run(model, opt, 1, dls=(train, empty))
    no_len = (b for b in [])  # a generator: no len(), found empty while iterating
    with pytest.raises(ValueError, match="no batches"): run(model, opt, 1, dls=(no_len, valid))
    wide_y = DataLoader(TensorDataset(X, y[:, None]), batch_size=8)
    with pytest.raises(ValueError, match=r"target shape does not fit the loss.*squeeze"): run(model, opt, 1, dls=(wide_y, valid))
    lin = nn.Linear(4, 1)
    reg = DataLoader(TensorDataset(X, torch.rand(len(X))), batch_size=8)  # targets [N] against outputs [N, 1]
    with pytest.raises(ValueError, match="target shape does not fit the loss"):
        fit(lin, reg, reg, nn.MSELoss(), torch.optim.SGD(lin.parameters(), lr=0.1), 1, device=CPU, progress=False)
    class Stray(nn.Module):  # keeps a plain tensor (not a buffer) on another device
        def __init__(self):
            super().__init__(); self.lin = nn.Linear(4, 3); self.shift = torch.zeros(3, device="meta")
        def forward(self, x): return self.lin(x) + self.shift
    stray = Stray()
    with pytest.raises(RuntimeError, match="different devices.*register_buffer"):
        run(stray, torch.optim.SGD(stray.parameters(), lr=0.1), 1)
    triples = DataLoader(TensorDataset(X, y, y), batch_size=8)
    with pytest.raises(TypeError, match=r"\(inputs, targets\) pair"): run(model, opt, 1, dls=(triples, valid))
    with pytest.raises(TypeError, match="must be tensors"): run(model, opt, 1, dls=([([1.0] * 4, y[:1])], valid))
    with pytest.raises(ValueError, match="grad_accum_steps"): run(model, opt, 1, grad_accum_steps=0)
    with pytest.raises(ValueError, match="clash"): run(model, opt, 1, metrics={"valid_loss": accuracy})
    with pytest.raises(TypeError, match="none of the hooks"): run(model, opt, 1, callbacks=[object()])


# --- callbacks, accumulation, schedulers, progress --------------------------------------------
def test_callbacks_are_called_in_order_with_the_state():
    log = []
    class Recorder:
        def before_fit(self, s): log.append("before_fit"); assert isinstance(s, FitState) and s.is_main
        def before_epoch(self, s): log.append(f"before_epoch {s.epoch}")
        def after_batch(self, s):
            log.append("after_batch"); assert s.xb.shape[1] == 4 and math.isfinite(s.loss)
        def after_epoch(self, s): log.append(f"after_epoch {s.epoch} {s.history[-1]['epoch']} step {s.step}")
        def after_fit(self, s): log.append("after_fit")
    class OnlyOne:
        def after_epoch(self, s): log.append("second")
    model, opt = make()
    run(model, opt, 2, callbacks=[Recorder(), OnlyOne()])  # 40 samples, batches of 8: 5 per epoch
    assert log == (["before_fit", "before_epoch 0"] + ["after_batch"] * 5 + ["after_epoch 0 0 step 5", "second",
                    "before_epoch 1"] + ["after_batch"] * 5 + ["after_epoch 1 1 step 10", "second", "after_fit"])


def test_a_callback_can_stop_training():
    class StopAfterTwo:
        def after_epoch(self, s): s.stop_training = len(s.history) == 2
    model, opt = make()
    assert len(run(model, opt, 10, callbacks=[StopAfterTwo()])) == 2


def test_gradient_accumulation_equals_the_larger_batch():
    X, y = blobs()
    def train(batch_size, k, n=40):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 3))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        dl = DataLoader(TensorDataset(X[:n], y[:n]), batch_size=batch_size)
        fit(model, dl, dl, nn.CrossEntropyLoss(), opt, 2, device=CPU, progress=False, grad_accum_steps=k)
        return weights(model), opt
    big, _ = train(16, 1, n=32)
    acc, opt = train(8, 2, n=32)  # 4 batches of 8, two steps per epoch
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(big, acc))
    # 40 samples in batches of 8 with k=2: groups of 2, 2 and a last group of 1 (its own mean, not halved)
    uneven, _ = train(8, 2, n=40)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 3))
    o = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(2):
        for sl in (slice(0, 16), slice(16, 32), slice(32, 40)):
            o.zero_grad(); nn.functional.cross_entropy(model(X[sl]), y[sl]).backward(); o.step()
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(uneven, weights(model)))


def test_schedulers_per_batch_and_on_plateau():
    model, opt = make()
    onecycle = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=10)
    run(model, opt, 2, scheduler=onecycle)  # 5 batches × 2 epochs = 10 steps, exactly total_steps
    assert onecycle.last_epoch == 10
    model, opt = make()
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.5)
    hist = run(model, opt, 3, scheduler=plateau)
    assert plateau.best == pytest.approx(min(h["valid_loss"] for h in hist))


def test_progress_bar_shows_the_running_loss(capsys):
    model, opt = make()
    train, valid = loaders()
    fit(model, train, valid, nn.CrossEntropyLoss(), opt, 1, device=CPU, progress=True)
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "loss=" in err and "valid_loss=" in err
    fit(model, train, valid, nn.CrossEntropyLoss(), opt, 1, device=CPU, progress=False)
    assert capsys.readouterr().err == ""


def test_default_device_is_core_get_device():
    from pytorch_playground.core import get_device
    model, opt = make()
    train, valid = loaders()
    seen = []
    class Dev:
        def before_fit(self, s): seen.append(s.device)
    fit(model, train, valid, nn.CrossEntropyLoss(), opt, 1, progress=False, callbacks=[Dev()])
    assert seen == [get_device()]


def test_distributed_single_process_world(tmp_path):
    "Under torch.distributed (gloo, one process) with a DDP model: same history, plain keys in the checkpoints."
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP
    model, opt = make()
    torch.manual_seed(1); plain_hist = run(model, opt, 2, grad_accum_steps=2)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        model, opt = make()
        ddp = DDP(model)
        torch.manual_seed(1); hist = run(ddp, opt, 2, grad_accum_steps=2, checkpoint_dir=tmp_path / "ckpt")
    finally:
        dist.destroy_process_group()
    assert len(hist) == 2 and all(h[k] == pytest.approx(p[k], rel=1e-5) for h, p in zip(hist, plain_hist) for k in h)
    best = torch.load(tmp_path / "ckpt" / "best.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in best)
    make()[0].load_state_dict(best)


def test_fit_draws_no_random_numbers_of_its_own(tmp_path, capsys):
    "With checkpoints and the progress bar on, fit leaves torch, NumPy and Python RNGs where the plain loop does."
    import random
    import numpy as np
    def rng(): return torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    m1, o1 = make(); torch.manual_seed(1); np.random.seed(1); random.seed(1)
    plain_loop(m1, o1, *loaders(), nn.CrossEntropyLoss(), 2)
    after_plain = rng()
    m2, o2 = make(); torch.manual_seed(1); np.random.seed(1); random.seed(1)
    fit(m2, *loaders(), nn.CrossEntropyLoss(), o2, 2, device=CPU, checkpoint_dir=tmp_path, progress=True,
        metrics={"accuracy": accuracy})
    after_fit = rng()
    assert torch.equal(after_plain[0], after_fit[0])
    assert (after_plain[1] == after_fit[1]).all() and after_plain[2] == after_fit[2]
    assert same(weights(m1), weights(m2))
