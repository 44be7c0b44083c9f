"""Fast checks of pytorch_playground.transfer: freeze / unfreeze / replace_head on several torchvision
architectures (built with weights=None, never downloaded) and the offline weights loader."""
import urllib.request
import pytest
import torch
from torch import nn
from torchvision import models
from pytorch_playground.transfer import (Head, SmallConvNet, WeightsNotFound, freeze, load_pretrained,
                                         param_summary, replace_head, unfreeze, weights_file)

# architecture -> in_features of the Linear layer that replace_head replaces
ARCHS = {"resnet18": 512, "mobilenet_v3_small": 1024, "efficientnet_b0": 1280, "vgg11": 4096}

@pytest.fixture(scope="module", params=list(ARCHS))
def arch(request): return request.param

def _n(params): return sum(p.numel() for p in params)

def test_freeze_then_replace_head_trains_only_the_head(arch):
    model = models.get_model(arch, weights=None)
    assert freeze(model) is model
    assert not any(p.requires_grad for p in model.parameters())
    out = replace_head(model, 3, hidden=16)
    assert out is model
    heads = [m for m in model.modules() if isinstance(m, Head)]
    assert len(heads) == 1
    head = heads[0]
    assert [type(m) for m in head] == [nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]
    assert (head[0].in_features, head[0].out_features, head[3].out_features) == (ARCHS[arch], 16, 3)
    assert head[2].p == 0.2
    s = param_summary(model)
    assert s.loc["total", "trainable"] == _n(head.parameters()) == ARCHS[arch] * 16 + 16 + 16 * 3 + 3
    assert s.loc["total", "trainable"] + s.loc["total", "frozen"] == _n(model.parameters())
    model.eval()
    with torch.no_grad(): assert model(torch.rand(1, 3, 32, 32)).shape == (1, 3)

def test_replace_head_keeps_the_rest_trainable_when_not_frozen():
    model = models.resnet18(weights=None)
    replace_head(model, 4)
    assert all(p.requires_grad for p in model.parameters())
    assert param_summary(model).loc["total", "frozen"] == 0

def test_replace_head_keeps_partial_freezing():
    model = unfreeze(freeze(models.mobilenet_v3_small(weights=None)), "features.12")
    replace_head(model, 2)
    assert all(p.requires_grad for p in model.features[12].parameters())
    assert not any(p.requires_grad for p in model.features[11].parameters())
    assert not model.classifier[0].weight.requires_grad  # the classifier's earlier Linear keeps its state

def test_replace_head_twice_replaces_instead_of_nesting():
    for model, in_f in ((models.resnet18(weights=None), 512), (models.mobilenet_v3_small(weights=None), 1024)):
        replace_head(replace_head(model, 5), 7, hidden=8)
        heads = [m for m in model.modules() if isinstance(m, Head)]
        assert len(heads) == 1 and heads[0][0].in_features == in_f and heads[0][3].out_features == 7

def test_replace_head_linear_classifier_and_dtype():
    class Tiny(nn.Module):
        def __init__(self):
            super().__init__(); self.body = nn.Linear(4, 6); self.classifier = nn.Linear(6, 10)
        def forward(self, x): return self.classifier(self.body(x))
    m = replace_head(Tiny().double(), 3, hidden=5)
    assert isinstance(m.classifier, Head) and m.classifier[0].in_features == 6
    assert m.classifier[0].weight.dtype == torch.float64
    assert m(torch.rand(2, 4, dtype=torch.float64)).shape == (2, 3)

def test_replace_head_errors():
    with pytest.raises(TypeError, match=r"cannot find the classifier of Sequential.*Replace the head by hand"):
        replace_head(nn.Sequential(nn.Conv2d(1, 2, 3)), 3)
    with pytest.raises(ValueError, match="n_classes must be"): replace_head(models.resnet18(weights=None), 0)
    with pytest.raises(ValueError, match="n_classes must be"): replace_head(models.resnet18(weights=None), 3.0)
    with pytest.raises(ValueError, match="hidden must be"): replace_head(models.resnet18(weights=None), 2, hidden=0)
    with pytest.raises(ValueError, match="dropout must be"): replace_head(models.resnet18(weights=None), 2, dropout=1.0)

