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
