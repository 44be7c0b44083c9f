"Robustness tests for pytorch_playground.data: bad inputs, image modes, loaders, and torchvision's FashionMNIST loading path."
import math, struct

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from pytorch_playground.data import (CSVImageDataset, ImageDataset, InMemoryLoader, PairedCropFlip, denormalize,
                                     digits_tensors, digits_to_imagefolder, load_rgb, mean_std, show_batch)


@pytest.fixture
def photos(tmp_path):
    "Five small images in the modes ImageDataset must accept: RGB, L, P, RGBA (PNG) and RGB (JPEG)."
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    d = tmp_path/"imgs"; d.mkdir()
    Image.fromarray(rgb).save(d/"a_rgb.png")
    Image.fromarray(rgb[..., 0]).save(d/"b_grey.png")
    Image.fromarray(rgb).quantize(16).save(d/"c_palette.png")
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)])).save(d/"d_rgba.png")
    Image.fromarray(rgb).save(d/"e_photo.jpg")
    return d


def test_image_dataset_modes_shape_range(photos):
    ds = ImageDataset(str(photos/"*"), 32)
    assert [p.name for p in ds.paths] == ["a_rgb.png", "b_grey.png", "c_palette.png", "d_rgba.png", "e_photo.jpg"]
    for i in range(len(ds)):
        x = ds[i]
        assert x.shape == (3, 32, 32) and x.dtype == torch.float32
        assert 0 <= x.min() and x.max() <= 1
    grey = ds[1]
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])  # L -> RGB repeats the channel


def test_image_dataset_transform_built_once_and_random(photos):
    ds = ImageDataset(str(photos/"*.png"), 16)
    tfm = ds.transform
    torch.manual_seed(0)
    patches = [ds[0] for _ in range(5)]
    assert ds.transform is tfm
    assert any(not torch.equal(patches[0], p) for p in patches[1:])  # on-the-fly augmentation


def test_image_dataset_full_size_patch_is_whole_image_up_to_flips(photos):
    ds = ImageDataset(str(photos/"a_rgb.png"), 40)  # the image is 50x40: the crop is only horizontal
    x = ds[0]
    assert x.shape == (3, 40, 40)
    full = transforms.ToTensor()(Image.open(photos/"a_rgb.png"))
    crops = [full[:, :, j:j + 40] for j in range(11)]
    variants = [c.flip(d) if d else c for c in crops for d in (None, -1, -2)] + [c.flip(-1).flip(-2) for c in crops]
    assert any(torch.equal(x, v) for v in variants)


