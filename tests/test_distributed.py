"""Bad input for pytorch_playground.distributed: clear errors, fast, and never a hang."""
import os, socket, subprocess, sys
import pytest
import torch
import torch.distributed as dist
from pytorch_playground.distributed import (DistContext, init_distributed, make_loaders, prepare_output_dir,
                                            parse_args, default_backend, _device_for)

def _data(n_train=20, n_valid=10):
    X, y = torch.zeros(n_train, 1, 28, 28), torch.zeros(n_train, dtype=torch.long)
    Xv, yv = torch.zeros(n_valid, 1, 28, 28), torch.zeros(n_valid, dtype=torch.long)
    return X, y, Xv, yv

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]

def test_world_size_larger_than_training_data():
    with pytest.raises(ValueError, match="world size 4 is larger than the 3 training samples.*launch fewer processes"):
        make_loaders(*_data(3, 10), batch_size=4, world_size=4)

def test_world_size_larger_than_validation_data():
    with pytest.raises(ValueError, match="larger than the 2 validation samples"):
        make_loaders(*_data(20, 2), batch_size=4, world_size=4)

def test_global_batch_must_split_evenly():
    with pytest.raises(ValueError, match="multiple of 3"):
        make_loaders(*_data(), batch_size=8, world_size=3)

def test_fewer_samples_than_one_batch_per_rank():
    with pytest.raises(ValueError, match="gets 10 training samples, fewer than one batch of 12"):
        make_loaders(*_data(20, 10), batch_size=24, world_size=2)

def test_shares_are_disjoint_and_equal():
    X, y, Xv, yv = _data(21, 10)
    X = torch.arange(21.).view(21, 1, 1, 1)
    shares = []
    for r in range(2):
        dl, _ = make_loaders(X, y, Xv, yv, batch_size=4, world_size=2, rank=r, seed=1)
        dl.sampler.set_epoch(0)
        shares.append({int(v) for xb, _ in dl for v in xb.flatten()})
    assert shares[0].isdisjoint(shares[1]) and len(shares[0]) == len(shares[1]) == 10

def test_missing_output_folder_is_created(tmp_path):
    out = prepare_output_dir(tmp_path/"a"/"b")
    assert out.is_dir()

def test_output_path_that_is_a_file(tmp_path):
    f = tmp_path/"file"; f.write_text("x")
    with pytest.raises(ValueError, match="it is a file; pass --out a folder path"):
        prepare_output_dir(f)

def test_bad_command_line():
    for argv in (["--out", "x", "--epochs", "0"], ["--epochs", "1"], ["--out", "x", "--timeout", "-1"]):
        with pytest.raises(SystemExit):
            parse_args(argv)

def test_without_torchrun_is_a_world_of_one(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"): monkeypatch.delenv(k, raising=False)
    ctx = init_distributed(backend="gloo")
    assert (ctx.rank, ctx.world_size, ctx.backend, ctx.is_main) == (0, 1, None, True)
    assert not dist.is_initialized()

def test_nccl_rank_without_gpu():
    "A local rank at or past the number of GPUs (always true for local rank = device_count) is refused before joining."
    with pytest.raises(RuntimeError, match="has no GPU"):
        _device_for("nccl", torch.cuda.device_count())

def test_unreachable_rendezvous_fails_within_the_timeout():
    "Rank 1 of 2 with nobody listening at MASTER_ADDR:MASTER_PORT: a clear error after the timeout, no hang."
    env = dict(os.environ, RANK="1", WORLD_SIZE="2", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()))
    code = "from pytorch_playground.distributed import init_distributed; init_distributed(timeout_s=1, backend='gloo')"
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "could not join the process group" in r.stderr and "--timeout" in r.stderr

def test_importing_does_not_train():
    r = subprocess.run([sys.executable, "-c", "import pytorch_playground.distributed as d; print('imported')"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "imported"

# --- bad input everywhere (issue 18): one clear error, raised before anything is written ---
from pytorch_playground.distributed import DistributedSetupError, train_digits, main

def _run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "pytorch_playground.distributed", *map(str, args)],
                          capture_output=True, text=True, timeout=120, cwd=cwd)

def test_cli_nan_lr_is_one_line_exit_2_and_writes_nothing(tmp_path):
    out = tmp_path/"never"
    r = _run_cli("--lr", "nan", "--out", out)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "--lr: must be a positive finite number, got 'nan'" in lines[0]
    assert not out.exists()

