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
    with pytest.raises(ValueError, match="pass --out a folder path"):
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

def test_bad_timeout():
    with pytest.raises(ValueError, match="timeout_s must be positive"):
        init_distributed(timeout_s=0)

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
