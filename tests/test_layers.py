"Robustness of pytorch_playground.layers on inputs other than the notebook's."
import pytest
import torch
import torch.nn as nn
from pytorch_playground.layers import (ConvWithBatchNorm, conv_output_size, count_parameters,
                                       BrokenLinearStack, LinearStack, init_weights)


@pytest.mark.parametrize("size,k,s,p", [(32, 3, 1, 1), (32, 5, 2, 2), (17, 4, 3, 0), (9, 9, 1, 0), (64, 7, 2, 3), (5, 1, 1, 0)])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_conv_with_batchnorm_shapes_match_formula(size, k, s, p, batch_norm):
    layer = ConvWithBatchNorm(3, 5, k, stride=s, padding=p, batch_norm=batch_norm)
    out = layer(torch.randn(2, 3, size, size))
    side = (size - k + 2 * p) // s + 1
    assert conv_output_size(size, k, s, p) == side
    assert out.shape == (2, 5, side, side)


def test_conv_with_batchnorm_defaults_and_structure():
    plain = ConvWithBatchNorm(2, 4, 3)
    assert isinstance(plain.conv, nn.Conv2d) and plain.bn is None
    assert plain.conv.stride == (1, 1) and plain.conv.padding == (0, 0)
    assert count_parameters(plain) == 2 * 4 * 9 + 4
    with_bn = ConvWithBatchNorm(2, 4, 3, batch_norm=True)
    assert isinstance(with_bn.bn, nn.BatchNorm2d) and with_bn.bn.num_features == 4
    assert count_parameters(with_bn) == 2 * 4 * 9 + 2 * 4
    # no activation: outputs can be negative
    assert (plain(torch.randn(1, 2, 8, 8)) < 0).any()
    assert not any(isinstance(m, (nn.ReLU, nn.LeakyReLU, nn.GELU, nn.SiLU)) for m in with_bn.modules())


def test_conv_with_batchnorm_keyword_and_positional_call():
    a = ConvWithBatchNorm(in_channels=1, out_channels=2, kernel_size=3, stride=2, padding=1, batch_norm=True)
    b = ConvWithBatchNorm(1, 2, 3, 2, 1, True)
    x = torch.randn(4, 1, 10, 10)
    assert a(x).shape == b(x).shape == (4, 2, 5, 5)


def test_conv_with_batchnorm_normalises_in_train_and_uses_running_stats_in_eval():
    torch.manual_seed(0)
    layer = ConvWithBatchNorm(1, 3, 3, padding=1, batch_norm=True)
    y = layer(torch.randn(16, 1, 12, 12) * 4 + 7).detach()
    torch.testing.assert_close(y.mean((0, 2, 3)), torch.zeros(3), atol=1e-4, rtol=0)
    layer.eval()
    one = layer(torch.randn(1, 1, 12, 12))
    assert one.shape == (1, 3, 12, 12)


def test_conv_with_batchnorm_equals_conv_then_bn():
    torch.manual_seed(0)
    layer = ConvWithBatchNorm(2, 3, 3, stride=1, padding=1, batch_norm=True)
    x = torch.randn(4, 2, 6, 6)
    ref = nn.BatchNorm2d(3)
    ref.load_state_dict(layer.bn.state_dict())
    torch.testing.assert_close(layer(x), ref(layer.conv(x)))


def test_conv_with_batchnorm_backward_and_rect_kernels():
    layer = ConvWithBatchNorm(3, 4, (3, 5), stride=(2, 1), padding=(1, 2), batch_norm=True)
    x = torch.randn(2, 3, 9, 9, requires_grad=True)
    out = layer(x)
    assert out.shape == (2, 4, 5, 9)
    out.sum().backward()
    assert x.grad.shape == x.shape and layer.conv.weight.grad is not None