def test_cli_out_is_a_file(tmp_path):
    f = tmp_path/"file.txt"; f.write_text("precious")
    r = _run_cli("--out", f)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "is a file" in r.stderr
    assert f.read_text() == "precious"

@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cli_nccl_without_gpu_is_one_line(tmp_path):
    r = _run_cli("--out", tmp_path/"o", "--backend", "nccl")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "use --backend gloo" in r.stderr
    assert not (tmp_path/"o").exists()

@pytest.mark.parametrize("argv, message", [
    (["--lr", "nan"], "--lr: must be a positive finite number, got 'nan'"),
    (["--lr", "inf"], "--lr: must be a positive finite number, got 'inf'"),
    (["--lr", "-0.1"], "--lr: must be a positive finite number"),
    (["--lr", "fast"], "--lr: must be a positive finite number, got 'fast'"),
    (["--epochs", "0"], "--epochs: must be a whole number of at least 1, got '0'"),
    (["--epochs", "1.5"], "--epochs: must be a whole number of at least 1, got '1.5'"),
    (["--batch-size", "-64"], "--batch-size: must be a whole number of at least 1"),
    (["--seed", "-1"], "--seed: must be a whole number of at least 0"),
    (["--timeout", "nan"], "--timeout: must be a positive finite number"),
    (["--backend", "mpi"], "--backend: invalid choice"),
])
def test_bad_arguments_are_one_line_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as e: parse_args(["--out", "x", *argv])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err

def test_missing_out_is_a_one_line_usage_error(capsys):
    with pytest.raises(SystemExit) as e: parse_args(["--epochs", "1"])
    assert e.value.code == 2 and "--out" in capsys.readouterr().err

def test_old_checkpoints_need_overwrite(tmp_path, capsys):
    (tmp_path/"last.pt").write_bytes(b"twenty epochs of work")
    with pytest.raises(SystemExit): parse_args(["--out", str(tmp_path)])
    assert "already holds last.pt" in capsys.readouterr().err
    assert parse_args(["--out", str(tmp_path), "--overwrite"]).overwrite
    with pytest.raises(ValueError, match="already holds last.pt.*--overwrite"): prepare_output_dir(tmp_path)
    assert prepare_output_dir(tmp_path, overwrite=True) == tmp_path
    assert (tmp_path/"last.pt").read_bytes() == b"twenty epochs of work"

@pytest.mark.filterwarnings("ignore:Unable to enable fault handler")  # @record, under pytest's captured stderr
def test_main_turns_setup_errors_into_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RANK", "zero"); monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["--out", str(tmp_path/"o"), "--backend", "gloo"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "RANK must be a whole number, got 'zero'" in err[0]
    assert not (tmp_path/"o").exists()

@pytest.mark.parametrize("rank, world", [("2", "2"), ("-1", "2"), ("0", "0")])
def test_environment_that_describes_no_job(rank, world, monkeypatch):
    monkeypatch.setenv("RANK", rank); monkeypatch.setenv("WORLD_SIZE", world)
    with pytest.raises(DistributedSetupError, match="describe no job"): init_distributed(backend="gloo")

@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf")])
def test_init_distributed_bad_timeout(timeout):
    with pytest.raises(ValueError, match="timeout_s must be a positive finite number"): init_distributed(timeout_s=timeout)

def test_init_distributed_bad_types():
    with pytest.raises(TypeError, match="timeout_s must be a number"): init_distributed(timeout_s="60")
    with pytest.raises(ValueError, match="backend must be"): init_distributed(backend="glue")

@pytest.mark.parametrize("kwargs, err, message", [
    (dict(world_size=2, rank=2), ValueError, "rank 2 does not exist in a world of 2"),
    (dict(rank=-1), ValueError, "rank must be at least 0"),
    (dict(world_size=0), ValueError, "world_size must be at least 1"),
    (dict(batch_size=0), ValueError, "batch_size must be at least 1"),
    (dict(batch_size=4.0), TypeError, "batch_size must be a whole number"),
    (dict(batch_size=True), TypeError, "batch_size must be a whole number"),
    (dict(valid_batch_size=0), ValueError, "valid_batch_size must be at least 1"),
    (dict(seed=-3), ValueError, "seed must be at least 0"),
])
def test_make_loaders_bad_numbers(kwargs, err, message):
    with pytest.raises(err, match=message): make_loaders(*_data(), **kwargs)

