"""Issue 27, fit side: each user mistake or fault gives an error (or warning) that names it and the fix,
never a silent wrong result, a raw crash or lost work. One test per case."""
import errno, math, os, subprocess, sys, textwrap, warnings
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from pytorch_playground import fitting
from pytorch_playground.internals import fitting as ifit
from pytorch_playground.training import accuracy, fit

CPU = torch.device("cpu")


def blobs(n=60, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    X = torch.randn(n, 4, generator=g) * 0.7 + nn.functional.one_hot(y, 4).float() * 2
    return X, y


def make(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    return model, torch.optim.Adam(model.parameters(), lr=0.01)


def loaders(batch_size=8, **kw):
    X, y = blobs()
    return (DataLoader(TensorDataset(X[:40], y[:40]), batch_size=batch_size, shuffle=True, **kw),
            DataLoader(TensorDataset(X[40:], y[40:]), batch_size=6))


def run(model=None, opt=None, epochs=2, dls=None, loss_fn=None, **kw):
    if model is None: model, opt = make()
    train, valid = dls or loaders()
    return fit(model, train, valid, loss_fn or nn.CrossEntropyLoss(), opt, epochs, device=kw.pop("device", CPU),
               progress=False, **kw)


# --- lost work ---------------------------------------------------------------------------------
def test_second_run_on_a_checkpoint_dir_in_use_is_refused_and_leaves_its_files(tmp_path):
    ckpt = tmp_path / "run"
    seen = {}
    class Second:
        def after_epoch(self, s):
            if s.epoch == 0:
                tmp = ckpt / ".last.pt.0123.tmp"; tmp.write_bytes(b"in flight")   # the first run's save in progress
                with pytest.raises(RuntimeError, match="in use by another fit"):
                    run(checkpoint_dir=ckpt, overwrite=True)
                seen["tmp kept"] = tmp.exists(); tmp.unlink()
    hist = run(checkpoint_dir=ckpt, callbacks=[Second()])
    assert seen == {"tmp kept": True} and len(hist) == 2
    assert not (ckpt / ".fit.lock").exists()                       # released at the end
    assert torch.load(ckpt / "last.pt", weights_only=True)["epoch"] == 2


def test_lock_of_another_live_process_is_refused_and_a_dead_ones_taken_over(tmp_path):
    import socket
    ckpt = tmp_path / "run"; ckpt.mkdir()
    (ckpt / ".fit.lock").write_text(f"{os.getppid()} {socket.gethostname()}")        # a live process
    with pytest.raises(RuntimeError, match="in use by another fit"): run(checkpoint_dir=ckpt)
    (ckpt / ".fit.lock").write_text(f"999999999 {socket.gethostname()}")             # gone: stale
    assert len(run(checkpoint_dir=ckpt)) == 2


def test_lock_is_released_after_an_error(tmp_path):
    with pytest.raises(FloatingPointError):
        X, y = blobs(); X[3] = float("nan")
        run(dls=(DataLoader(TensorDataset(X[:40], y[:40]), batch_size=8), loaders()[1]), checkpoint_dir=tmp_path / "r")
    assert not (tmp_path / "r" / ".fit.lock").exists()
    run(checkpoint_dir=tmp_path / "r", overwrite=True)


# --- silent wrong results --------------------------------------------------------------------
def test_monitor_accuracy_infers_max(tmp_path):
    hist = run(epochs=3, metrics={"accuracy": accuracy}, monitor="accuracy", checkpoint_dir=tmp_path)
    ck = torch.load(tmp_path / "last.pt", weights_only=True)
    assert ck["mode"] == "max" and ck["best"] == max(h["accuracy"] for h in hist)


def test_monitor_with_unclear_name_needs_a_mode():
    with pytest.raises(ValueError, match="mode='min'.*mode='max'"):
        run(metrics={"margin": lambda o, y: 0.5}, monitor="margin")


def test_mode_contradicting_the_name_warns():
    with pytest.warns(UserWarning, match="mode='max'"):
        run(metrics={"accuracy": accuracy}, monitor="accuracy", mode="min")


def test_resume_with_changed_weight_decay_warns_naming_it(tmp_path):
    model, opt = make(); run(model, opt, 1, checkpoint_dir=tmp_path)
    model, _ = make(); opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=0.1)
    with pytest.warns(UserWarning, match="weight_decay=0"):
        run(model, opt, 2, checkpoint_dir=tmp_path, resume=True)


def test_resume_with_a_longer_schedule_is_refused(tmp_path):
    model, opt = make(); sch = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=2)
    run(model, opt, 2, checkpoint_dir=tmp_path, scheduler=sch)
    model, opt = make(); sch = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4)
    with pytest.raises(ValueError, match="T_max=2 in the checkpoint, 4 now"):
        run(model, opt, 4, checkpoint_dir=tmp_path, scheduler=sch, resume=True)


