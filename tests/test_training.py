"""Fast tests of `training.fit`'s contract on a tiny model and data set (not the chapter's CNN and digits)."""
import math, os
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from pytorch_playground import fitting, training
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
    monkeypatch.setattr(fitting.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        run(model, opt, 2, checkpoint_dir=tmp_path, resume=True)
    monkeypatch.setattr(fitting.torch, "save", real_save)
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
class CtrlC:
    def after_batch(self, state):
        if state.epoch == 2 and state.batch_idx == 1: raise KeyboardInterrupt


def test_keyboard_interrupt_returns_the_history_in_ipython_and_keeps_last_pt(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(fitting, "_interactive", lambda: True)
    calls = []
    class AfterFit:
        def after_fit(self, state): calls.append(len(state.history))
    model, opt = make()
    hist = run(model, opt, 5, checkpoint_dir=tmp_path, callbacks=[CtrlC(), AfterFit()])
    assert len(hist) == 2 and calls == [2]
    out = capsys.readouterr().out
    assert "interrupted" in out and "after 2 completed epochs" in out
    assert torch.load(tmp_path / "last.pt", weights_only=True)["epoch"] == 2


def test_keyboard_interrupt_reraises_in_a_script_after_saving_last_pt(tmp_path, capsys):
    assert not fitting._interactive()  # pytest is not IPython
    calls = []
    class AfterFit:
        def after_fit(self, state): calls.append(len(state.history))
    model, opt = make()
    with pytest.raises(KeyboardInterrupt):
        run(model, opt, 5, checkpoint_dir=tmp_path, callbacks=[CtrlC(), AfterFit()])
    assert calls == [2] and "stopping with the history of 2 completed epochs" in capsys.readouterr().out
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
    torch.manual_seed(1); plain_hist = run(model, opt, 2, grad_accum_steps=2, metrics={"accuracy": accuracy})
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        model, opt = make()
        ddp = DDP(model)
        torch.manual_seed(1); hist = run(ddp, opt, 2, grad_accum_steps=2, checkpoint_dir=tmp_path / "ckpt",
                                           metrics={"accuracy": accuracy})  # gathered over the ranks
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


# --- issue 17: practitioners' features ---------------------------------------------------------
def test_bf16_autocasts_the_forward_but_keeps_float32_parameters_and_checkpoints(tmp_path):
    model, opt = make(dropout=0.0)
    seen = []
    model[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    hist = run(model, opt, 3, precision="bf16", checkpoint_dir=tmp_path, metrics={"accuracy": accuracy})
    assert torch.bfloat16 in seen                       # the Linear ran in bfloat16 under autocast
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(v.dtype == torch.float32 for v in torch.load(tmp_path / "best.pt", weights_only=True).values())
    assert hist[-1]["accuracy"] >= 0.9 and hist[-1]["valid_loss"] < hist[0]["valid_loss"]


def test_a_precision_the_device_cannot_do_names_the_alternative():
    model, opt = make()
    before = weights(model)
    with pytest.raises(ValueError, match="use precision='bf16'"): run(model, opt, 1, precision="fp16")
    with pytest.raises(ValueError, match="None .*'bf16' or 'fp16'"): run(model, opt, 1, precision="fp32")
    assert same(weights(model), before)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16 with a GradScaler needs CUDA")
def test_fp16_on_cuda_uses_a_grad_scaler(tmp_path):
    model, opt = make(dropout=0.0)
    hist = fit(model, *loaders(), nn.CrossEntropyLoss(), opt, 3, device="cuda", progress=False, precision="fp16",
               max_grad_norm=1.0, checkpoint_dir=tmp_path, metrics={"accuracy": accuracy})
    assert hist[-1]["accuracy"] >= 0.9 and all(p.dtype == torch.float32 for p in model.parameters())
    assert torch.load(tmp_path / "last.pt", weights_only=True)["scaler"]["scale"] > 0


def test_max_grad_norm_clips_like_the_plain_loop_and_before_step_sees_the_gradients():
    X, y = blobs()
    dl = DataLoader(TensorDataset(X[:40], y[:40]), batch_size=8)
    norms, moved = [], []
    class Inspect:
        def before_step(self, s):
            g = torch.cat([p.grad.flatten() for p in s.model.parameters()])
            norms.append((s.grad_norm, g.norm().item()))
            moved.append(same(weights(s.model), self.w))
        def after_batch(self, s): self.w = weights(s.model)
        def before_fit(self, s): self.w = weights(s.model)
    model, opt = make(dropout=0.0)
    fit(model, dl, dl, nn.CrossEntropyLoss(), opt, 2, device=CPU, progress=False, max_grad_norm=0.05, callbacks=[Inspect()])
    m2, o2 = make(dropout=0.0)
    for _ in range(2):
        for xb, yb in dl:
            o2.zero_grad(); nn.functional.cross_entropy(m2(xb), yb).backward()
            nn.utils.clip_grad_norm_(m2.parameters(), 0.05); o2.step()
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(weights(model), weights(m2)))
    assert len(norms) == 10 and all(after <= 0.05 + 1e-6 < before for before, after in norms)
    assert all(moved)  # before_step runs before the optimiser changes the weights
    with pytest.raises(ValueError, match="max_grad_norm"): run(model, opt, 1, max_grad_norm=-1)


def test_monitor_and_mode_choose_best_pt(tmp_path):
    model, opt = make()
    seen = []
    class Keep:
        def after_epoch(self, s): seen.append({k: v.clone() for k, v in s.model.state_dict().items()})
    hist = run(model, opt, 4, checkpoint_dir=tmp_path, metrics={"accuracy": accuracy}, monitor="accuracy",
               mode="max", callbacks=[Keep()])
    i_best = max(range(4), key=lambda i: (hist[i]["accuracy"], -i))  # the first epoch reaching the highest
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert all(torch.equal(best[k], seen[i_best][k]) for k in best)
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    assert (last["monitor"], last["mode"], last["best"]) == ("accuracy", "max", hist[i_best]["accuracy"])
    before = weights(model)
    with pytest.raises(ValueError, match=r"monitor='f1' is not recorded.*accuracy"):
        run(model, opt, 1, metrics={"accuracy": accuracy}, monitor="f1")
    with pytest.raises(ValueError, match="mode must be 'min'"): run(model, opt, 1, mode="lowest")
    assert same(weights(model), before)  # both refused before training
    m2, o2 = make()
    with pytest.raises(ValueError, match="monitor='accuracy', mode='max' but fit got monitor='valid_loss'"):
        run(m2, o2, 6, checkpoint_dir=tmp_path, metrics={"accuracy": accuracy}, resume=True)


def test_early_stopping_stops_after_patience_epochs_and_says_why():
    model, _ = make()
    frozen_lr = torch.optim.SGD(model.parameters(), lr=0.0)  # the loss never improves after epoch 0
    hist = run(model, frozen_lr, 10, callbacks=[training.EarlyStopping(patience=2)])
    assert len(hist) == 3 and "stopped" not in hist[1]
    assert "valid_loss" in hist[-1]["stopped"] and "2 epochs" in hist[-1]["stopped"] and "epoch 0" in hist[-1]["stopped"]
    model, opt = make(dropout=0.0)
    es = training.EarlyStopping(monitor="accuracy", mode="max", patience=1, min_delta=2.0)  # no gain can exceed 2
    assert len(run(model, opt, 10, metrics={"accuracy": accuracy}, callbacks=[es])) == 2
    with pytest.raises(ValueError, match="patience"): training.EarlyStopping(patience=0)
    with pytest.raises(ValueError, match="mode"): training.EarlyStopping(mode="up")
    with pytest.raises(ValueError, match="'f1' is not in the history"):
        run(model, opt, 2, callbacks=[training.EarlyStopping(monitor="f1")])


def test_metrics_are_computed_once_on_the_whole_validation_set():
    model, opt = make()
    n_seen, medians = [], []
    def count(out, y): n_seen.append(len(y)); return len(y)
    def median_margin(out, y): return (out.max(1).values - out.gather(1, y[:, None])[:, 0]).median().item()
    hist = run(model, opt, 2, metrics={"n": count, "median_margin": median_margin})  # valid batches 6, 6, 6, 2
    # the first call checks, once per fit, that each metric returns a number (on the first training batch of 8)
    assert n_seen == [8, 20, 20] and hist[-1]["n"] == 20
    X, y = loaders()[1].dataset.tensors
    with torch.no_grad(): out = model.eval()(X)
    assert hist[-1]["median_margin"] == pytest.approx(median_margin(out, y), abs=1e-6)


class TwoInputs(nn.Module):
    "The make() MLP, taking its 4 features as two inputs of 2."
    def __init__(self):
        super().__init__(); self.net = make(dropout=0.0)[0]
    def forward(self, a, b): return self.net(torch.cat([a, b], dim=1))


def test_tuple_and_dict_inputs_train_like_one_tensor():
    X, y = blobs()
    plain, opt = make(dropout=0.0)
    run(plain, opt, 2, dls=loaders(shuffle=False))
    for wrap in (lambda x: (x[:, :2], x[:, 2:]), lambda x: {"a": x[:, :2], "b": x[:, 2:]}):
        model = TwoInputs()
        batches = [(wrap(X[i:i + 8]), y[i:i + 8]) for i in range(0, 40, 8)]
        valid = [(wrap(X[40:]), y[40:])]
        fit(model, batches, valid, nn.CrossEntropyLoss(), torch.optim.Adam(model.parameters(), lr=0.01), 2,
            device=CPU, progress=False)
        assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(weights(model.net), weights(plain)))
    model = TwoInputs()
    as_dicts = [{"a": X[:8, :2], "b": X[:8, 2:], "y": y[:8]}]
    with pytest.raises(TypeError, match=r"got a dict with keys \['a', 'b', 'y'\].*dict of the model's keyword"):
        fit(model, as_dicts, as_dicts, nn.CrossEntropyLoss(), torch.optim.Adam(model.parameters()), 1, device=CPU, progress=False)
    with pytest.raises(TypeError, match="found a str"):
        fit(model, [((X[:8], "x"), y[:8])], as_dicts, nn.CrossEntropyLoss(), torch.optim.Adam(model.parameters()), 1,
            device=CPU, progress=False)


def test_compile_true_trains_the_compiled_model(monkeypatch):
    compiled = []
    def fake_compile(m):
        compiled.append(m)
        class Wrapped(nn.Module):
            def __init__(self): super().__init__(); self.inner = m; self.calls = 0
            def forward(self, x): self.calls += 1; return self.inner(x)
        return Wrapped()
    monkeypatch.setattr(fitting.torch, "compile", fake_compile)
    model, opt = make()
    run(model, opt, 1)
    assert compiled == []
    hist = run(model, opt, 1, compile=True)
    assert compiled == [model] and len(hist) == 1


def test_a_nan_loss_leaves_the_last_finite_weights():
    X, y = blobs()
    X[17] = float("nan")  # in batch 2
    for k in (1, 2):
        train = DataLoader(TensorDataset(X[:40], y[:40]), batch_size=8)
        snaps = []
        class Snap:
            def after_batch(self, s): snaps.append(weights(s.model))
        model, opt = make()
        with pytest.raises(FloatingPointError, match="before the optimiser step"):
            fit(model, train, train, nn.CrossEntropyLoss(), opt, 1, device=CPU, progress=False, grad_accum_steps=k,
                callbacks=[Snap()])
        assert len(snaps) == 2 and same(weights(model), snaps[-1])
        assert all(torch.isfinite(p).all() for p in model.parameters())


# --- issue 18: no data loss, no silent failure ---------------------------------------------------
def test_existing_checkpoints_are_not_overwritten_without_resume_or_overwrite(tmp_path):
    model, opt = make()
    run(model, opt, 2, checkpoint_dir=tmp_path)
    before = {n: (tmp_path / n).read_bytes() for n in ("best.pt", "last.pt")}
    w = weights(model)
    with pytest.raises(FileExistsError, match=r"already holds best.pt and last.pt.*resume=True.*overwrite=True"):
        run(model, opt, 1, checkpoint_dir=tmp_path)
    assert {n: (tmp_path / n).read_bytes() for n in before} == before and same(weights(model), w)
    run(model, opt, 1, checkpoint_dir=tmp_path, overwrite=True)
    assert torch.load(tmp_path / "last.pt", weights_only=True)["epoch"] == 1


def test_an_unusable_checkpoint_dir_is_found_before_training(tmp_path):
    model, opt = make()
    w = weights(model)
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"): run(model, opt, 1, checkpoint_dir=tmp_path / "a_file")
    with pytest.raises(PermissionError, match="cannot be written"): run(model, opt, 1, checkpoint_dir=tmp_path / "a_file" / "sub")
    if os.path.isdir("/proc/self"):  # a folder nobody can create files in, even root
        with pytest.raises(PermissionError, match="cannot be written"): run(model, opt, 1, checkpoint_dir="/proc/self")
    if os.geteuid() != 0:
        ro = tmp_path / "ro"; ro.mkdir(); ro.chmod(0o500)
        with pytest.raises(PermissionError, match="cannot be written"): run(model, opt, 1, checkpoint_dir=ro)
    assert same(weights(model), w)


def test_stale_temporary_files_of_a_killed_save_are_removed(tmp_path):
    (tmp_path / ".last.pt.0123abcd.tmp").write_bytes(b"half")
    (tmp_path / ".best.pt.4567ef.tmp").write_bytes(b"half")
    (tmp_path / "notes.txt").write_text("mine")
    model, opt = make()
    run(model, opt, 1, checkpoint_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt", "notes.txt"]


def test_resume_checks_everything_before_changing_any_state(tmp_path):
    model, opt = make()
    run(model, opt, 1, checkpoint_dir=tmp_path)
    m2, _ = make(seed=5)
    sgd = torch.optim.SGD(m2.parameters(), lr=0.01)
    w = weights(m2)
    with pytest.raises(ValueError, match="written by Adam.*fit got SGD"): run(m2, sgd, 2, checkpoint_dir=tmp_path, resume=True)
    assert same(weights(m2), w) and sgd.state_dict()["state"] == {}
    g = torch.Generator().manual_seed(0)  # a loader with a private generator: one state more than last.pt has
    adam = torch.optim.Adam(m2.parameters(), lr=0.01)
    with pytest.raises(ValueError, match="generator states"):
        run(m2, adam, 2, checkpoint_dir=tmp_path, resume=True, dls=loaders(generator=g))
    assert same(weights(m2), w) and adam.state_dict()["state"] == {}


def test_resume_with_another_lr_or_momentum_warns_naming_both(tmp_path):
    model, _ = make()
    run(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), 1, checkpoint_dir=tmp_path)
    m2, _ = make()
    with pytest.warns(UserWarning, match=r"lr=0.1 .*lr=0.05.*continues with the checkpoint's 0.1") as rec:
        run(m2, torch.optim.SGD(m2.parameters(), lr=0.05, momentum=0.9), 2, checkpoint_dir=tmp_path, resume=True)
    assert rec[0].filename == __file__  # the warning names the line that called fit, not a line inside the module
    m3, _ = make()
    with pytest.warns(UserWarning, match=r"momentum=0.9 .*momentum=0.5"):
        run(m3, torch.optim.SGD(m3.parameters(), lr=0.1, momentum=0.5), 3, checkpoint_dir=tmp_path, resume=True)
    import warnings
    m4, _ = make()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same settings: no warning
        run(m4, torch.optim.SGD(m4.parameters(), lr=0.1, momentum=0.9), 4, checkpoint_dir=tmp_path, resume=True)


def test_an_optimiser_on_other_parameters_or_a_frozen_model_is_an_error():
    model, _ = make()
    other, other_opt = make(seed=3)
    with pytest.raises(ValueError, match="holds none of the Sequential's trainable parameters"): run(model, other_opt, 1)
    for p in model.parameters(): p.requires_grad_(False)
    with pytest.raises(ValueError, match=r"every parameter of the Sequential is frozen.*requires_grad_\(True\)"):
        run(model, torch.optim.SGD(model.parameters(), lr=0.1), 1)
    with pytest.raises(TypeError, match="optimiser instance"): run(other, torch.optim.Adam, 1)


def test_nan_in_the_validation_loss_or_a_metric_is_an_error(tmp_path):
    X, y = blobs()
    Xv = X[40:].clone(); Xv[3] = float("nan")
    train, _ = loaders()
    valid = DataLoader(TensorDataset(Xv, y[40:]), batch_size=6)
    model, opt = make()
    with pytest.raises(FloatingPointError, match=r"valid_loss = nan at epoch 0"):
        run(model, opt, 2, dls=(train, valid), checkpoint_dir=tmp_path)
    assert not (tmp_path / "best.pt").exists() and not (tmp_path / "last.pt").exists()
    model, opt = make()
    with pytest.raises(FloatingPointError, match=r"ratio = inf.*division by zero"):
        run(model, opt, 1, metrics={"ratio": lambda o, t: torch.tensor(1.0) / 0})


def test_common_mistakes_get_errors_naming_cause_and_fix(tmp_path):
    model, opt = make()
    X, y = blobs()
    five = DataLoader(TensorDataset(torch.cat([X, X[:, :1]], 1), y), batch_size=8)
    with pytest.raises(ValueError, match="expects 4 features per row but gets 5.*in_features=5"): run(model, opt, 1, dls=(five, five))
    class Log:
        def after_epoch(self, s): pass
    with pytest.raises(TypeError, match=r"callback Log is a class: pass an instance, callbacks=\[Log\(\)\]"):
        run(model, opt, 1, callbacks=[Log])
    with pytest.raises(TypeError, match=r"the class CrossEntropyLoss.*nn.CrossEntropyLoss\(\)"):
        fit(model, *loaders(), nn.CrossEntropyLoss, opt, 1, device=CPU, progress=False)
    with pytest.raises(ValueError, match="empty batch"): accuracy(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))


