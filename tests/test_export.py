"Robustness of pytorch_playground.export: its contract on models other than the chapter's, and its errors."
import numpy as np
import onnx
import pytest
import torch
from torch import nn

from pytorch_playground.export import (ExportError, ParityError, compare_latency, eval_mode, export_onnx,
                                       onnx_files, ort_feeds, ort_session, to_numpy, verify_onnx)


class BNDropPool(nn.Module):
    "Batch norm, dropout and both kinds of pooling: layers whose behaviour depends on train/eval mode."
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Dropout2d(0.2), nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.5), nn.Linear(16, 5))
    def forward(self, x): return self.head(self.features(x))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    "A BNDropPool with moved batch-norm statistics, left in train mode, exported once from a batch of 1."
    torch.manual_seed(0)
    model = BNDropPool()
    with torch.no_grad():
        for _ in range(3): model(torch.randn(16, 3, 16, 16) * 2 + 1)  # running statistics away from 0 and 1
    model.train()
    model.head[2].eval()  # a mixed-mode model: export must give every submodule its own mode back
    path = export_onnx(model, torch.randn(1, 3, 16, 16), tmp_path_factory.mktemp("onnx")/"bn.onnx",
                       input_name="images", output_name="scores")
    return model, path, ort_session(path)


def test_modes_restored_and_path_returned(exported):
    model, path, _ = exported
    assert path.name == "bn.onnx" and path.is_file()
    assert model.training and model.features[1].training and not model.head[2].training
    assert onnx_files(path) == [path]  # small model: one self-contained file


def test_graph_has_dynamic_batch_and_no_dropout(exported):
    _, path, session = exported
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, 16, 16]
    assert [o.name for o in session.get_outputs()] == ["scores"]
    assert not [n for n in proto.graph.node if n.op_type == "Dropout"]


def test_parity_at_several_batch_sizes(exported):
    model, _, session = exported
    torch.manual_seed(1)
    diff = verify_onnx(model, session, [torch.randn(n, 3, 16, 16) for n in (1, 2, 7, 32)])
    assert 0 <= diff < 1e-4
    assert model.training  # verify_onnx restores the mode too


def test_parity_error_names_largest_difference(exported):
    model, _, session = exported
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad(): model.head[3].bias.add_(1.0)
    try:
        with pytest.raises(ParityError, match=r"disagree on a batch of 4: largest difference 1(\.0+)?\b"):
            verify_onnx(model, session, x)
    finally:
        with torch.no_grad(): model.head[3].bias.sub_(1.0)
    assert verify_onnx(model, session, x) < 1e-4


def test_bad_feeds(exported):
    _, _, session = exported
    with pytest.raises(ValueError, match=r"expects shape \['N', 3, 16, 16\], got \[2, 16, 16\]"):
        ort_feeds(session, torch.randn(2, 16, 16))
    with pytest.raises(ValueError, match="expects shape"):
        ort_feeds(session, np.zeros((2, 3, 8, 8), np.float32))
    with pytest.raises(TypeError, match="expects float32"):
        ort_feeds(session, torch.randn(2, 3, 16, 16, dtype=torch.float64))
    assert ort_feeds(session, np.zeros((3, 3, 16, 16), np.float32))["images"].shape == (3, 3, 16, 16)


def test_bad_paths_and_arguments(tmp_path):
    model = nn.Linear(3, 2)
    with pytest.raises(FileNotFoundError, match="does not exist: create it first"):
        export_onnx(model, torch.randn(2, 3), tmp_path/"missing"/"m.onnx")
    with pytest.raises(TypeError, match="batch tensor"):
        export_onnx(model, [1.0, 2.0, 3.0], tmp_path/"m.onnx")
    with pytest.raises(TypeError, match="torch.nn.Module"):
        export_onnx(torch.relu, torch.randn(2, 3), tmp_path/"m.onnx")
    with pytest.raises(FileNotFoundError, match="export the model first"):
        ort_session(tmp_path/"nothing.onnx")
    with pytest.raises(FileNotFoundError, match="no ONNX file"):
        onnx_files(tmp_path/"nothing.onnx")


class Gate(nn.Module):
    def forward(self, x):
        if x.sum() > 0: return x * 2
        return x

class FixedBatch(nn.Module):
    def __init__(self): super().__init__(); self.lin = nn.Linear(12, 2)
    def forward(self, x): return self.lin(x.view(4, -1))


