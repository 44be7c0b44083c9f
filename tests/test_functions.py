"Robustness of pytorch_playground.functions on inputs other than the notebook's."
import pytest
import torch
import torch.nn.functional as F
from pytorch_playground.functions import MyReLU, Binarizer, binarize_ste, XNORSign, BinaryActivation

SHAPES = [(), (1,), (7,), (3, 4), (2, 3, 5, 5)]


def _pair(shape, dtype=torch.float32, scale=2.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = (torch.randn(shape, generator=g, dtype=dtype) * scale).requires_grad_(True)
    return a, a.detach().clone().requires_grad_(True)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_myrelu_matches_torch_relu(shape, dtype):
    a, b = _pair(shape, dtype)
    ya, yb = MyReLU.apply(a), torch.relu(b)
    assert ya.dtype == dtype and ya.shape == a.shape
    assert torch.equal(ya.detach(), yb.detach())
    g = torch.randn(shape, dtype=dtype)
    ya.backward(g); yb.backward(g)
    assert torch.equal(a.grad, b.grad)


def test_myrelu_zero_and_edge_values():
    x = torch.tensor([0.0, -0.0, 1e-30, -1e-30, float("inf"), -float("inf")], requires_grad=True)
    ref = x.detach().clone().requires_grad_(True)
    MyReLU.apply(x).sum().backward(); torch.relu(ref).sum().backward()
    assert torch.equal(x.grad, ref.grad)
    assert x.grad.tolist() == [0.0, 0.0, 1.0, 0.0, 1.0, 0.0]


def test_myrelu_gradcheck_double():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 4, generator=g, dtype=torch.float64)
    x = (x + 0.1 * x.sign()).requires_grad_(True)
    assert torch.autograd.gradcheck(MyReLU.apply, (x,), eps=1e-6, atol=1e-4)
    assert torch.autograd.gradgradcheck(lambda t: MyReLU.apply(t) ** 2, (x,), eps=1e-6, atol=1e-4)


def test_myrelu_in_a_graph_and_no_grad():
    w = torch.randn(3, 3, requires_grad=True)
    x = torch.randn(4, 3)
    (MyReLU.apply(x @ w) ** 2).sum().backward()
    w2 = w.detach().clone().requires_grad_(True)
    (torch.relu(x @ w2) ** 2).sum().backward()
    torch.testing.assert_close(w.grad, w2.grad)
    with torch.no_grad():
        assert not MyReLU.apply(x @ w).requires_grad


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_binarizer_and_ste_agree(shape, dtype):
    a, b = _pair(shape, dtype, scale=1.0, seed=3)
    ya, yb = Binarizer.apply(a), binarize_ste(b)
    expected = (a.detach() > 0.5).to(dtype)
    assert ya.dtype == yb.dtype == dtype
    assert torch.equal(ya.detach(), expected) and torch.equal(yb.detach(), expected)
    g = torch.randn(shape, dtype=dtype)
    ya.backward(g); yb.backward(g)
    assert torch.equal(a.grad, g)
    torch.testing.assert_close(b.grad, g)


def test_binarizer_spec_float32_is_dot_float():
    x = torch.rand(100, requires_grad=True)
    assert torch.equal(Binarizer.apply(x).detach(), (x.detach() > 0.5).float())
    spec = x + ((x > 0.5).float() - x).detach()
    assert torch.equal(binarize_ste(x).detach(), spec.detach())


def test_binarizer_threshold_is_strict():
    x = torch.tensor([0.5, 0.5000001, 0.4999999, -1.0, 2.0])
    assert Binarizer.apply(x).tolist() == [0.0, 1.0, 0.0, 0.0, 1.0]
    assert binarize_ste(x).tolist() == [0.0, 1.0, 0.0, 0.0, 1.0]


def test_binarizers_on_integer_input_give_float32():
    x = torch.tensor([0, 1, 2, -3])
    assert Binarizer.apply(x).dtype == torch.float32
    assert binarize_ste(x).dtype == torch.float32
    assert binarize_ste(x).tolist() == [0.0, 1.0, 1.0, 0.0]


def test_ste_trains_through_the_step():
    torch.manual_seed(0)
    w = torch.zeros(4, requires_grad=True)
    (binarize_ste(w) * torch.tensor([1.0, -1.0, 2.0, 0.0])).sum().backward()
    assert w.grad.tolist() == [1.0, -1.0, 2.0, 0.0]


@pytest.mark.parametrize("fn", [MyReLU.apply, Binarizer.apply, binarize_ste, XNORSign.apply])
def test_non_tensor_input_is_a_clear_error(fn):
    with pytest.raises(TypeError, match="torch.as_tensor"):
        fn([0.1, 0.9])


@pytest.mark.parametrize("shape", SHAPES)
def test_xnor_sign(shape):
    a, b = _pair(shape, torch.float64, scale=1.5, seed=5)
    s = XNORSign.apply(a)
    assert torch.equal(s.detach(), torch.sign(a.detach()))
    g = torch.randn(shape, dtype=torch.float64)
    s.backward(g)
    F.hardtanh(b).backward(g)
    torch.testing.assert_close(a.grad, b.grad)
    assert a.grad.shape == a.shape
    torch.testing.assert_close(a.grad, torch.where(a.detach().abs() < 1, g, torch.zeros_like(g)))


def test_xnor_sign_boundaries():
    x = torch.tensor([-1.0, 1.0, -0.999, 0.999, 0.0, 5.0], requires_grad=True)
    XNORSign.apply(x).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0, 0.0]


