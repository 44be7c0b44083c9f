"Issue 27 (EarlyStopping's mode) and the chapter 04 helpers in pytorch_playground.internals.training."
from types import SimpleNamespace
import pytest
import torch
from torch import nn
from pytorch_playground.training import EarlyStopping, fit, accuracy
from pytorch_playground.internals.training import infer_mode, _check_early_stopping, _monitored


def _feed(cb, values, key):
    "Run the callback over per-epoch values of `key`; return the number of epochs before it stopped."
    state = SimpleNamespace(history=[], stop_training=False)
    cb.before_fit(state)
    for epoch, v in enumerate(values):
        state.history.append({"epoch": epoch, key: v})
        cb.after_epoch(state)
        if state.stop_training: return epoch + 1
    return len(values)


def test_accuracy_is_maximised_by_default():
    cb = EarlyStopping(monitor="accuracy", patience=2)
    assert cb.mode == "max"
    # a rising accuracy must never stop the run (with mode="min" it stopped after 3 epochs)
    assert _feed(cb, [0.5, 0.6, 0.7, 0.8, 0.9, 0.95], "accuracy") == 6
    # a flat accuracy stops after `patience` epochs without improvement
    assert _feed(EarlyStopping(monitor="accuracy", patience=2), [0.9, 0.9, 0.89, 0.95], "accuracy") == 3


def test_losses_are_minimised_by_default():
    assert EarlyStopping().mode == "min"
    assert EarlyStopping(monitor="train_loss").mode == "min"
    assert _feed(EarlyStopping(patience=2), [1.0, 0.8, 0.9, 0.85, 0.7], "valid_loss") == 4


def test_unknown_metric_needs_a_mode():
    with pytest.raises(ValueError, match="mode="):
        EarlyStopping(monitor="brightness")
    assert EarlyStopping(monitor="brightness", mode="max").mode == "max"
    with pytest.raises(ValueError, match="mode must be"):
        EarlyStopping(mode="lowest")


@pytest.mark.parametrize("patience", [0, -1, 2.5, True, "3"])
def test_bad_patience(patience):
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=patience)


@pytest.mark.parametrize("min_delta", [-0.1, float("nan"), "0"])
def test_bad_min_delta(min_delta):
    with pytest.raises(ValueError, match="min_delta"):
        EarlyStopping(min_delta=min_delta)


def test_missing_monitor_is_named():
    with pytest.raises(ValueError, match="add the metric"):
        _monitored({"epoch": 0, "valid_loss": 1.0}, "accuracy")


def test_infer_mode_rule():
    assert infer_mode("valid_loss") == "min" and infer_mode("accuracy") == "max"
    assert infer_mode("valid_loss", "min") == "min"
    with pytest.raises(ValueError):
        infer_mode("score_of_some_kind")


def test_early_stopping_on_accuracy_inside_fit():
    "A run whose accuracy cannot change (lr=0) stops after patience epochs, and says why."
    torch.manual_seed(0)
    X, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    dl = [(X[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]
    m = nn.Linear(4, 3)
    h = fit(m, dl, dl, nn.CrossEntropyLoss(), torch.optim.SGD(m.parameters(), lr=0.0), 10, device="cpu",
            metrics={"accuracy": accuracy}, callbacks=[EarlyStopping(monitor="accuracy", patience=2)], progress=False)
    assert len(h) == 3 and "stopped" in h[-1] and "accuracy" in h[-1]["stopped"]