def test_export_errors_name_the_operation_and_fix(tmp_path):
    model = Gate().train()
    with pytest.raises(ExportError, match=r"at `if x\.sum\(\) > 0: return x \* 2`.*torch\.where"):
        export_onnx(model, torch.randn(2, 3), tmp_path/"gate.onnx")
    assert model.training  # restored after a failed export as well
    fixed = FixedBatch()
    with pytest.raises(ExportError, match=r"fixes the batch size.*x\.flatten\(1\)"):
        export_onnx(fixed, torch.randn(4, 3, 4), tmp_path/"fixed.onnx")
    # without the dynamic batch axis the same model exports, for that one batch size only
    path = export_onnx(fixed, torch.randn(4, 3, 4), tmp_path/"fixed.onnx", dynamic_batch=False)
    assert verify_onnx(fixed, path, torch.randn(4, 3, 4)) < 1e-4
    with pytest.raises(ValueError, match=r"expects shape \[4, 3, 4\], got \[5, 3, 4\]"):
        verify_onnx(fixed, path, torch.randn(5, 3, 4))


def test_unsupported_operator_is_named(tmp_path):
    @torch.library.custom_op("pp_test::twice", mutates_args=())
    def twice(x: torch.Tensor) -> torch.Tensor: return x * 2
    @twice.register_fake
    def _(x): return torch.empty_like(x)
    class UsesCustom(nn.Module):
        def forward(self, x): return torch.ops.pp_test.twice(x)
    with pytest.raises(ExportError, match=r"pp_test\.twice, which has no ONNX translation.*custom_translation_table"):
        export_onnx(UsesCustom(), torch.randn(2, 3), tmp_path/"custom.onnx")


def test_external_data_files_are_listed(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 4))
    path = export_onnx(model, torch.randn(2, 64), tmp_path/"ext.onnx", external_data=True)
    files = onnx_files(path)
    assert files[0] == path and all(f.is_file() for f in files)
    assert len(files) == 2 and files[1].parent == path.parent
    assert verify_onnx(model, path, torch.randn(5, 64)) < 1e-4


def test_helpers():
    t = torch.ones(2, 2, requires_grad=True) * 3
    a = to_numpy(t)
    assert isinstance(a, np.ndarray) and a.shape == (2, 2) and a[0, 0] == 3
    m = nn.Sequential(nn.Dropout(0.5), nn.BatchNorm1d(3)).train()
    m[1].eval()
    with eval_mode(m): assert not any(x.training for x in m.modules())
    assert m.training and m[0].training and not m[1].training


def test_compare_latency_shape(exported):
    model, _, session = exported
    rows = compare_latency(model, session, (3, 16, 16), batch_sizes=(1, 3), warmup=1, repeats=2, rounds=2)
    assert [r["batch_size"] for r in rows] == [1, 3]
    assert all(r["torch_ms"] > 0 and r["ort_ms"] > 0 and r["ort/torch"] > 0 for r in rows)
    assert model.training


# --- issue 18: no data loss, no silent wrong result, no raw internal error ---

def test_refuses_a_path_not_ending_in_onnx(tmp_path):
    precious = tmp_path/"precious.txt"
    precious.write_text("a week of notes")
    with pytest.raises(ValueError, match=r"does not end in \.onnx.*precious\.onnx"):
        export_onnx(nn.Linear(3, 2), torch.randn(2, 3), precious)
    assert precious.read_text() == "a week of notes"


def test_refuses_to_overwrite_a_file_that_is_not_onnx(tmp_path):
    fake = tmp_path/"model.onnx"
    fake.write_bytes(b"precious data, not a model")
    with pytest.raises(FileExistsError, match="exists and is not an ONNX model: export_onnx will not overwrite it"):
        export_onnx(nn.Linear(3, 2), torch.randn(2, 3), fake)
    assert fake.read_bytes() == b"precious data, not a model"
    with pytest.raises(IsADirectoryError, match="is a folder"):
        (tmp_path/"dir.onnx").mkdir(); export_onnx(nn.Linear(3, 2), torch.randn(2, 3), tmp_path/"dir.onnx")