def test_conv_with_batchnorm_errors_name_the_fix():
    with pytest.raises(ValueError, match="in_channels=3"):
        ConvWithBatchNorm(1, 4, 3)(torch.randn(2, 3, 8, 8))
    with pytest.raises(ValueError, match="positive int"):
        ConvWithBatchNorm(3, 0, 3)
    with pytest.raises(ValueError, match="does not fit"):
        conv_output_size(3, 5)


def test_conv_with_batchnorm_moves_with_the_model():
    layer = ConvWithBatchNorm(1, 2, 3, batch_norm=True).double()
    assert layer(torch.randn(2, 1, 5, 5, dtype=torch.float64)).dtype == torch.float64
    assert set(layer.state_dict()) == {"conv.weight", "bn.weight", "bn.bias", "bn.running_mean",
                                       "bn.running_var", "bn.num_batches_tracked"}


@pytest.mark.parametrize("n,f", [(5, 10), (1, 3), (7, 4)])
def test_linear_stacks(n, f):
    broken, fixed = BrokenLinearStack(n, f), LinearStack(n, f)
    x = torch.randn(2, f)
    assert broken(x).shape == fixed(x).shape == (2, f)
    assert count_parameters(broken) == 0 and len(broken.state_dict()) == 0
    assert count_parameters(fixed) == n * (f * f + f) and len(fixed.state_dict()) == 2 * n
    with pytest.raises(ValueError, match="empty parameter list"):
        torch.optim.SGD(broken.parameters(), lr=0.1)


def test_default_stack_is_five_linears():
    assert count_parameters(LinearStack()) == 550
    assert len(LinearStack().layers) == 5 and len(BrokenLinearStack().layers) == 5


def test_count_parameters_trainable_only():
    m = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    m[0].requires_grad_(False)
    assert count_parameters(m) == 16 + 10
    assert count_parameters(m, trainable_only=True) == 10


def test_init_weights_schemes():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 32, 3), nn.ReLU(), nn.Flatten(), nn.Linear(800, 400), nn.BatchNorm1d(400))
    assert init_weights(m, "uniform", a=-0.02, b=0.03) is m
    for layer in (m[0], m[3]):
        assert layer.weight.min() >= -0.02 and layer.weight.max() <= 0.03
        assert torch.equal(layer.bias.detach(), torch.zeros_like(layer.bias))
    assert torch.equal(m[4].weight.detach(), torch.ones(400))     # BatchNorm untouched
    init_weights(m, "kaiming")
    torch.testing.assert_close(m[3].weight.std().item(), (2 / 800) ** 0.5, rtol=0.03, atol=0)
    init_weights(m, "xavier")
    torch.testing.assert_close(m[3].weight.std().item(), (2 / 1200) ** 0.5, rtol=0.03, atol=0)


def test_init_weights_bad_arguments():
    with pytest.raises(ValueError, match="use one of"):
        init_weights(nn.Linear(2, 2), "orthogonal")
    with pytest.raises(ValueError, match="a < b"):
        init_weights(nn.Linear(2, 2), "uniform", a=0.5, b=0.5)


def test_init_weights_reaches_nested_and_biasless_layers():
    m = nn.Sequential(ConvWithBatchNorm(1, 4, 3, batch_norm=True), nn.Sequential(nn.Linear(4, 4, bias=False)))
    init_weights(m, "uniform", a=0.5, b=0.6)
    assert m[0].conv.weight.min() >= 0.5 and m[1][0].weight.min() >= 0.5


@pytest.mark.parametrize("kwargs,match", [
    (dict(kernel_size=0), "kernel_size must be an int >= 1"),
    (dict(kernel_size=-3), "kernel_size must be an int >= 1"),
    (dict(kernel_size=(3, 0)), "kernel_size must be an int >= 1"),
    (dict(kernel_size=2.0), "kernel_size must be an int >= 1"),
    (dict(kernel_size=3, stride=0), "stride must be an int >= 1"),
    (dict(kernel_size=3, stride=-1), "stride must be an int >= 1"),
    (dict(kernel_size=3, stride=(2, -1)), "stride must be an int >= 1"),
    (dict(kernel_size=3, padding=-1), "padding must be an int >= 0"),
    (dict(kernel_size=3, padding=(1, 2, 3)), "padding must be an int >= 0"),
])
def test_conv_with_batchnorm_bad_geometry_refused_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ConvWithBatchNorm(3, 8, **kwargs)


