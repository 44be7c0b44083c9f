"The course CNN keeps its layout (checkpoints of chapters 04-09 depend on its keys) and refuses bad input clearly."
import pytest
import torch
from pytorch_playground.models import CourseCNN

KEYS = ["features.0.weight", "features.0.bias", "features.3.weight", "features.3.bias",
        "classifier.1.weight", "classifier.1.bias", "classifier.3.weight", "classifier.3.bias"]


def test_state_dict_keys_and_shapes_are_stable():
    sd = CourseCNN().state_dict()
    assert list(sd) == KEYS
    assert [tuple(sd[k].shape) for k in KEYS] == [(12, 1, 5, 5), (12,), (20, 12, 5, 5), (20,),
                                                   (200, 980), (200,), (10, 200), (10,)]


@pytest.mark.parametrize("in_channels,n_classes,n_params", [(1, 10, 204_542), (3, 5, 204_137)])
def test_outputs_and_parameter_counts(in_channels, n_classes, n_params):
    model = CourseCNN(in_channels=in_channels, n_classes=n_classes)
    by_hand = (12 * in_channels * 25 + 12) + (20 * 12 * 25 + 20) + (200 * 980 + 200) + (n_classes * 200 + n_classes)
    assert sum(p.numel() for p in model.parameters()) == by_hand == n_params
    assert model(torch.rand(3, in_channels, 28, 28)).shape == (3, n_classes)


def test_forward_matches_the_layers_by_hand():
    torch.manual_seed(0)
    model, x = CourseCNN(), torch.rand(2, 1, 28, 28)
    f = model.features
    h = f[5](f[4](f[3](f[2](f[1](f[0](x))))))
    c = model.classifier
    assert torch.equal(model(x), c[3](c[2](c[1](c[0](h)))))


@pytest.mark.parametrize("shape,msg", [((1, 1, 32, 32), "980"), ((1, 28, 28), r"x\.unsqueeze\(0\)"),
                                       ((28, 28), "got shape"), ((2, 1, 28, 27), r"\(2, 1, 28, 27\)")])
def test_bad_input_shapes_name_the_fix(shape, msg):
    with pytest.raises(ValueError, match=msg):
        CourseCNN()(torch.rand(*shape))


@pytest.mark.parametrize("kw", [dict(n_classes=0), dict(n_classes=True), dict(in_channels=1.0), dict(in_channels=-3)])
def test_bad_counts_are_refused(kw):
    name = next(iter(kw))
    with pytest.raises(ValueError, match=f"{name} must be a whole number >= 1"):
        CourseCNN(**kw)
