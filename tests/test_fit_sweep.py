"""A sweep over fit's arguments with the mistakes new users make: each is refused before training with an
error that names the mistake and the fix (or, where the intent is unambiguous, accepted)."""
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from pytorch_playground.training import accuracy, fit

g = torch.Generator().manual_seed(0)
X = torch.randn(64, 4, generator=g); y = torch.arange(64) % 3
TR = DataLoader(TensorDataset(X[:48], y[:48]), batch_size=8)
VA = DataLoader(TensorDataset(X[48:], y[48:]), batch_size=8)


def call(model=None, opt=None, train_dl=TR, valid_dl=VA, loss_fn=None, epochs=1, **kw):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    model = net if model is None else model
    opt = torch.optim.Adam(net.parameters()) if opt is None else opt
    return fit(model, train_dl, valid_dl, loss_fn or nn.CrossEntropyLoss(), opt, epochs,
               device=kw.pop("device", "cpu"), progress=False, **kw)


class CB:
    def after_epoch(self, s): self.seen = True


REFUSED = [
    (dict(model=lambda x: x), TypeError, "must be an nn.Module"),
    (dict(model=nn.Linear), TypeError, "pass an instance"),
    (dict(opt=torch.optim.Adam), TypeError, "optimiser instance"),
    (dict(opt=torch.optim.Adam(nn.Linear(2, 2).parameters())), ValueError, "build the optimiser on this model"),
    (dict(loss_fn=nn.CrossEntropyLoss), TypeError, "with the parentheses"),
    (dict(epochs=2.0), ValueError, "whole number"),
    (dict(epochs=-1), ValueError, "whole number"),
    (dict(epochs="3"), ValueError, "whole number"),
    (dict(epochs=True), ValueError, "whole number"),
    (dict(device="gpu"), ValueError, "is not a device"),
    (dict(scheduler=torch.optim.lr_scheduler.StepLR), TypeError, "pass an instance"),
    (dict(metrics={"acc": 0.5}), TypeError, "must map names"),
    (dict(metrics={"valid_loss": accuracy}), ValueError, "rename them"),
    (dict(metrics=accuracy), TypeError, "metrics={'accuracy': accuracy}"),
    (dict(monitor="val_loss"), ValueError, "choose one of"),
    (dict(monitor="accuracy"), ValueError, "choose one of"),
    (dict(mode="maximize"), ValueError, "mode must be"),
    (dict(callbacks=[CB]), TypeError, "pass an instance"),
    (dict(callbacks=3), TypeError, "callbacks=[cb]"),
    (dict(grad_accum_steps=0), ValueError, "whole number >= 1"),
    (dict(grad_accum_steps=1.5), ValueError, "whole number >= 1"),
    (dict(precision="fp32"), ValueError, "precision must be"),
    (dict(precision="fp16"), ValueError, "use precision='bf16'"),
    (dict(max_grad_norm=0), ValueError, "positive number"),
    (dict(max_grad_norm="1"), ValueError, "positive number"),
    (dict(checkpoint_dir=3), TypeError, "folder path"),
    (dict(checkpoint_dir=__file__), NotADirectoryError, "is a file"),
    (dict(resume=True), ValueError, "needs checkpoint_dir"),
    (dict(train_dl=[{"x": X[:8], "y": y[:8]}]), TypeError, "(inputs, targets) pair"),
    (dict(train_dl=DataLoader(TensorDataset(X[:48], y[:48, None]), batch_size=8)), ValueError, "y.squeeze(1)"),
    (dict(train_dl=None), ValueError, "is None"),
    (dict(valid_dl=DataLoader(TensorDataset(X[:0], y[:0]), batch_size=8)), ValueError, "is empty"),
    (dict(train_dl=X), TypeError, "DataLoader(TensorDataset(X, y)"),
]


@pytest.mark.parametrize("kw,exc,words", REFUSED, ids=[str(i) for i in range(len(REFUSED))])
def test_mistake_is_refused_with_the_fix(kw, exc, words):
    with pytest.raises(exc, match=None) as e: call(**kw)
    assert words in str(e.value), str(e.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_device_without_a_gpu():
    with pytest.raises(ValueError, match="no usable CUDA GPU"): call(device="cuda:3")


def test_resume_from_an_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="train once"): call(resume=True, checkpoint_dir=tmp_path)


def test_one_callback_not_in_a_list_is_accepted():
    cb = CB(); call(callbacks=cb); assert cb.seen


def test_callbacks_none_and_a_loss_function_are_accepted():
    assert len(call(callbacks=None, loss_fn=nn.functional.cross_entropy)) == 1