def test_resume_with_another_scheduler_class_is_refused(tmp_path):
    model, opt = make(); run(model, opt, 1, checkpoint_dir=tmp_path, scheduler=torch.optim.lr_scheduler.StepLR(opt, 1))
    model, opt = make()
    with pytest.raises(ValueError, match="StepLR scheduler but fit got a ExponentialLR"):
        run(model, opt, 2, checkpoint_dir=tmp_path, scheduler=torch.optim.lr_scheduler.ExponentialLR(opt, 0.9), resume=True)


def test_scheduler_built_on_an_earlier_optimiser_is_refused():
    model, old = make(); sch = torch.optim.lr_scheduler.StepLR(old, 1)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    with pytest.raises(ValueError, match="built on another optimiser"): run(model, opt, scheduler=sch)


def test_onecycle_steps_must_match_grad_accum_steps():
    model, opt = make(); train, valid = loaders()
    sch = torch.optim.lr_scheduler.OneCycleLR(opt, 0.1, epochs=2, steps_per_epoch=len(train))   # 10 steps, fit takes 4
    with pytest.warns(UserWarning, match="total_steps=4"): run(model, opt, 2, scheduler=sch, grad_accum_steps=3)
    model, opt = make()
    sch = torch.optim.lr_scheduler.OneCycleLR(opt, 0.1, total_steps=3)
    with pytest.raises(ValueError, match="total_steps=10"): run(model, opt, 2, scheduler=sch)


def test_flipped_bit_in_last_pt_is_refused(tmp_path):
    model, opt = make(); run(model, opt, 1, checkpoint_dir=tmp_path)
    raw = bytearray((tmp_path / "last.pt").read_bytes())
    import zipfile
    with zipfile.ZipFile(tmp_path / "last.pt") as z:
        info = next(i for i in z.infolist() if i.file_size > 200)
    raw[info.header_offset + 30 + len(info.filename) + len(info.extra) + 100] ^= 4   # inside the stored data
    (tmp_path / "last.pt").write_bytes(bytes(raw))
    model, opt = make()
    with pytest.raises(ValueError, match="fails its checksum"): run(model, opt, 2, checkpoint_dir=tmp_path, resume=True)


def test_finite_loss_with_infinite_gradient_says_the_truth_about_the_weights():
    class Blow(nn.Module):          # a finite output and loss, an infinite gradient: d sqrt(s)/ds at s = 0
        def __init__(self): super().__init__(); self.lin = nn.Linear(4, 3); self.s = nn.Parameter(torch.zeros(1))
        def forward(self, x): return self.lin(x) + torch.sqrt(self.s) * torch.tensor([1.0, 0.0, 0.0])
    model = Blow(); opt = torch.optim.SGD(model.parameters(), lr=1.0)
    with pytest.raises(FloatingPointError, match="batch 1") as e: run(model, opt, 1)
    assert not torch.isfinite(model.s).all() and "already nan/inf" in str(e.value)


def test_max_grad_norm_refuses_a_step_with_an_infinite_gradient_and_keeps_the_weights():
    class Blow(nn.Module):          # a finite output and loss, an infinite gradient: d sqrt(s)/ds at s = 0
        def __init__(self): super().__init__(); self.lin = nn.Linear(4, 3); self.s = nn.Parameter(torch.zeros(1))
        def forward(self, x): return self.lin(x) + torch.sqrt(self.s) * torch.tensor([1.0, 0.0, 0.0])
    model = Blow(); opt = torch.optim.SGD(model.parameters(), lr=1.0); before = [p.clone() for p in model.parameters()]
    with pytest.raises(FloatingPointError, match="weights are unchanged"): run(model, opt, 1, max_grad_norm=1.0)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_compiled_model_saves_plain_keys(tmp_path):
    model, opt = make()
    class FakeCompiled(nn.Module):              # what torch.compile returns: the model as _orig_mod
        def __init__(self, m): super().__init__(); self._orig_mod = m
        def forward(self, x): return self._orig_mod(x)
    run(FakeCompiled(model), opt, 1, checkpoint_dir=tmp_path)
    keys = list(torch.load(tmp_path / "best.pt", weights_only=True))
    assert keys and not any(k.startswith("_orig_mod") for k in keys)
    make()[0].load_state_dict(torch.load(tmp_path / "best.pt", weights_only=True))


def test_misspelled_callback_hook_is_refused():
    class Logger:
        def on_epoch_end(self, s): pass
    with pytest.raises(TypeError, match="on_epoch_end.*after_epoch"): run(callbacks=[Logger()])