def test_make_loaders_bad_data():
    X, y, Xv, yv = _data()
    with pytest.raises(ValueError, match="20 training images but 19 labels"): make_loaders(X, y[:19], Xv, yv, batch_size=4)
    with pytest.raises(TypeError, match="must be tensors"): make_loaders(X.numpy(), y, Xv, yv, batch_size=4)
    with pytest.raises(TypeError, match="must be tensors"): make_loaders(X, y, Xv, list(yv), batch_size=4)

def test_prepare_output_dir_bad_type():
    with pytest.raises(TypeError, match="out must be a folder path"): prepare_output_dir(None)

@pytest.mark.parametrize("kwargs, err, message", [
    (dict(epochs=0), ValueError, "epochs must be at least 1"),
    (dict(epochs=2.5), TypeError, "epochs must be a whole number"),
    (dict(lr=float("nan")), ValueError, "lr must be a positive finite number, got nan"),
    (dict(lr=-1e-3), ValueError, "lr must be a positive finite number"),
    (dict(batch_size=0), ValueError, "batch_size must be at least 1"),
])
def test_train_digits_refuses_before_writing(kwargs, err, message, tmp_path):
    with pytest.raises(err, match=message): train_digits(out=tmp_path/"o", **kwargs)
    assert not (tmp_path/"o").exists()

def test_dist_context_is_checked():
    assert DistContext(rank=1, world_size=2).is_main is False
    with pytest.raises(ValueError, match="rank must be a whole number from 0 to world_size - 1 = 1, got 2"): DistContext(rank=2, world_size=2)
    with pytest.raises(ValueError, match="world_size must be at least 1"): DistContext(world_size=0)
    with pytest.raises(ValueError, match="local_rank must be at least 0"): DistContext(local_rank=-1)

def test_parse_args_wants_a_list():
    with pytest.raises(TypeError, match="argv must be a list of strings"): parse_args("--out x")
    with pytest.raises(TypeError, match="argv must be a list of strings"): parse_args(["--epochs", 2])

def test_train_digits_bad_device(tmp_path):
    with pytest.raises(ValueError, match="is not a device"): train_digits(out=tmp_path/"o", device="gpu0")
    assert not (tmp_path/"o").exists()

def test_overwrite_replaces_an_earlier_run_only_when_asked(tmp_path):
    "One short training, then a second one into the same folder: refused without overwrite, replaced with it."
    out = tmp_path/"ckpt"
    train_digits(epochs=1, out=out, device="cpu")
    before = (out/"last.pt").read_bytes()
    with pytest.raises(ValueError, match="already holds"): train_digits(epochs=1, out=out, device="cpu", lr=1e-2)
    assert (out/"last.pt").read_bytes() == before
    train_digits(epochs=1, out=out, device="cpu", lr=1e-2, overwrite=True)
    assert (out/"last.pt").read_bytes() != before