def test_image_dataset_no_match_names_pattern(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no file matches the pattern '.*nothing/\*\.png'"):
        ImageDataset(str(tmp_path/"nothing/*.png"), 8)


def test_image_dataset_not_an_image_names_file(tmp_path):
    (tmp_path/"readme.txt").write_text("hello")
    ds = ImageDataset(str(tmp_path/"*.txt"), 8)  # found; the error comes when it is read
    with pytest.raises(ValueError, match=r"readme\.txt' is not an image"):
        ds[0]


def test_image_dataset_patch_too_large_names_sizes(photos):
    ds = ImageDataset(str(photos/"a_rgb.png"), 41)
    with pytest.raises(ValueError, match=r"patch_size 41 is larger than .*a_rgb\.png' \(50x40 pixels"):
        ds[0]


def test_image_dataset_bad_patch_size(photos):
    for bad in (0, -3, 2.5, "8"):
        with pytest.raises(ValueError, match="positive whole number"):
            ImageDataset(str(photos/"*"), bad)


def test_truncated_file_gets_clear_error(tmp_path):
    import io
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    (tmp_path/"cut.jpg").write_bytes(buf.getvalue()[:len(buf.getvalue()) // 2])
    with pytest.raises(ValueError, match=r"cut\.jpg' is a broken image file"):
        load_rgb(tmp_path/"cut.jpg")
    with pytest.raises(FileNotFoundError):
        load_rgb(tmp_path/"missing.png")


def test_image_dataset_in_dataloader(photos):
    xb = next(iter(DataLoader(ImageDataset(str(photos/"*"), 24), batch_size=5)))
    assert xb.shape == (5, 3, 24, 24)


def test_digits_imagefolder_roundtrip(tmp_path):
    root = digits_to_imagefolder(tmp_path/"digits", size=8)
    X_train, y_train, X_valid, y_valid = digits_tensors(size=8)
    train = datasets.ImageFolder(root/"train", transform=transforms.Compose([transforms.Grayscale(), transforms.ToTensor()]))
    valid = datasets.ImageFolder(root/"valid")
    assert train.classes == [str(c) for c in range(10)]
    assert train.class_to_idx == {str(c): c for c in range(10)}
    assert (len(train), len(valid)) == (len(X_train), len(X_valid))
    assert sorted(train.targets) == sorted(y_train.tolist())
    x, label = train[0]
    first = X_train[(y_train == label).nonzero()[0, 0]]
    assert torch.allclose(x, first, atol=0.5 / 255 + 1e-6)


def test_csv_dataset_from_csv_and_dataframe(tmp_path):
    d = tmp_path/"imgs"; (d/"cats").mkdir(parents=True); (d/"dogs").mkdir()
    Image.fromarray(np.zeros((6, 6), np.uint8)).save(d/"cats/c.png")
    Image.fromarray(np.full((6, 6, 3), 255, np.uint8)).save(d/"dogs/d.png")
    pd.DataFrame({"path": ["dogs/d.png", "cats/c.png"], "class": ["dog", "cat"]}).to_csv(d/"index.csv", index=False)
    ds = CSVImageDataset(d/"index.csv", transform=transforms.ToTensor())
    assert ds.classes == ["cat", "dog"] and ds.class_to_idx == {"cat": 0, "dog": 1}
    x, y = ds[0]
    assert y == 1 and x.shape == (3, 6, 6) and x.min() == 1.0  # the white dog, converted to RGB
    img, y = CSVImageDataset(pd.DataFrame({"file": [str(d/"cats/c.png")], "label": [3]}), path_col="file", label_col="label")[0]
    assert img.mode == "RGB" and y == 0
    with pytest.raises(KeyError, match="pass path_col="):
        CSVImageDataset(pd.DataFrame({"file": ["x.png"], "class": ["a"]}))


def _write_idx(path, t: torch.Tensor):
    "IDX: big-endian magic 0x08 (unsigned byte) + number of dimensions, the sizes, then the raw bytes."
    path.write_bytes(struct.pack(">I", 0x0800 + t.dim()) + struct.pack(f">{t.dim()}I", *t.shape) + t.numpy().tobytes())


def test_fashion_mnist_reads_idx_files(tmp_path):
    raw = tmp_path/"FashionMNIST"/"raw"; raw.mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    imgs = {s: torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=g) for s, n in (("train", 12), ("t10k", 5))}
    labels = {s: torch.arange(len(imgs[s])) % 10 for s in imgs}
    for s in imgs:
        _write_idx(raw/f"{s}-images-idx3-ubyte", imgs[s])
        _write_idx(raw/f"{s}-labels-idx1-ubyte", labels[s].to(torch.uint8))
    train = datasets.FashionMNIST(root=tmp_path, train=True, download=False, transform=transforms.ToTensor())
    test = datasets.FashionMNIST(root=tmp_path, train=False, download=False)
    assert (len(train), len(test)) == (12, 5)
    assert torch.equal(train.data, imgs["train"]) and torch.equal(train.targets, labels["train"])
    x, y = train[3]
    assert x.shape == (1, 28, 28) and y == 3
    assert torch.allclose(x[0], imgs["train"][3].float() / 255)
    assert len(train.classes) == 10
    xb, yb = next(iter(DataLoader(train, batch_size=4)))
    assert xb.shape == (4, 1, 28, 28) and yb.tolist() == [0, 1, 2, 3]


def test_fashion_mnist_missing_files_without_download(tmp_path):
    with pytest.raises(RuntimeError, match="Dataset not found"):
        datasets.FashionMNIST(root=tmp_path, train=True, download=False)


def test_mean_std_tensor_and_dataset():
    X = torch.rand(20, 3, 6, 5)
    ref = X.mean(dim=(0, 2, 3)), X.std(dim=(0, 2, 3), correction=0)
    for got in (mean_std(X, batch_size=7), mean_std(torch.utils.data.TensorDataset(X, torch.zeros(20)), batch_size=6)):
        assert torch.allclose(got[0], ref[0], atol=1e-6) and torch.allclose(got[1], ref[1], atol=1e-6)
    with pytest.raises(ValueError, match="empty"):
        mean_std(torch.zeros(0, 3, 2, 2))


def test_normalize_formula_and_denormalize():
    x = torch.rand(3, 8, 8)
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    xn = transforms.Normalize(mean, std)(x)
    assert torch.allclose(xn, (x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None], atol=1e-6)
    assert torch.allclose(denormalize(xn, mean, std), x, atol=1e-6)
    assert torch.allclose(denormalize(xn[None], mean, std)[0], x, atol=1e-6)  # batches too


def test_paired_crop_flip_keeps_alignment():
    torch.manual_seed(0)
    img = torch.randint(0, 256, (1, 30, 40), dtype=torch.uint8)
    mask = (img > 100).to(torch.uint8)
    tfm = PairedCropFlip(16)
    outs = [tfm(img, mask) for _ in range(20)]
    for i, m in outs:
        assert i.shape == m.shape == (1, 16, 16)
        assert torch.equal((i > 100).to(torch.uint8), m)
    assert len({o[0].sum().item() for o in outs}) > 1  # random crops
    with pytest.raises(ValueError, match="same size"):
        tfm(img, mask[:, :20])
    with pytest.raises(ValueError, match="larger than the image"):
        PairedCropFlip(31)(img, mask)


@pytest.mark.parametrize("n,bs,drop_last", [(10, 3, False), (10, 3, True), (9, 3, False), (2, 64, False), (2, 64, True)])
def test_in_memory_loader_batches(n, bs, drop_last):
    X, y = torch.arange(n * 2.0).view(n, 2), torch.arange(n)
    dl = InMemoryLoader(X, y, batch_size=bs, shuffle=True, drop_last=drop_last)
    batches = list(dl)
    assert len(batches) == len(dl) == (n // bs if drop_last else math.ceil(n / bs))
    seen = torch.cat([b[1] for b in batches]) if batches else torch.tensor([], dtype=torch.long)
    assert len(seen) == (n // bs * bs if drop_last else n)
    assert len(set(seen.tolist())) == len(seen)  # no sample twice
    for xb, yb in batches: assert torch.equal(xb, X[yb])  # tensors stay paired


def test_in_memory_loader_matches_dataloader_and_reshuffles():
    X, y = torch.randn(100, 4), torch.arange(100)
    ours = [b for b in InMemoryLoader(X, y, batch_size=32)]
    theirs = list(DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=32))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(ours, theirs))
    dl = InMemoryLoader(y, batch_size=100, shuffle=True, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(next(iter(dl))[0], next(iter(dl))[0])
    with pytest.raises(ValueError, match="share their first dimension"):
        InMemoryLoader(X, y[:5])


def test_show_batch_labels_and_grid():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    x = torch.rand(10, 3, 12, 12)
    fig = show_batch(x, torch.arange(10) % 3, classes=["a", "b", "c"], nrow=4)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == [["a", "b", "c"][i % 3] for i in range(10)]
    assert ax.images[0].get_array().shape[:2] == (3 * (12 + 10 + 2) + 2, 4 * (12 + 2) + 2)
    plt.close(fig)
    fig = show_batch(torch.rand(3, 1, 8, 8))  # no labels: no text, no strip
    assert not fig.axes[0].texts
    plt.close(fig)