def test_overwrites_an_older_export_and_leaves_no_temporary_files(tmp_path):
    torch.manual_seed(0)
    path = export_onnx(nn.Linear(3, 2), torch.randn(2, 3), tmp_path/"m.onnx")
    newer = nn.Linear(3, 2)
    assert export_onnx(newer, torch.randn(2, 3), path) == path
    assert verify_onnx(newer, path, torch.randn(4, 3)) < 1e-5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_failed_export_keeps_the_previous_file(tmp_path):
    torch.manual_seed(0)
    good = nn.Linear(3, 3)
    path = export_onnx(good, torch.randn(2, 3), tmp_path/"gate.onnx")
    before = path.read_bytes()
    with pytest.raises(ExportError):
        export_onnx(Gate(), torch.randn(2, 3), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gate.onnx"]


def test_example_is_run_before_export(tmp_path):
    cnn = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.LazyLinear(2))
    cnn(torch.randn(1, 1, 8, 8))
    with pytest.raises(TypeError, match=r"example_input is torch.int64 but Sequential's weights are torch.float32.*\.to\(torch.float32\)"):
        export_onnx(cnn, torch.randint(0, 255, (2, 1, 8, 8)), tmp_path/"int.onnx")
    with pytest.raises(ExportError, match=r"fails on the example input \[2, 3, 8, 8\] torch.float32 before any export"):
        export_onnx(cnn, torch.randn(2, 3, 8, 8), tmp_path/"wrong.onnx")
    with pytest.raises(ValueError, match="batch of 0 samples"):
        export_onnx(cnn, torch.randn(0, 1, 8, 8), tmp_path/"empty.onnx")
    assert not list(tmp_path.iterdir())  # nothing written


class MakesNaN(nn.Module):
    def __init__(self): super().__init__(); self.lin = nn.Linear(3, 2)
    def forward(self, x): return self.lin(x) * torch.where(x[:, :1] > 5, torch.nan, 1.0)


def test_verify_fails_on_nan_and_on_an_empty_batch(tmp_path):
    torch.manual_seed(0)
    model = MakesNaN()
    path = export_onnx(model, torch.randn(2, 3), tmp_path/"nan.onnx")
    assert verify_onnx(model, path, torch.randn(4, 3)) < 1e-5
    x = torch.randn(4, 3); x[2, 0] = 10.0  # one sample makes NaN on both sides
    with pytest.raises(ParityError, match=r"PyTorch's output on a batch of 4 holds 2 NaN"):
        verify_onnx(model, path, x)
    with pytest.raises(ValueError, match="holds no samples to compare"):
        verify_onnx(model, path, torch.randn(0, 3))
    with pytest.raises(ValueError, match="holds no samples"):
        verify_onnx(model, path, [torch.randn(2, 3), torch.randn(0, 3)])
    with pytest.raises(TypeError, match="each batch must be a torch.Tensor"):
        verify_onnx(model, path, [np.zeros((2, 3), np.float32)])
    with pytest.raises(ValueError, match="rtol and atol must be >= 0"):
        verify_onnx(model, path, torch.randn(2, 3), atol=-1)


def test_onnx_files_refuses_external_data_outside_the_folder(tmp_path):
    from onnx import helper, TensorProto
    w = helper.make_tensor("w", TensorProto.FLOAT, [1], [0.0])
    w.data_location = TensorProto.EXTERNAL
    w.ClearField("float_data")
    for k, v in (("location", "../../../../etc/passwd"), ("offset", "0"), ("length", "4")):
        e = w.external_data.add(); e.key, e.value = k, v
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])], [w])
    crafted = tmp_path/"crafted.onnx"
    crafted.write_bytes(helper.make_model(graph).SerializeToString())
    with pytest.raises(ValueError, match=r"refers to external data at '\.\./\.\./\.\./\.\./etc/passwd', outside the model's folder"):
        onnx_files(crafted)
    w.external_data[0].value = "/etc/passwd"
    crafted.write_bytes(helper.make_model(graph).SerializeToString())
    with pytest.raises(ValueError, match="outside the model's folder"):
        onnx_files(crafted)


def test_corrupt_onnx_names_the_file(tmp_path):
    bad = tmp_path/"broken.onnx"
    bad.write_bytes(b"\x08\x07this is not protobuf \xff\xff\xff")
    with pytest.raises(ValueError, match=r"broken\.onnx' is not a readable ONNX model"):
        onnx_files(bad)
    with pytest.raises(ValueError, match=r"ONNX Runtime cannot load '.*broken\.onnx'"):
        ort_session(bad)
    with pytest.raises(ValueError, match=r"cannot load '.*broken\.onnx'"):
        verify_onnx(nn.Linear(3, 2), bad, torch.randn(2, 3))