@pytest.mark.filterwarnings("ignore:Unable to enable fault handler")
def test_main_reports_a_batch_larger_than_the_data_in_one_line(tmp_path, monkeypatch, capsys):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"): monkeypatch.delenv(k, raising=False)
    assert main(["--out", str(tmp_path/"o"), "--batch-size", "5000", "--backend", "gloo"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fewer than one batch of 5000" in err[0] and "Traceback" not in err[0]
    assert not (tmp_path/"o").exists()

@pytest.mark.filterwarnings("ignore:Unable to enable fault handler")
def test_main_ctrl_c_is_one_line_and_status_130(tmp_path, monkeypatch, capsys):
    import pytorch_playground.distributed as d
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"): monkeypatch.delenv(k, raising=False)
    def interrupted(*a, **kw): raise KeyboardInterrupt
    monkeypatch.setattr(d, "train_digits", interrupted)
    assert d.main(["--out", str(tmp_path/"o"), "--backend", "gloo"]) == 130
    assert capsys.readouterr().err.strip().endswith("error: interrupted (Ctrl-C)")


def test_rank_zero_log_prints_text_entries(capsys):
    "EarlyStopping writes its reason (a string) into the history: the log line shows it instead of crashing."
    from types import SimpleNamespace
    from pytorch_playground.distributed import RankZeroLog
    h = {"epoch": 2, "train_loss": 0.5, "valid_loss": 0.25, "stopped": "EarlyStopping: no improvement"}
    RankZeroLog().after_epoch(SimpleNamespace(is_main=True, history=[h], epochs=10))
    out = capsys.readouterr().out
    assert "epoch 3/10" in out and "valid_loss 0.2500" in out and "stopped: EarlyStopping" in out

# --- issue 27: a half-configured launch, run_ranks, and the sweep -------------------------------------------
@pytest.mark.parametrize("there, missing", [("RANK", "WORLD_SIZE"), ("WORLD_SIZE", "RANK")])
def test_rank_without_world_size_is_an_error_naming_both(there, missing, monkeypatch):
    "RANK set without WORLD_SIZE (or the reverse) used to become a silent one-process run."
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"): monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv(there, "1")
    with pytest.raises(DistributedSetupError, match=f"{there} is set .* but {missing} is not.*RANK and WORLD_SIZE"):
        init_distributed(backend="gloo")
    assert not dist.is_initialized()

def test_local_rank_alone_is_an_error(monkeypatch):
    "LOCAL_RANK without RANK and WORLD_SIZE used to become a silent one-process run."
    for k in ("RANK", "WORLD_SIZE"): monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(DistributedSetupError, match="LOCAL_RANK is set .* but RANK and WORLD_SIZE are not"):
        init_distributed(backend="gloo")
    assert not dist.is_initialized()

def test_main_reports_a_half_configured_launch_in_one_line(tmp_path, monkeypatch, capsys):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"): monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("RANK", "0")
    assert main(["--out", str(tmp_path/"o"), "--backend", "gloo"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "RANK is set (RANK=0) but WORLD_SIZE is not" in err[0]
    assert not (tmp_path/"o").exists()

def test_run_ranks_returns_results_and_output(capsys):
    from pytorch_playground.distributed import run_ranks
    def total(ctx):
        t = torch.tensor([ctx.rank + 1.0]); dist.all_reduce(t); print("sum", t.item()); return t.item()
    assert run_ranks(total) == [3.0, 3.0]
    assert capsys.readouterr().out.splitlines() == ["[rank 0] sum 3.0", "[rank 1] sum 3.0"]

def test_run_ranks_turns_a_hang_into_a_timeout():
    from pytorch_playground.distributed import run_ranks
    import time
    def rank0_only(ctx):
        if ctx.rank == 0: dist.all_reduce(torch.ones(1))
        dist.barrier()
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match=r"rank\(s\) \[0, 1\] still running after 2 s.*collective that some ranks never call"):
        run_ranks(rank0_only, timeout_s=2, quiet=True)
    assert time.monotonic() - t0 < 20

def test_run_ranks_names_the_failing_rank():
    from pytorch_playground.distributed import run_ranks
    def fails(ctx):
        if ctx.rank == 1: raise ValueError("bad input on rank 1")
    with pytest.raises(RuntimeError, match="rank 1 failed: ValueError: bad input on rank 1"): run_ranks(fails, quiet=True)

@pytest.mark.parametrize("kwargs, err, message", [
    (dict(fn=3), TypeError, "fn must be a function"),
    (dict(fn=lambda ctx: 0, nprocs=0), ValueError, "nprocs must be at least 1"),
    (dict(fn=lambda ctx: 0, timeout_s=float("nan")), ValueError, "timeout_s must be a positive finite number"),
])
def test_run_ranks_bad_arguments(kwargs, err, message):
    from pytorch_playground.distributed import run_ranks
    with pytest.raises(err, match=message): run_ranks(**kwargs)

def test_run_ranks_refuses_inside_a_group(tmp_path):
    from pytorch_playground.distributed import run_ranks
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/store", rank=0, world_size=1)
    try:
        with pytest.raises(DistributedSetupError, match="destroy_process_group"): run_ranks(lambda ctx: 0)
    finally: dist.destroy_process_group()

def test_run_ranks_result_that_cannot_be_sent(capsys):
    from pytorch_playground.distributed import run_ranks
    with pytest.raises(RuntimeError, match="cannot be sent back"): run_ranks(lambda ctx: (lambda: 0), quiet=True)

def test_output_dir_expands_home_and_refuses_empty(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert prepare_output_dir("~/ckpt") == tmp_path/"ckpt" and (tmp_path/"ckpt").is_dir()
    with pytest.raises(ValueError, match="out is an empty path"): prepare_output_dir("")

def test_cli_out_empty_is_a_usage_error(capsys):
    with pytest.raises(SystemExit): parse_args(["--out", ""])
    assert "an empty path" in capsys.readouterr().err