def test_unfreeze():
    m = freeze(models.resnet18(weights=None))
    unfreeze(m, "layer4", "fc")
    s = param_summary(m)
    assert s.loc["layer4", "frozen"] == 0 and s.loc["fc", "frozen"] == 0 and s.loc["layer3", "trainable"] == 0
    with pytest.raises(ValueError, match=r"no part named 'layer9'.*\['conv1', 'bn1'"):
        unfreeze(freeze(m), "layer1", "layer9")
    assert param_summary(m).loc["total", "trainable"] == 0  # nothing changed
    assert param_summary(unfreeze(m)).loc["total", "frozen"] == 0

def test_unfreeze_a_dotted_path():
    m = freeze(models.resnet18(weights=None))
    assert param_summary(unfreeze(m, "layer4.1")).loc["layer4", "trainable"] == _n(m.layer4[1].parameters())
    assert not any(p.requires_grad for p in m.layer4[0].parameters())

def test_small_conv_net():
    net = SmallConvNet(n_classes=5)
    assert net(torch.rand(2, 1, 16, 16)).shape == (2, 5)
    replace_head(freeze(net), 3)
    assert net.fc[0].in_features == 256 and param_summary(net).loc["layer2", "trainable"] == 0

@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path))
    def no_network(*a, **k): raise AssertionError("load_pretrained touched the network")
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    yield tmp_path
    torch.hub.set_dir(old)

def test_missing_weights_say_how_to_get_them(hub_dir):
    w = models.ResNet18_Weights.DEFAULT
    assert weights_file(w) == hub_dir/"checkpoints"/"resnet18-f37072fd.pth"
    with pytest.raises(WeightsNotFound) as e: load_pretrained("resnet18")
    msg = str(e.value)
    assert "not on this machine" in msg and w.url in msg and "download=True" in msg and "path=" in msg
    assert isinstance(e.value, FileNotFoundError)
    with pytest.raises(WeightsNotFound): load_pretrained("resnet18", path=hub_dir/"nope.pth", download=True)

def test_weights_found_in_hub_cache_and_at_a_path(hub_dir):
    sd = models.resnet18(weights=None).state_dict()
    (hub_dir/"checkpoints").mkdir()
    torch.save(sd, hub_dir/"checkpoints"/"resnet18-f37072fd.pth")
    m = load_pretrained("resnet18", models.ResNet18_Weights.IMAGENET1K_V1)
    assert torch.equal(m.conv1.weight, sd["conv1.weight"])
    torch.save(sd, hub_dir/"mine.pth")
    assert torch.equal(load_pretrained("resnet18", "DEFAULT", path=hub_dir/"mine.pth").fc.weight, sd["fc.weight"])

def test_bad_names_and_files(hub_dir):
    with pytest.raises(ValueError, match="no model named"): load_pretrained("resnet1800")
    with pytest.raises(ValueError, match="IMAGENET1K_V1"): load_pretrained("resnet18", "IMAGENET9K")
    (hub_dir/"junk.pth").write_bytes(b"junk")
    with pytest.raises(ValueError, match="cannot be read as a weight file"): load_pretrained("resnet18", path=hub_dir/"junk.pth")
    torch.save(models.mobilenet_v3_small(weights=None).state_dict(), hub_dir/"other.pth")
    with pytest.raises(ValueError, match="does not hold resnet18 weights"): load_pretrained("resnet18", path=hub_dir/"other.pth")


# --- issue 18: clear errors instead of silent wrong results ---