def test_session_providers_are_checked(exported):
    _, path, _ = exported
    with pytest.raises(ValueError, match=r"\['NoSuchExecutionProvider'\] are not available.*CPUExecutionProvider"):
        ort_session(path, providers=["NoSuchExecutionProvider"])
    assert ort_session(path, providers="CPUExecutionProvider").get_providers() == ["CPUExecutionProvider"]


def test_helpers_refuse_wrong_types(exported):
    model, _, session = exported
    with pytest.raises(TypeError, match="to_numpy needs a torch.Tensor, got list"):
        to_numpy([1, 2])
    with pytest.raises(TypeError, match="eval_mode needs a torch.nn.Module"):
        with eval_mode("model"): pass
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        verify_onnx(torch.relu, session, torch.randn(1, 3, 16, 16))


@pytest.mark.parametrize("kw, msg", [(dict(repeats=0), "repeats must be a whole number >= 1, got 0"),
                                     (dict(warmup=-1), "warmup must be a whole number >= 0"),
                                     (dict(rounds=1.5), "rounds must be a whole number >= 1, got 1.5"),
                                     (dict(batch_sizes=(1, 0)), r"batch_sizes\[1\] must be a whole number >= 1, got 0")])
def test_compare_latency_arguments(exported, kw, msg):
    model, _, session = exported
    with pytest.raises(ValueError, match=msg):
        compare_latency(model, session, (3, 16, 16), **kw)


def test_dynamic_shapes_argument():
    "Axis 0 free with Dim.DYNAMIC, or no dynamic shapes at all; torch before 2.9 refuses an example batch of one."
    from pytorch_playground.internals.export import _TRACE_FALLBACK, _dynamic_shapes
    assert _dynamic_shapes(torch.zeros(1, 3), dynamic_batch=False) is None
    assert _dynamic_shapes(torch.zeros(2, 3), dynamic_batch=True) == ({0: torch.export.Dim.DYNAMIC},)
    if _TRACE_FALLBACK:
        with pytest.raises(ValueError, match="at least 2 samples"): _dynamic_shapes(torch.zeros(1, 3), dynamic_batch=True)
    else:
        assert _dynamic_shapes(torch.zeros(1, 3), dynamic_batch=True) == ({0: torch.export.Dim.DYNAMIC},)


def _traces(proto_nodes):
    return [p for n in proto_nodes for p in n.metadata_props if p.key == "pkg.torch.onnx.stack_trace"]


def test_no_stack_traces_unless_asked(tmp_path):
    "The shipped file names no path of the exporting machine, so two checkouts export the same bytes."
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))
    (tmp_path/"a").mkdir(); (tmp_path/"a_much_longer_folder_name").mkdir()
    paths = [export_onnx(model, torch.randn(2, 3), tmp_path/d/"m.onnx") for d in ("a", "a_much_longer_folder_name")]
    assert not _traces(onnx.load(str(paths[0])).graph.node)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    kept = export_onnx(model, torch.randn(2, 3), tmp_path/"kept.onnx", stack_traces=True)
    assert _traces(onnx.load(str(kept)).graph.node)
    assert verify_onnx(model, paths[0], torch.randn(4, 3)) < 1e-5


def test_stack_traces_stripped_inside_subgraphs(tmp_path):
    "An If node's branches are graphs of their own: their nodes lose their traces too, other metadata stays."
    from onnx import TensorProto, helper
    from pytorch_playground.internals.export import _strip_stack_traces
    def traced(node):
        node.metadata_props.add(key="pkg.torch.onnx.stack_trace", value='File "/home/alice/m.py", line 1')
        node.metadata_props.add(key="namespace", value="m")
        return node
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    branch = lambda v: helper.make_graph([traced(helper.make_node("Constant", [], ["y"], value=helper.make_tensor("c", TensorProto.FLOAT, [1], [v])))],
                                         f"b{v}", [], [out])
    node = traced(helper.make_node("If", ["cond"], ["y"], then_branch=branch(1.0), else_branch=branch(0.0)))
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("cond", TensorProto.BOOL, [])], [out])
    path = tmp_path/"if.onnx"
    onnx.save(helper.make_model(graph), str(path))
    _strip_stack_traces(path)
    m = onnx.load(str(path))
    nodes = [m.graph.node[0], m.graph.node[0].attribute[0].g.node[0], m.graph.node[0].attribute[1].g.node[0]]
    assert not _traces(nodes)
    assert [p.key for n in nodes for p in n.metadata_props] == ["namespace"] * 3
    onnx.checker.check_model(m)


