"Fast checks of pytorch_playground.core (get_device, seed_everything, check_versions) and its internals."
import os, random

import numpy as np
import pytest
import torch

from pytorch_playground.core import get_device, seed_everything


@pytest.fixture
def restore_global_state():
    "Save torch's global determinism flags and the environment variables seed_everything sets; restore them after."
    saved = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
             torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    env = {k: os.environ.get(k) for k in ("PYTHONHASHSEED", "CUBLAS_WORKSPACE_CONFIG")}
    yield
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[0], saved[1]
    torch.use_deterministic_algorithms(saved[2], warn_only=saved[3])
    for k, v in env.items():
        if v is None: os.environ.pop(k, None)
        else: os.environ[k] = v


def _draws():
    return (random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist(), torch.randn(2, 2).tolist())


def test_get_device_matches_availability():
    d = get_device()
    assert isinstance(d, torch.device)
    if torch.cuda.is_available(): assert d.type == "cuda"
    elif torch.backends.mps.is_available(): assert d.type == "mps"
    else: assert d == torch.device("cpu")
    assert torch.zeros(1, device=d).device.type == d.type   # the device is usable


def test_get_device_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert get_device() == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert get_device() == torch.device("mps")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert get_device() == torch.device("cpu")


def test_seed_everything_reproduces_python_numpy_torch(restore_global_state):
    assert seed_everything(123) == 123
    first = _draws()
    seed_everything(123)
    assert _draws() == first
    seed_everything(124)
    assert _draws() != first
    assert os.environ["PYTHONHASHSEED"] == "124"


def test_seed_everything_seeds_each_generator(restore_global_state):
    seed_everything(5)
    got = _draws()
    random.seed(5); np.random.seed(5); torch.manual_seed(5)
    assert got == _draws()


def test_seed_everything_accepts_numpy_ints(restore_global_state):
    assert seed_everything(np.int64(9)) == 9
    assert isinstance(seed_everything(np.int32(9)), int)


def test_deterministic_flag(restore_global_state):
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = False, True
    seed_everything(0)   # deterministic=False changes none of the flags
    assert not torch.are_deterministic_algorithms_enabled()
    assert (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark) == (False, True)
    seed_everything(0, deterministic=True)
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.is_deterministic_algorithms_warn_only_enabled()
    assert (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark) == (True, False)
    assert os.environ.get("CUBLAS_WORKSPACE_CONFIG")


@pytest.mark.parametrize("bad, exc, msg", [
    (-1, ValueError, "out of range"), (2**32, ValueError, "out of range"),
    (1.5, TypeError, "must be an int"), ("42", TypeError, "must be an int"),
    (True, TypeError, "must be an int"), (None, TypeError, "must be an int")])
def test_seed_everything_rejects_bad_seeds(bad, exc, msg, restore_global_state):
    with pytest.raises(exc, match=msg): seed_everything(bad)


def test_check_versions_quiet_when_all_is_well(capsys):
    from pytorch_playground.core import check_versions
    assert check_versions() == []
    assert capsys.readouterr().out == ""            # chapters call it first: no noise when all is well
    check_versions(show=True)
    assert capsys.readouterr().out.startswith("versions: torch ")


def test_check_versions_names_old_and_missing_packages(monkeypatch, capsys):
    import pytorch_playground.core as core
    import pytorch_playground.internals.core as internals
    monkeypatch.setattr(internals, "_floors", lambda: {"torch": "99.0", "no-such-package-pp": "1.0"})
    problems = core.check_versions(show=True)
    assert len(problems) == 2
    assert "torch>=99.0" in problems[0] and "older than the course supports" in problems[0]
    assert "no-such-package-pp is not installed" in problems[1]
    assert capsys.readouterr().out.splitlines() == problems


def test_seed_everything_fixes_string_hashes_of_new_interpreters(restore_global_state):
    import subprocess, sys
    seed_everything(11)
    run = lambda: subprocess.run([sys.executable, "-c", "print(hash('abc'))"], capture_output=True, text=True).stdout
    assert run() == run() != ""


def test_public_names_stay_in_core():
    import pytorch_playground.core as core
    assert {"seed_everything", "get_device", "check_versions"} <= set(core.__all__)