@pytest.mark.parametrize("flag", ["no", "False", 1, 0, None])
def test_conv_with_batchnorm_flag_must_be_bool(flag):
    with pytest.raises(TypeError, match="True or False"):
        ConvWithBatchNorm(3, 8, 3, batch_norm=flag)


def test_conv_with_batchnorm_accepts_pairs_and_zero_padding():
    layer = ConvWithBatchNorm(3, 8, (3, 1), stride=(1, 2), padding=(0, 0))
    assert layer(torch.randn(1, 3, 6, 6)).shape == (1, 8, 4, 3)


@pytest.mark.parametrize("args,match", [
    ((28, 3, 1, -1), "padding must be an int >= 0"),
    ((28, 3, 0, 0), "stride must be a positive int"),
    ((28, 3, -2, 0), "stride must be a positive int"),
    ((28, 0, 1, 0), "kernel_size must be a positive int"),
    ((0, 3, 1, 1), "size must be a positive int"),
    ((28.0, 3, 1, 0), "size must be a positive int"),
    ((28, 3, 1, 1.5), "padding must be an int >= 0"),
    ((28, 3, 1, (1, 1)), "padding must be an int >= 0"),
])
def test_conv_output_size_refuses_meaningless_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        conv_output_size(*args)


def test_conv_output_size_zero_padding_and_exact_fit():
    assert conv_output_size(5, 5) == 1
    assert conv_output_size(28, 2, 2) == 14


@pytest.mark.parametrize("bad", [nn.Linear, torch.zeros(3), "model", None])
def test_count_parameters_needs_a_module_instance(bad):
    with pytest.raises(TypeError, match="module instance"):
        count_parameters(bad)


@pytest.mark.parametrize("cls", [LinearStack, BrokenLinearStack])
@pytest.mark.parametrize("args", [(0, 10), (5, 0), (-1, 3), (2.5, 3), (True, 3)])
def test_stacks_refuse_bad_sizes(cls, args):
    with pytest.raises(ValueError, match="must be a positive int"):
        cls(*args)


@pytest.mark.parametrize("a,b", [(float("nan"), 0.1), (-0.1, float("inf")), ("0", 1), ([0], 1)])
def test_init_weights_bounds_must_be_finite_numbers(a, b):
    with pytest.raises(ValueError, match="finite number"):
        init_weights(nn.Linear(2, 2), "uniform", a=a, b=b)


def test_init_weights_needs_a_module_instance():
    with pytest.raises(TypeError, match="build it first"):
        init_weights(nn.Linear, "kaiming")
    with pytest.raises(TypeError, match="module instance"):
        init_weights(torch.zeros(2, 2))


# --- issue 27: init_weights skipped ConvTranspose layers silently
@pytest.mark.parametrize("cls,args", [(nn.ConvTranspose1d, (3, 4, 3)), (nn.ConvTranspose2d, (3, 4, 3)), (nn.ConvTranspose3d, (2, 3, 2))])
def test_init_weights_initialises_transposed_convolutions(cls, args):
    m = nn.Sequential(cls(*args), nn.ReLU())
    init_weights(m, "uniform", a=0.5, b=0.6)
    assert m[0].weight.min() >= 0.5 and m[0].weight.max() <= 0.6
    assert torch.equal(m[0].bias.detach(), torch.zeros_like(m[0].bias))


def test_init_weights_warns_naming_layers_it_leaves_alone():
    m = nn.Sequential(nn.Embedding(10, 4), nn.LSTM(4, 4), nn.Linear(4, 2), nn.LayerNorm(2), nn.BatchNorm1d(2))
    with pytest.warns(UserWarning, match="Embedding, LSTM") as rec:
        init_weights(m)
    assert not any("LayerNorm" in str(w.message) or "BatchNorm" in str(w.message) for w in rec)