@pytest.mark.parametrize("aux", ["remove", "replace"])
def test_replace_head_handles_auxiliary_heads(aux):
    g = replace_head(models.googlenet(weights=None, aux_logits=True, init_weights=False), 4, hidden=16, aux=aux)
    i = replace_head(models.inception_v3(weights=None, aux_logits=True, init_weights=False), 4, hidden=16, aux=aux)
    if aux == "remove":
        assert g.aux1 is None and g.aux2 is None and i.AuxLogits is None and not g.aux_logits and not i.aux_logits
        out = g.train()(torch.rand(2, 3, 64, 64))
        assert isinstance(out, torch.Tensor) and out.shape == (2, 4)  # fit gets one tensor in training mode
    else:
        assert g.aux1.fc2.out_features == g.aux2.fc2.out_features == i.AuxLogits.fc.out_features == 4
        out = g.train()(torch.rand(2, 3, 64, 64))
        assert [o.shape for o in out] == [(2, 4)] * 3
    assert g.eval()(torch.rand(1, 3, 64, 64)).shape == (1, 4)

def test_replace_head_aux_argument_and_types():
    with pytest.raises(ValueError, match="aux must be 'remove' or 'replace', got 'keep'"):
        replace_head(models.resnet18(weights=None), 3, aux="keep")
    with pytest.raises(ValueError, match="n_classes must be a whole number >= 1, got True"):
        replace_head(models.resnet18(weights=None), True)
    with pytest.raises(TypeError, match="replace_head needs a torch.nn.Module, got str"):
        replace_head("resnet18", 3)
    with pytest.raises(ValueError, match="dropout must be a probability"):
        replace_head(models.resnet18(weights=None), 3, dropout=float("nan"))

def test_unfreeze_refuses_an_empty_name():
    m = freeze(models.resnet18(weights=None))
    for bad in ("", "  ", None):
        with pytest.raises(ValueError, match="names no part of ResNet"):
            unfreeze(m, bad)
    assert param_summary(m).loc["total", "trainable"] == 0  # nothing was unfrozen
    with pytest.raises(TypeError, match="unfreeze needs a torch.nn.Module"):
        unfreeze([m], "fc")

def test_wrong_types_are_named():
    with pytest.raises(TypeError, match="freeze needs a torch.nn.Module, got list"): freeze([nn.Linear(2, 2)])
    with pytest.raises(TypeError, match="param_summary needs a torch.nn.Module"): param_summary({"w": torch.zeros(2)})
    with pytest.raises(TypeError, match="weights_file needs a torchvision weights enum member"): weights_file("DEFAULT")

@pytest.mark.parametrize("kw, msg", [(dict(in_features=0, n_classes=3), "in_features must be a whole number >= 1, got 0"),
                                     (dict(in_features=8, n_classes=2.0), "n_classes must be a whole number >= 1, got 2.0"),
                                     (dict(in_features=8, n_classes=2, dropout=-0.1), "dropout must be a probability")])
def test_head_arguments(kw, msg):
    with pytest.raises(ValueError, match=msg): Head(**kw)

@pytest.mark.parametrize("kw, msg", [(dict(in_channels=0), "in_channels must be"), (dict(n_classes=-1), "n_classes must be"),
                                     (dict(width=1.5), "width must be a whole number >= 1, got 1.5")])
def test_small_conv_net_arguments(kw, msg):
    with pytest.raises(ValueError, match=msg): SmallConvNet(**kw)


# --- issue 27: no silent wrong result, errors that name the fix ---
import warnings
from pytorch_playground.internals.transfer import MissedParametersWarning

def _step(model, opt, x):
    opt.zero_grad(); model(x).sum().backward(); opt.step()

def test_optimiser_built_before_unfreeze_warns_and_the_fixes_silence_it():
    model = unfreeze(freeze(SmallConvNet(n_classes=5)), "fc")
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    unfreeze(model, "layer2")                                   # after the optimiser: it never trains layer2
    x = torch.rand(4, 1, 16, 16)
    with pytest.warns(MissedParametersWarning, match=r"unfreeze\('layer2'\).*add_param_group"): _step(model, opt, x)
    with warnings.catch_warnings(): warnings.simplefilter("error"); _step(model, opt, x)   # warned once, not every step
    opt.add_param_group({"params": model.layer2.parameters(), "lr": 1e-4})                  # fix 1: a group of their own
    with warnings.catch_warnings(): warnings.simplefilter("error"); _step(model, opt, x)
    before = model.layer2[0].weight.clone(); _step(model, opt, x)
    assert not torch.equal(model.layer2[0].weight, before)
    unfreeze(model, "layer1")
    opt2 = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)     # fix 2: rebuild it
    with warnings.catch_warnings(): warnings.simplefilter("error"); _step(model, opt2, x)