def test_metrics_on_a_model_whose_output_is_not_a_tensor_is_a_clear_error():
    class TupleOut(nn.Module):
        def __init__(self): super().__init__(); self.lin = nn.Linear(4, 3)
        def forward(self, x): return (self.lin(x), x)
    m = TupleOut()
    loss = lambda out, y: nn.functional.cross_entropy(out[0], y)
    with pytest.raises(TypeError, match="metrics need the model's output as one tensor, got a tuple"):
        fit(m, *loaders(), loss, torch.optim.SGD(m.parameters(), lr=0.1), 1, device=CPU, progress=False,
            metrics={"accuracy": accuracy})
    assert len(fit(m, *loaders(), loss, torch.optim.SGD(m.parameters(), lr=0.1), 1, device=CPU, progress=False)) == 1


def test_fit_state_keeps_its_fields_and_constructor():
    "FitState is built from two dataclasses in the chapter; callbacks and outside code see one class with these fields."
    import dataclasses
    names = [f.name for f in dataclasses.fields(FitState)]
    assert names == ["model", "opt", "scheduler", "loss_fn", "train_dl", "valid_dl", "device", "epochs", "epoch",
                     "batch_idx", "step", "loss", "grad_norm", "xb", "yb", "history", "is_main", "stop_training"]
    model, opt = make()
    s = FitState(model, opt, epochs=3)
    assert s.history == [] and s.stop_training is False and s.is_main and math.isnan(s.loss)
    assert repr(s).startswith("FitState(epoch=0/3, batch_idx=0, step=0, loss=nan")
    assert FitState(model, opt) != FitState(model, opt)  # eq=False: states compare by identity


def test_ddp_skips_the_gradient_sync_inside_an_accumulation_group(tmp_path, monkeypatch):
    "With grad_accum_steps=k, DDP averages gradients once per group: no_sync() around every batch but a group's last."
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP
    entered, real = [], DDP.no_sync
    def counting(self):
        entered.append(1); return real(self)
    monkeypatch.setattr(DDP, "no_sync", counting)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        model, opt = make()
        run(DDP(model), opt, 1, grad_accum_steps=2)  # 40 samples in batches of 8: groups (0, 1), (2, 3), (4)
    finally:
        dist.destroy_process_group()
    assert len(entered) == 2  # batches 0 and 2; batches 1, 3 and 4 end their groups and sync