# --- issue 27: export cases ---

def test_tilde_in_path_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    model = nn.Sequential(nn.Linear(3, 2))
    path = export_onnx(model, torch.randn(2, 3), "~/m.onnx")
    assert path == tmp_path/"m.onnx" and path.is_file()
    assert not (tmp_path/"~").exists()


def test_opset_below_18_is_refused_naming_the_written_opset(tmp_path):
    model = nn.Sequential(nn.Linear(3, 2))
    with pytest.raises(ValueError, match=r"opset_version=11 was asked for, but the exporter wrote opset \d+"):
        export_onnx(model, torch.randn(2, 3), tmp_path/"m.onnx", opset_version=11)
    assert not (tmp_path/"m.onnx").exists()


def test_keyword_typo_is_named(tmp_path):
    model = nn.Sequential(nn.Linear(3, 2))
    with pytest.raises(TypeError, match=r"unknown keyword argument 'dynamic_batches': did you mean 'dynamic_batch'"):
        export_onnx(model, torch.randn(2, 3), tmp_path/"m.onnx", dynamic_batches=False)
    with pytest.raises(TypeError, match="sets 'dynamic_axes' itself"):
        export_onnx(model, torch.randn(2, 3), tmp_path/"m.onnx", dynamic_axes={"input": {0: "batch"}})


def test_example_without_batch_axis_is_named(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 26 * 26, 10))
    x = torch.randn(5, 1, 28, 28)
    with pytest.raises(ValueError, match=r"needs a batch axis, e\.g\. x\[:1\]"):
        export_onnx(model, x[0], tmp_path/"m.onnx")


def test_compare_latency_input_shape_not_a_tuple(exported):
    model, _, session = exported
    with pytest.raises(TypeError, match=r"input_shape must be a tuple of sizes such as \(1, 28, 28\), got 4"):
        compare_latency(model, session, 4)


def test_uint8_model_exports_and_verifies(tmp_path):
    "A model that converts raw pixels itself takes a uint8 example; an int example into a float model is named."
    class Pixels(nn.Module):
        def __init__(self): super().__init__(); self.lin = nn.Linear(4, 2)
        def forward(self, x): return self.lin(x.float() / 255)
    x = torch.randint(0, 256, (3, 4), dtype=torch.uint8)
    model = Pixels()
    path = export_onnx(model, x, tmp_path/"p.onnx")
    assert verify_onnx(model, path, x) < 1e-5
    with pytest.raises(TypeError, match="pass example_input.to"):
        export_onnx(nn.Linear(4, 2), x, tmp_path/"q.onnx")


def test_import_without_onnx_packages():
    "The module imports without onnx/onnxruntime/onnxscript; using them names the extra."
    import subprocess, sys
    code = ("import sys; sys.modules['onnx'] = None; sys.modules['onnxruntime'] = None; sys.modules['onnxscript'] = None\n"
            "import torch, pytorch_playground.export as e, pytorch_playground.tensorboard\n"
            "try: e.export_onnx(torch.nn.Linear(2, 2), torch.zeros(2, 2), 'm.onnx')\n"
            "except ImportError as err: print(err)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert 'pip install "pytorch-playground[export]"' in out.stdout


def test_http_request_validation():
    import json
    from pytorch_playground.internals.export import _parse_request
    assert _parse_request(json.dumps({"pixels": [[[0] * 28] * 28] * 2}).encode()).shape == (2, 1, 28, 28)
    for body, msg in ((b"not json", "not JSON"), (json.dumps({"pixels": [[1] * 28] * 27}).encode(), r"has shape \[27, 28\]"),
                      (json.dumps({"pixels": [[300] * 28] * 28}).encode(), "0 to 255"),
                      (json.dumps({"pixels": [[[0] * 28] * 28] * 300}).encode(), "a batch of 300 images")):
        with pytest.raises(ValueError, match=msg): _parse_request(body)