def test_checkpoint_dir_tilde_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    run(checkpoint_dir="~/ckpt")
    assert (tmp_path / "ckpt" / "last.pt").exists() and not (tmp_path / "~").exists()


def test_empty_checkpoint_dir_is_refused():
    with pytest.raises(ValueError, match="names no folder"): run(checkpoint_dir="")


def test_accuracy_on_binary_logits_is_refused():
    with pytest.raises(ValueError, match="Threshold it"): accuracy(torch.randn(4, 1), torch.tensor([0, 1, 1, 0]))


def test_rank_without_world_size_is_refused(monkeypatch):
    monkeypatch.setenv("RANK", "0"); monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(ValueError, match="WORLD_SIZE is not"): run()


# --- raw crashes -----------------------------------------------------------------------------
def test_metrics_as_a_list():
    with pytest.raises(TypeError, match="metrics=\\{'accuracy': accuracy\\}"): run(metrics=[accuracy])


def test_loss_with_reduction_none():
    with pytest.raises(ValueError, match="reduction='mean'"): run(loss_fn=nn.CrossEntropyLoss(reduction="none"))


def test_loss_returning_a_float():
    with pytest.raises(TypeError, match="returned a float"):
        run(loss_fn=lambda o, y: nn.functional.cross_entropy(o, y).item())


def test_loss_returning_one_value_per_example():
    with pytest.raises(ValueError, match="one loss per element"):
        run(loss_fn=lambda o, y: nn.functional.cross_entropy(o, y, reduction="none"))


def test_datasets_where_loaders_go():
    X, y = blobs()
    with pytest.raises(TypeError, match="wrap it, train_dl=DataLoader"):
        run(dls=(TensorDataset(X[:40], y[:40]), TensorDataset(X[40:], y[40:])))


def test_dataset_yielding_a_list_of_inputs():
    X, y = blobs()
    class Two(torch.utils.data.Dataset):
        def __len__(self): return 60
        def __getitem__(self, i): return [X[i, :2], X[i, 2:]], y[i]
    class TwoIn(nn.Module):
        def __init__(self): super().__init__(); self.lin = nn.Linear(4, 3)
        def forward(self, a, b): return self.lin(torch.cat([a, b], 1))
    model = TwoIn(); opt = torch.optim.Adam(model.parameters())
    hist = run(model, opt, 1, dls=(DataLoader(Two(), batch_size=8), DataLoader(Two(), batch_size=8)),
               metrics={"accuracy": accuracy})
    assert len(hist) == 1 and 0 <= hist[0]["accuracy"] <= 1


def test_lstm_tuple_output():
    class Seq(nn.Module):
        def __init__(self): super().__init__(); self.lstm = nn.LSTM(4, 3, batch_first=True)
        def forward(self, x): return self.lstm(x[:, None, :])
    model = Seq(); opt = torch.optim.Adam(model.parameters())
    with pytest.raises(TypeError, match="out, _ = self.lstm"): run(model, opt)


def test_metric_returning_a_dict_is_caught_on_the_first_batch():
    batches = []
    class Count:
        def after_batch(self, s): batches.append(s.batch_idx)
    with pytest.raises(TypeError, match="metric 'both' returned a dict"):
        run(metrics={"both": lambda o, y: {"a": 1.0, "b": 2.0}}, callbacks=[Count()])
    assert batches == []


def test_accuracy_of_a_list():
    with pytest.raises(TypeError, match="two tensors"): accuracy(torch.randn(3, 2), [0, 1, 1])


def test_disk_full_during_a_save_says_so(tmp_path, monkeypatch):
    model, opt = make(); run(model, opt, 1, checkpoint_dir=tmp_path)
    real = torch.save
    def full(obj, f, *a, **k):
        f.write(b"partial"); raise RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing file data/3: file write failed")
    monkeypatch.setattr(ifit.torch, "save", full)
    with pytest.raises(OSError, match="the disk is full.*still holds the previous save"):
        run(model, opt, 2, checkpoint_dir=tmp_path, resume=True)
    monkeypatch.setattr(ifit.torch, "save", real)
    assert torch.load(tmp_path / "last.pt", weights_only=True)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


# --- unclear errors --------------------------------------------------------------------------
def test_labels_out_of_range():
    X, y = blobs(); y = y + 1      # classes 1..3 for a 3-output model
    dls = (DataLoader(TensorDataset(X, y), batch_size=8), DataLoader(TensorDataset(X, y), batch_size=8))
    with pytest.raises(ValueError, match="label is out of range.*4 outputs"): run(dls=dls)


@pytest.mark.parametrize("dtype", [torch.float64, torch.uint8])
def test_float64_and_uint8_inputs(dtype):
    X, y = blobs(); X = (X * 10).abs().to(dtype)
    dls = (DataLoader(TensorDataset(X, y), batch_size=8), DataLoader(TensorDataset(X, y), batch_size=8))
    with pytest.raises(TypeError, match=f"inputs are {dtype}.*x.float"): run(dls=dls)


