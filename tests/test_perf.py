"""Bad input for pytorch_playground.perf: clear errors before anything is timed; the figures it reports."""
import os, sys
import pytest
import torch
from pytorch_playground.perf import (Timing, benchmark, compare, verdict, quiet_stderr, chance_apart, wait_and_compute,
                                     plot_repeats, plot_verdicts)

def test_benchmark_counts_its_calls():
    calls = []
    t = benchmark(lambda: calls.append(1), name="append", warmup=3, repeats=4)
    assert len(calls) == 7 and len(t.times) == 4 and t.name == "append"

def test_compare_interleaves_and_reports(capsys):
    order = []
    ta, tb, r = compare(lambda: order.append("a"), lambda: order.append("b"), names=("a", "b"), warmup=1, repeats=3)
    assert order == ["a", "b"] * 4
    assert r == pytest.approx(ta.median / tb.median)
    out = capsys.readouterr().out
    assert "speed-up ratio a / b" in out and "too few repeats for a verdict (3 and 3)" in out

def test_timing_figures():
    t = Timing("x", [1.0, 2.0, 3.0])
    assert (t.median, t.spread) == (2.0, 0.5)
    assert str(t) == "x: 2000.00 ms (median of 3, ±50%)"
    assert Timing("zero", [0.0]).spread == 0.0

def test_verdict():
    a = Timing("a", [2.0, 2.2, 2.1, 2.05, 2.15])
    assert verdict(a, Timing("b", [1.0, 1.9, 1.5, 1.6, 1.7])) == "every repeat of b was faster"
    assert verdict(a, Timing("b", [2.3, 3.0, 2.5, 2.6, 2.7])) == "every repeat of b was slower"
    assert "overlap" in verdict(a, Timing("b", [1.0, 2.0, 1.5, 1.6, 1.7]))   # touching ranges are not a win

def test_verdict_needs_five_repeats():
    "Three repeats each separate two equal versions by chance 10% of the time: no verdict below 1%."
    assert chance_apart(3, 3) == pytest.approx(0.1) and chance_apart(5, 5) == pytest.approx(2 / 252)
    v = verdict(Timing("a", [2.0, 2.1, 2.2]), Timing("b", [1.0, 1.1, 1.2]))
    assert v.startswith("too few repeats for a verdict (3 and 3)") and "10%" in v
    assert "faster" in verdict(Timing("a", [2.0] * 5), Timing("b", [1.0] * 5))

def test_lazy_work_is_refused():
    "A function returning a generator did no work when timed: refused, with the fix."
    with pytest.raises(TypeError, match="returned a generator.*consume it"): benchmark(lambda: (i for i in range(3)))
    with pytest.raises(TypeError, match="candidate returned a map"): compare(lambda: 0, lambda: map(str, [1]), verbose=False)

def test_wait_and_compute_splits_the_loop():
    import time
    dl = [(torch.zeros(2), torch.zeros(2))] * 3
    wait, compute = wait_and_compute(dl, lambda xb, yb: time.sleep(0.01), batches=3)
    assert compute >= 0.03 and wait < compute

def test_plots_draw_one_row_per_comparison():
    import matplotlib; matplotlib.use("Agg")
    r = {"x": (Timing("a", [2.0] * 5), Timing("b", [1.0] * 5)), "y": (Timing("c", [1.0] * 5), Timing("d", [1.1] * 5))}
    assert len(plot_repeats(r).get_yticks()) == 2 and len(plot_verdicts(r).get_yticks()) == 2

@pytest.mark.parametrize("times, message", [
    ([], "needs at least one time"),
    ([0.1, float("nan")], "finite number of seconds"),
    ([-0.1], "finite number of seconds"),
    ([float("inf")], "finite number of seconds"),
    (["0.1"], "finite number of seconds"),
])
def test_timing_refuses_bad_times(times, message):
    with pytest.raises(ValueError, match=message): Timing("t", times)

def test_timing_name_must_be_text():
    with pytest.raises(TypeError, match="name must be a string"): Timing(3, [0.1])

@pytest.mark.parametrize("kwargs, err, message", [
    (dict(fn=torch.ones(3)), TypeError, "wrap the work in a lambda"),
    (dict(fn=lambda x: x), TypeError, "fn needs arguments"),
    (dict(fn=lambda: 0, repeats=0), ValueError, "repeats must be at least 1, got 0"),
    (dict(fn=lambda: 0, repeats=2.5), TypeError, "repeats must be a whole number"),
    (dict(fn=lambda: 0, warmup=-1), ValueError, "warmup must be at least 0"),
    (dict(fn=lambda: 0, name=None), TypeError, "name must be a string"),
])
def test_benchmark_bad_arguments(kwargs, err, message):
    with pytest.raises(err, match=message): benchmark(**kwargs)

def test_benchmark_checks_before_calling():
    calls = []
    with pytest.raises(ValueError): benchmark(lambda: calls.append(1), warmup=5, repeats=0)
    assert calls == []

@pytest.mark.parametrize("args, kwargs, err, message", [
    ((lambda: 0, 5), {}, TypeError, "candidate must be a function"),
    ((lambda a: 0, lambda: 0), {}, TypeError, "baseline needs arguments"),
    ((lambda: 0, lambda: 0), dict(names=("one",)), ValueError, "names must be two labels"),
    ((lambda: 0, lambda: 0), dict(names="ab"), ValueError, "names must be two labels"),
    ((lambda: 0, lambda: 0), dict(repeats=0), ValueError, "repeats must be at least 1"),
])
def test_compare_bad_arguments(args, kwargs, err, message):
    with pytest.raises(err, match=message): compare(*args, **kwargs)

def test_builtins_without_signature_still_time():
    assert len(benchmark(dict, repeats=2).times) == 2

def test_quiet_stderr_silences_fd2_and_restores_it(capfd):
    with quiet_stderr(): os.write(2, b"C++ log line\n")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"

def test_quiet_stderr_restores_on_error(capfd):
    with pytest.raises(RuntimeError):
        with quiet_stderr(): raise RuntimeError("boom")
    os.write(2, b"visible\n")
    assert capfd.readouterr().err == "visible\n"

def test_verdict_wants_timings():
    with pytest.raises(TypeError, match="verdict compares two Timings"): verdict(0.1, Timing("b", [0.2]))