def test_optimiser_built_before_replace_head_warns():
    model = SmallConvNet(n_classes=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    replace_head(model, 5)
    with pytest.warns(MissedParametersWarning, match="replace_head"): _step(model, opt, torch.rand(2, 1, 16, 16))

def test_right_order_and_other_models_do_not_warn():
    model = unfreeze(replace_head(freeze(SmallConvNet(n_classes=10)), 5), "layer2")
    opt = torch.optim.Adam([{"params": model.layer2.parameters(), "lr": 1e-4}, {"params": model.fc.parameters()}], lr=1e-3)
    other = nn.Linear(3, 1); opt_other = torch.optim.SGD(other.parameters(), lr=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _step(model, opt, torch.rand(2, 1, 16, 16)); _step(other, opt_other, torch.rand(2, 3))

def test_whole_pickled_model_says_how_to_load_it(hub_dir):
    torch.save(models.resnet18(weights=None), hub_dir/"whole.pt")      # torch.save(model), not its state_dict
    with pytest.raises(ValueError) as e: load_pretrained("resnet18", path=hub_dir/"whole.pt")
    msg = str(e.value)
    assert "torchvision.models.resnet.ResNet" in msg and "weights_only=False" in msg and "state_dict()" in msg
    assert "delete" not in msg                                          # never tell a user to delete their own file
    (hub_dir/"cut.pth").write_bytes(b"PK\x03\x04 cut short")
    assert "delete" not in str(pytest.raises(ValueError, load_pretrained, "resnet18", path=hub_dir/"cut.pth").value)

def test_sweep_of_user_mistakes(hub_dir):
    sd = models.resnet18(weights=None).state_dict()
    torch.save({"epoch": 3, "model": sd, "opt": {}}, hub_dir/"ckpt.pt")
    with pytest.raises(ValueError, match=r"torch.save\(ckpt\['model'\]"): load_pretrained("resnet18", path=hub_dir/"ckpt.pt")
    torch.save({"module." + k: v for k, v in sd.items()}, hub_dir/"ddp.pt")
    with pytest.raises(ValueError, match="strip it"): load_pretrained("resnet18", path=hub_dir/"ddp.pt")
    torch.save(replace_head(models.resnet18(weights=None), 5).state_dict(), hub_dir/"ft5.pt")
    with pytest.raises(ValueError, match="another head"): load_pretrained("resnet18", path=hub_dir/"ft5.pt")
    torch.save(sd["fc.weight"], hub_dir/"tensor.pt")
    with pytest.raises(ValueError, match="holds a Tensor, not a state_dict"): load_pretrained("resnet18", path=hub_dir/"tensor.pt")
    with pytest.raises(WeightsNotFound, match="is a folder"): load_pretrained("resnet18", path=hub_dir)
    with pytest.raises(ValueError, match="weights=None"): load_pretrained("resnet18", None)
    with pytest.raises(ValueError, match="separate arguments"): unfreeze(models.resnet18(weights=None), ["layer4", "fc"])
    with pytest.raises(ValueError, match="name its module 'fc'"): unfreeze(models.resnet18(weights=None), "fc.weight")
    import numpy as np
    assert replace_head(models.resnet18(weights=None), np.int64(5)).fc[3].out_features == 5
    with pytest.raises(ValueError, match="dropout"): replace_head(models.resnet18(weights=None), 5, dropout="0.2")

def test_load_pretrained_expands_the_home_folder(hub_dir, monkeypatch):
    monkeypatch.setenv("HOME", str(hub_dir))
    torch.save(models.resnet18(weights=None).state_dict(), hub_dir/"w.pth")
    assert load_pretrained("resnet18", path="~/w.pth").fc.out_features == 1000