def test_last_batch_of_one_under_batchnorm():
    X, y = blobs(41)
    torch.manual_seed(0); model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 3))
    opt = torch.optim.Adam(model.parameters())
    with pytest.raises(ValueError, match="drop_last=True"):
        run(model, opt, dls=(DataLoader(TensorDataset(X, y), batch_size=8), loaders()[1]))


def test_images_without_channel_axis_into_conv2d():
    X = torch.randn(16, 8, 8); y = torch.arange(16) % 3
    torch.manual_seed(0); model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.LazyLinear(3))
    model(torch.randn(2, 1, 8, 8)); opt = torch.optim.Adam(model.parameters())
    dls = (DataLoader(TensorDataset(X, y), batch_size=4), DataLoader(TensorDataset(X, y), batch_size=4))
    with pytest.raises(ValueError, match="unsqueeze\\(1\\)"): run(model, opt, dls=dls)


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
def test_mps_on_a_machine_without_it():
    with pytest.raises(ValueError, match="device='mps' is Apple's GPU"): run(device="mps")


def test_numpy_integer_epochs():
    assert len(run(epochs=np.int64(2), grad_accum_steps=np.int32(1))) == 2


def test_one_shot_generator_is_refused_for_several_epochs():
    train, valid = loaders()
    with pytest.raises(TypeError, match="one-shot iterator"): run(dls=((b for b in train), valid), epochs=2)
    assert len(run(dls=((b for b in train), valid), epochs=1)) == 1


def test_loader_without_len_steps_the_short_last_group_as_a_mean():
    "The last group of 2 batches (k=3) is divided by 2, not 3: the same step as a loader with len()."
    X, y = blobs()
    class NoLen:
        def __init__(self, dl): self.dl = dl
        def __iter__(self): return iter(self.dl)
    dl = DataLoader(TensorDataset(X[:40], y[:40]), batch_size=8)   # 5 batches: groups of 3 and 2
    valid = loaders()[1]
    m1, o1 = make(); run(m1, o1, 1, dls=(dl, valid), grad_accum_steps=3)
    m2, o2 = make(); run(m2, o2, 1, dls=(NoLen(dl), valid), grad_accum_steps=3)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(m1.parameters(), m2.parameters()))


def test_dataset_yielding_a_list_of_numbers_as_features():
    "A list of numbers per example is collated into one tensor per feature: model(*inputs) then fails."
    X, y = blobs()
    class Listy(torch.utils.data.Dataset):
        def __len__(self): return 60
        def __getitem__(self, i): return [float(v) for v in X[i]], y[i]
    dl = DataLoader(Listy(), batch_size=8)
    with pytest.raises(TypeError, match=r"torch.tensor\(\[a, b\]\)"): run(dls=(dl, dl))


def test_unwrap_finds_the_model_inside_torch_compile():
    model = make()[0]
    compiled = torch.compile(model)          # lazy: nothing is compiled until it is called
    assert ifit._unwrap(compiled) is model and list(ifit._unwrap(compiled).state_dict()) == list(model.state_dict())


def test_ddp_loader_without_len_averages_the_short_last_group_over_the_ranks():
    "Under DDP the short last group's backward passes all run under no_sync: fit averages those gradients itself."
    from torch.nn.parallel import DistributedDataParallel as DDP
    from pytorch_playground.distributed import run_ranks
    class NoLen:
        def __init__(self, dl): self.dl = dl
        def __iter__(self): return iter(self.dl)
    def train(ctx, wrap):
        X, y = blobs(seed=ctx.rank)                                   # each rank its own data
        dl = DataLoader(TensorDataset(X[:40], y[:40]), batch_size=8)  # 5 batches: groups of 3 and 2
        model, opt = make()
        run(DDP(model), opt, 1, dls=(wrap(dl), loaders()[1]), grad_accum_steps=3)
        return [p.detach().clone() for p in model.parameters()]
    with_len = run_ranks(lambda ctx: train(ctx, lambda dl: dl), quiet=True)
    no_len = run_ranks(lambda ctx: train(ctx, NoLen), quiet=True)
    for ranks in (with_len, no_len):                                  # the ranks agree after the last step
        assert all(torch.equal(a, b) for a, b in zip(*ranks))
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(with_len[0], no_len[0]))


def test_local_rank_without_world_size_is_refused(monkeypatch):
    for k in ("RANK", "WORLD_SIZE"): monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("LOCAL_RANK", "0")
    with pytest.raises(ValueError, match="LOCAL_RANK=0 is set but WORLD_SIZE is not"): run()