def test_binary_activation_module():
    m = BinaryActivation()
    assert list(m.parameters()) == []
    x = torch.randn(2, 3, 4, requires_grad=True)
    y = m(x)
    assert set(y.detach().unique().tolist()) <= {-1.0, 0.0, 1.0}
    y.sum().backward()
    assert torch.equal(x.grad, (x.detach().abs() < 1).float())
    net = torch.nn.Sequential(torch.nn.Linear(3, 5), BinaryActivation(), torch.nn.Linear(5, 1))
    net(torch.randn(8, 3)).sum().backward()
    assert net[0].weight.grad is not None


@pytest.mark.parametrize("fn", [Binarizer.apply, binarize_ste])
def test_binarizers_refuse_uint8_images(fn):
    img = torch.tensor([[0, 1, 128, 255]], dtype=torch.uint8)
    with pytest.raises(TypeError, match=r"x.float\(\) / 255"):
        fn(img)
    assert fn(img.float() / 255).tolist() == [[0.0, 0.0, 1.0, 1.0]]


def test_binarizers_accept_bool_and_other_integers():
    assert Binarizer.apply(torch.tensor([True, False])).tolist() == [1.0, 0.0]
    assert Binarizer.apply(torch.tensor([0, 1], dtype=torch.int16)).dtype == torch.float32


@pytest.mark.parametrize("cls", [MyReLU, Binarizer, XNORSign])
def test_calling_a_function_without_apply_is_a_clear_error(cls):
    with pytest.raises(TypeError, match=rf"call {cls.__name__}\.apply\(x\)"):
        cls(torch.randn(3))
    with pytest.raises(TypeError, match="apply"):
        cls()
    # .apply is unaffected, with and without grad
    x = torch.randn(4, requires_grad=True)
    cls.apply(x).sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape


def test_binary_activation_refuses_non_tensors():
    with pytest.raises(TypeError, match="torch.as_tensor"):
        BinaryActivation()([0.5, -2.0])


# --- torch.func (issue 24): the setup_context-form Functions work under grad and vmap; MyReLU says why not
@pytest.mark.parametrize("fn,expected", [(Binarizer.apply, [1.0, 1.0, 1.0]), (XNORSign.apply, [1.0, 0.0, 0.0]),
                                         (BinaryActivation(), [1.0, 0.0, 0.0])])
def test_torch_func_grad_and_vmap(fn, expected):
    x = torch.tensor([0.2, 1.5, -3.0])
    g = torch.func.vmap(torch.func.grad(lambda t: fn(t)))(x)
    assert g.tolist() == expected
    xb = torch.randn(4, 5)
    torch.testing.assert_close(torch.func.vmap(fn)(xb), fn(xb))


def test_torch_func_grad_binarizer_matches_autograd():
    x = torch.rand(6, dtype=torch.float64, requires_grad=True)
    w = torch.arange(1.0, 7.0, dtype=torch.float64)
    (Binarizer.apply(x) * w).sum().backward()
    assert torch.equal(torch.func.grad(lambda t: (Binarizer.apply(t) * w).sum())(x.detach()), x.grad)


def test_myrelu_under_torch_func_names_setup_context():
    with pytest.raises(RuntimeError, match="setup_context"):
        torch.func.grad(lambda t: MyReLU.apply(t).sum())(torch.randn(3))


@pytest.mark.parametrize("fn", [Binarizer.apply, XNORSign.apply])
def test_setup_context_functions_check_input_under_torch_func(fn):
    with pytest.raises(TypeError, match="torch.as_tensor"):
        fn([0.2, 0.7])
    with pytest.raises(TypeError, match="torch.as_tensor"):
        fn(0.7)


# --- the two slips of a learner that Python reports badly: an extra argument to .apply, a layer called as a constructor
@pytest.mark.parametrize("call,fix", [
    (lambda x: Binarizer.apply(x, 0.3), "Binarizer.apply(x - t + 0.5)"),
    (lambda x: Binarizer.apply(x, threshold=0.3), "Binarizer.apply(x - t + 0.5)"),
    (lambda x: XNORSign.apply(x, 1.0), "XNORSign.apply(x - t)"),
    (lambda x: MyReLU.apply(x, 2), "pass x only"),
    (lambda x: Binarizer.apply(), "takes 1 argument, x"),
])
def test_apply_with_wrong_arguments_names_the_fix(call, fix):
    with pytest.raises(TypeError, match="takes 1 argument, x") as info:
        call(torch.rand(3))
    assert fix in str(info.value)


def test_apply_guard_keeps_keyword_input_and_compile():
    assert Binarizer.apply(x=torch.tensor([0.2, 0.9])).tolist() == [0.0, 1.0]
    f = torch.compile(lambda t: (Binarizer.apply(t) + XNORSign.apply(t) + MyReLU.apply(t)).sum(), backend="eager", fullgraph=True)
    x = torch.tensor([-2.0, 0.3, 0.7])
    assert f(x).item() == (Binarizer.apply(x) + XNORSign.apply(x) + MyReLU.apply(x)).sum().item()


@pytest.mark.parametrize("args,kwargs,match", [
    ((torch.randn(3),), {}, r"build the layer, then call it: BinaryActivation\(\)\(x\)"),
    ((0.5,), {}, r"takes no arguments \(it has no settings\): build it with BinaryActivation\(\)"),
    ((), {"threshold": 0.5}, "takes no arguments"),
])
def test_binary_activation_called_as_constructor_names_the_fix(args, kwargs, match):
    with pytest.raises(TypeError, match=match):
        BinaryActivation(*args, **kwargs)
    assert isinstance(BinaryActivation(), torch.nn.Module)