def test_init_weights_is_quiet_when_everything_is_initialised():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        init_weights(nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 2), nn.LayerNorm(2)))


# --- sweep of user mistakes (issue 27, own round): each an error naming the cause and the fix
def test_init_weights_bounds_with_another_scheme_are_refused():
    with pytest.raises(ValueError, match="scheme='uniform'"):
        init_weights(nn.Linear(2, 2), a=-0.2, b=0.2)          # would silently be Kaiming


def test_init_weights_default_uniform_bounds_unchanged():
    torch.manual_seed(0)
    m = init_weights(nn.Linear(300, 300), "uniform")
    assert -0.1 <= m.weight.min() < -0.099 and 0.099 < m.weight.max() <= 0.1


def test_init_weights_function_as_scheme_points_to_apply():
    with pytest.raises(ValueError, match=r"model.apply\(fn\)"):
        init_weights(nn.Linear(2, 2), nn.init.xavier_uniform_)


@pytest.mark.parametrize("fn", [count_parameters, init_weights])
def test_parameters_instead_of_model_names_the_fix(fn):
    with pytest.raises(TypeError, match=r"not model.parameters\(\)"):
        fn(nn.Linear(2, 2).parameters())


def test_channels_last_input_names_permute():
    with pytest.raises(ValueError, match=r"x.permute\(0, 3, 1, 2\)"):
        ConvWithBatchNorm(3, 8, 3)(torch.randn(2, 32, 32, 3))


def test_batch_without_channel_axis_names_unsqueeze():
    with pytest.raises(ValueError, match=r"x.unsqueeze\(1\)"):
        ConvWithBatchNorm(1, 8, 3)(torch.randn(16, 28, 28))
    with pytest.raises(ValueError, match=r"x.unsqueeze\(0\)"):
        ConvWithBatchNorm(1, 8, 3)(torch.randn(28, 28))


@pytest.mark.parametrize("dtype,match", [(torch.uint8, r"x.float\(\) / 255"), (torch.int64, r"x.float\(\)"),
                                         (torch.float64, r"x.to\(torch.float32\)")])
def test_wrong_input_dtype_names_the_conversion(dtype, match):
    with pytest.raises(TypeError, match=match):
        ConvWithBatchNorm(3, 8, 3)(torch.zeros(2, 3, 8, 8, dtype=dtype))


def test_double_model_takes_double_input():
    assert ConvWithBatchNorm(3, 8, 3).double()(torch.zeros(2, 3, 8, 8, dtype=torch.float64)).dtype == torch.float64


def test_batch_of_one_under_batch_norm_names_eval_and_drop_last():
    layer = ConvWithBatchNorm(3, 4, 3, batch_norm=True)
    with pytest.raises(ValueError, match="drop_last=True"):
        layer(torch.randn(1, 3, 3, 3))                       # one value per channel
    assert layer.eval()(torch.randn(1, 3, 3, 3)).shape == (1, 4, 1, 1)


def test_unbatched_image_with_batch_norm():
    layer = ConvWithBatchNorm(3, 4, 3, batch_norm=True)
    out = layer(torch.randn(3, 8, 8))
    assert out.shape == (4, 6, 6)
    torch.testing.assert_close(out.mean((1, 2)), torch.zeros(4), atol=1e-5, rtol=0)


def test_padding_same_names_the_number():
    with pytest.raises(ValueError, match="padding=2"):
        ConvWithBatchNorm(3, 8, 5, padding="same")
    with pytest.raises(ValueError, match="padding=1"):
        conv_output_size(28, 3, 1, "same")


def test_conv_output_size_pair_says_once_per_side():
    with pytest.raises(ValueError, match="once per side"):
        conv_output_size(28, (3, 3))


def test_non_tensor_input_to_the_block():
    with pytest.raises(TypeError, match="torch.as_tensor"):
        ConvWithBatchNorm(1, 2, 3)([[0.0] * 5] * 5)
