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
    assert any(torch.allclose(x, v, atol=1e-6) for v in variants)  # v2 scales by multiplying with 1/255: last-bit rounding


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
    img, y = CSVImageDataset(pd.DataFrame({"file": [str(d/"cats/c.png")], "label": [3]}), path_col="file", label_col="label",
                             allow_outside_root=True)[0]
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


# ---- issue 18: every public entry point holds against the mistakes real users make ----

def test_sixteen_bit_png_is_scaled_not_white(tmp_path):
    a = (np.arange(40 * 50).reshape(40, 50) * 30 % 65536).astype(np.uint16)
    Image.fromarray(a).save(tmp_path/"deep.png")
    with Image.open(tmp_path/"deep.png") as im: assert im.mode.startswith("I")  # really 16-bit on disk
    rgb = np.asarray(load_rgb(tmp_path/"deep.png"))
    assert rgb.shape == (40, 50, 3) and (rgb[..., 0] == rgb[..., 2]).all()
    np.testing.assert_array_equal(rgb[..., 0], np.round(a / 257).astype(np.uint8))  # not clipped to 255
    x = ImageDataset(str(tmp_path/"deep.png"), 40)[0]
    assert 0.2 < x.mean() < 0.8  # PIL's own convert gives all white (1.0)


def test_float_image_refused(tmp_path):
    Image.fromarray(np.random.default_rng(0).random((8, 8)).astype(np.float32)).save(tmp_path/"f.tiff")
    with pytest.raises(ValueError, match=r"f\.tiff' is a floating-point image"):
        load_rgb(tmp_path/"f.tiff")


def test_load_rgb_folder_and_missing(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a folder, not an image"):
        load_rgb(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_rgb(tmp_path/"nope.png")


def test_decompression_bomb_is_an_error_naming_the_file(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((100, 100), np.uint8)).save(tmp_path/"bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 9_000)  # 10,000 pixels: over the limit, under twice it (PIL only warns)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no warning leaks out
        with pytest.raises(ValueError, match=r"bomb\.png' declares 100x100 = 10,000 pixels, more than PIL's limit of 9,000.*MAX_IMAGE_PIXELS"):
            load_rgb(tmp_path/"bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 4_000)  # over twice the limit: PIL raises, we name the file
    with pytest.raises(ValueError, match=r"bomb\.png' declares more than twice PIL's limit"):
        ImageDataset(str(tmp_path/"*.png"), 8)[0]


def test_decompression_bomb_real_header(tmp_path):
    "A small file that declares 9500x9500 pixels (the case reported): a clear error before any pixel is decoded."
    import zlib
    def chunk(kind, data): return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    row = b"\x00" + bytes(9500)
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 9500, 9500, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(row * 9500, 9)) + chunk(b"IEND", b""))
    (tmp_path/"big.png").write_bytes(png)
    assert len(png) < 200_000
    with pytest.raises(ValueError, match=r"big\.png' declares 9500x9500 = 90,250,000 pixels"):
        load_rgb(tmp_path/"big.png")


def test_image_dataset_symlink_loops_end_and_deduplicate(photos):
    import os
    (photos/"sub").mkdir()
    os.symlink(photos, photos/"sub"/"back")          # a loop: sub/back -> imgs
    os.symlink(photos/"sub", photos/"sub2")          # a second loop through another name
    os.symlink(photos/"a_rgb.png", photos/"sub"/"z_link.png")  # the same file under two names
    ds = ImageDataset(str(photos/"**/*.png"), 8)
    names = [str(p.relative_to(photos)) for p in ds.paths]
    assert names == ["a_rgb.png", "b_grey.png", "c_palette.png", "d_rgba.png"]  # each real file once, never a loop
    assert len({os.path.realpath(p) for p in ds.paths}) == len(ds.paths)


def test_image_dataset_follows_link_to_folder(tmp_path, photos):
    import os
    (tmp_path/"data").mkdir()
    os.symlink(photos, tmp_path/"data"/"linked")  # a data folder that is a link elsewhere still counts
    ds = ImageDataset(str(tmp_path/"data"/"**"/"*.jpg"), 8)
    assert [p.name for p in ds.paths] == ["e_photo.jpg"]


def test_image_dataset_glob_semantics(photos):
    (photos/".hidden.png").write_bytes((photos/"a_rgb.png").read_bytes())
    (photos/"deep"/"er").mkdir(parents=True)
    (photos/"deep"/"er"/"x.png").write_bytes((photos/"a_rgb.png").read_bytes())
    assert [p.name for p in ImageDataset(str(photos/"*.png"), 8).paths] == ["a_rgb.png", "b_grey.png", "c_palette.png", "d_rgba.png"]
    assert [str(p.relative_to(photos)) for p in ImageDataset(str(photos/"**"), 8).paths] == [
        "a_rgb.png", "b_grey.png", "c_palette.png", "d_rgba.png", "deep/er/x.png", "e_photo.jpg"]  # '**' alone: every file below
    assert len(ImageDataset(str(photos/"**/*.png"), 8)) == 5  # hidden files skipped, as glob does
    assert [p.name for p in ImageDataset(photos/"a_rgb.png", 8).paths] == ["a_rgb.png"]  # a plain path, as a Path
    assert len(ImageDataset(str(photos/"?_*.jpg"), 8)) == 1


def test_image_dataset_bad_arguments(photos):
    with pytest.raises(ValueError, match="patch_size must be a positive whole number, got True"):
        ImageDataset(str(photos/"*"), True)
    with pytest.raises(TypeError, match="glob_pattern must be a string"):
        ImageDataset(["a.png"], 8)
    with pytest.raises(FileNotFoundError, match="no file matches"):
        ImageDataset(str(photos), 8)  # a folder is not a file: point the pattern at files


def _csv_images(tmp_path, names=("a", "b", "c")):
    d = tmp_path/"imgs"; d.mkdir(exist_ok=True)
    for n in names: Image.fromarray(np.zeros((4, 4), np.uint8)).save(d/f"{n}.png")
    return d


def test_csv_classes_shared_between_train_and_valid(tmp_path):
    d = _csv_images(tmp_path)
    train = pd.DataFrame({"path": ["a.png", "b.png", "c.png"], "class": ["cat", "dog", "owl"]})
    valid = pd.DataFrame({"path": ["a.png", "c.png"], "class": ["cat", "owl"]})  # no dog in valid
    tr = CSVImageDataset(train, root=d)
    assert CSVImageDataset(valid, root=d).class_to_idx["owl"] == 1  # the trap: a different numbering...
    va = CSVImageDataset(valid, root=d, classes=tr.classes)            # ... unless the classes are shared
    assert va.classes == tr.classes and va.targets == [0, 2]
    with pytest.raises(ValueError, match=r"labels \['owl'\] are not in classes="):
        CSVImageDataset(valid, root=d, classes=["cat", "dog"])
    with pytest.raises(ValueError, match="lists a name twice"):
        CSVImageDataset(valid, root=d, classes=["cat", "owl", "cat"])


def test_csv_numeric_labels_sort_numerically(tmp_path):
    d = _csv_images(tmp_path)
    pd.DataFrame({"path": ["a.png", "b.png", "c.png"], "class": [10, 2, 1]}).to_csv(d/"t.csv", index=False)
    ds = CSVImageDataset(d/"t.csv")
    assert ds.classes == ["1", "2", "10"] and ds.targets == [2, 1, 0]
    ds = CSVImageDataset(pd.DataFrame({"path": ["a.png", "b.png"], "class": ["b10", "b2"]}), root=d)
    assert ds.classes == ["b10", "b2"]  # names that are not numbers: plain string order


def test_csv_empty_labels_refused(tmp_path):
    d = _csv_images(tmp_path)
    (d/"t.csv").write_text("path,class\na.png,cat\nb.png,\nc.png,dog\n")
    with pytest.raises(ValueError, match=r"1 rows have no label in column 'class' \(rows \[1\]"):
        CSVImageDataset(d/"t.csv")
    with pytest.raises(ValueError, match="have no label"):
        CSVImageDataset(pd.DataFrame({"path": ["a.png"], "class": ["  "]}), root=d)


def test_csv_paths_must_stay_under_root(tmp_path):
    d = _csv_images(tmp_path)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path/"outside.png")
    for p in ("../outside.png", str(tmp_path/"outside.png"), "sub/../../outside.png"):
        with pytest.raises(ValueError, match="leads outside the root folder"):
            CSVImageDataset(pd.DataFrame({"path": [p], "class": ["x"]}), root=d)
    ds = CSVImageDataset(pd.DataFrame({"path": ["../outside.png"], "class": ["x"]}), root=d, allow_outside_root=True)
    assert ds[0][0].size == (4, 4)
    (d/"sub").mkdir()
    assert len(CSVImageDataset(pd.DataFrame({"path": ["sub/../a.png"], "class": ["x"]}), root=d)) == 1  # '..' that stays inside


def test_csv_missing_files_and_bad_table(tmp_path):
    d = _csv_images(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"1 files listed in the table do not exist, e.g. '.*gone\.png'"):
        CSVImageDataset(pd.DataFrame({"path": ["a.png", "gone.png"], "class": ["x", "y"]}), root=d)
    with pytest.raises(TypeError, match="CSV file's path or a DataFrame"):
        CSVImageDataset([("a.png", "x")])


def test_csv_loader_scales_sixteen_bit(tmp_path):
    d = _csv_images(tmp_path)
    Image.fromarray(np.full((4, 4), 32896, np.uint16)).save(d/"deep.png")
    img, _ = CSVImageDataset(pd.DataFrame({"path": ["deep.png"], "class": ["x"]}), root=d)[0]
    assert np.asarray(img).max() == 128  # 32896 / 257, not 255


def test_mean_std_requires_channels_and_floats():
    with pytest.raises(ValueError, match=r"mean_std needs images \[N, C, H, W\], got a batch of shape \(10, 6, 5\).*unsqueeze\(1\)"):
        mean_std(torch.rand(10, 6, 5))
    with pytest.raises(ValueError, match="torch.uint8 images: convert them to floats"):
        mean_std(torch.zeros(4, 3, 2, 2, dtype=torch.uint8))
    bad = torch.rand(4, 1, 3, 3); bad[2, 0, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        mean_std(bad)
    with pytest.raises(ValueError, match="batch_size must be a positive whole number"):
        mean_std(torch.rand(4, 1, 3, 3), batch_size=0)
    got = mean_std(np.ones((3, 2, 4, 4), np.float32))  # a NumPy array works like a tensor
    assert got[0].tolist() == [1.0, 1.0] and got[1].tolist() == [0.0, 0.0]


def test_mean_std_dataset_of_pil_images_is_clear(photos):
    ds = datasets.ImageFolder(photos.parent)  # samples are (PIL image, label)
    with pytest.raises(TypeError, match="sample 0 is a .*Image.*not a tensor: give the dataset a transform"):
        mean_std(ds)
    ds = datasets.ImageFolder(photos.parent, transform=transforms.Compose([transforms.Resize((8, 8)), transforms.ToTensor()]))
    assert mean_std(ds)[0].shape == (3,)


@pytest.mark.parametrize("bad", [20, 0, 1, 1.5, -0.2, True, "0.2"])
def test_digits_valid_pct_must_be_fraction(bad):
    with pytest.raises(ValueError, match="valid_pct is the share of images kept for validation, a fraction strictly between 0 and 1"):
        digits_tensors(valid_pct=bad)


def test_digits_valid_pct_too_small_for_every_class():
    with pytest.raises(ValueError, match=r"valid_pct=0.001 keeps 2 of 1797 images.*between 0.006 and 0.994"):
        digits_tensors(valid_pct=0.001)
    X_train, y_train, X_valid, y_valid = digits_tensors(size=8, valid_pct=0.5)
    assert len(X_valid) == 899 and len(X_train) == 898


@pytest.mark.parametrize("size", [0, -4, 2.5, True, "28"])
def test_digits_size_must_be_positive_int(size):
    with pytest.raises(ValueError, match="size must be a positive whole number"):
        digits_tensors(size=size)


def test_digits_seed_checked_and_numpy_int_ok():
    with pytest.raises(ValueError, match="seed must be a whole number >= 0"):
        digits_tensors(seed=-1)
    assert digits_tensors(size=np.int64(8))[0].shape[-1] == 8


def test_digits_to_imagefolder_refuses_to_mix_with_existing_files(tmp_path):
    (tmp_path/"train"/"cats").mkdir(parents=True)
    (tmp_path/"train"/"cats"/"precious.png").write_bytes(b"x")
    with pytest.raises(FileExistsError, match=r"train' already exists and is not empty.*overwrite=True"):
        digits_to_imagefolder(tmp_path, size=8)
    assert (tmp_path/"train"/"cats"/"precious.png").exists()  # nothing touched
    with pytest.raises(ValueError, match="valid_pct"):
        digits_to_imagefolder(tmp_path/"new", size=8, valid_pct=20)
    assert not (tmp_path/"new").exists()  # arguments checked before anything is written
    digits_to_imagefolder(tmp_path, size=8, overwrite=True)
    assert sorted(p.name for p in (tmp_path/"train").iterdir()) == [str(c) for c in range(10)]


def test_in_memory_loader_numpy_and_lists():
    X, y = np.arange(20, dtype=np.float32).reshape(10, 2), list(range(10))
    batches = list(InMemoryLoader(X, y, batch_size=4))
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    assert torch.equal(batches[0][0], torch.from_numpy(X[:4])) and batches[2][1].tolist() == [8, 9]
    xb, = next(iter(InMemoryLoader([torch.zeros(2), torch.ones(2)], batch_size=2)))  # a list of tensors is stacked
    assert xb.shape == (2, 2)


@pytest.mark.parametrize("bad,err,msg", [
    (np.array([object(), object()]), TypeError, "NumPy array of Python objects"),
    ([[1, 2], [3]], TypeError, "not one block of numbers"),
    ("abc", TypeError, "InMemoryLoader takes tensors"),
    (torch.tensor(3.0), ValueError, "single number"),
])
def test_in_memory_loader_bad_inputs(bad, err, msg):
    with pytest.raises(err, match=msg):
        InMemoryLoader(bad)


def test_in_memory_loader_bad_arguments():
    X = torch.zeros(5, 2)
    for bs in (0, 2.5, True, "4"):
        with pytest.raises(ValueError, match="batch_size must be a positive whole number"):
            InMemoryLoader(X, batch_size=bs)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        InMemoryLoader(X, shuffle=True, generator=0)
    assert len(list(InMemoryLoader(X[:0], batch_size=2))) == 0  # an empty set is allowed: zero batches


def test_paired_crop_flip_bad_arguments():
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="size must be a positive whole number"):
            PairedCropFlip(bad)
    with pytest.raises(ValueError, match="hflip_p is a probability"):
        PairedCropFlip(8, hflip_p=1.5)


def test_denormalize_bad_arguments():
    x = torch.rand(2, 3, 4, 4)
    with pytest.raises(ValueError, match="2 means and 3 stds for 3 channels"):
        denormalize(x, [0.5, 0.5], [0.2, 0.2, 0.2])
    with pytest.raises(ValueError, match="needs float images"):
        denormalize((x * 255).to(torch.uint8), [0.5] * 3, [0.2] * 3)
    with pytest.raises(ValueError, match="needs float images"):
        denormalize(torch.rand(4, 4), [0.5], [0.2])
    assert torch.allclose(denormalize(x, 0.5, 0.5), x * 0.5 + 0.5)  # one value for every channel


def test_show_batch_bad_arguments():
    import matplotlib
    matplotlib.use("Agg")
    x = torch.rand(4, 3, 8, 8)
    with pytest.raises(ValueError, match="C = 1 or 3"):
        show_batch(torch.rand(4, 8, 8))
    with pytest.raises(ValueError, match="2 labels for 4 images"):
        show_batch(x, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"labels \[5\] have no name in classes"):
        show_batch(x, torch.tensor([0, 1, 5, 1]), classes=["a", "b"])
    with pytest.raises(ValueError, match="nrow must be a positive whole number"):
        show_batch(x, nrow=0)


# ---- issue 27: no silent wrong result, no raw crash (data module) ----

def test_digits_to_imagefolder_expands_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path/"home"))
    (tmp_path/"cwd").mkdir(); monkeypatch.chdir(tmp_path/"cwd")
    root = digits_to_imagefolder("~/digits", size=8)
    assert root == tmp_path/"home"/"digits" and (root/"train"/"0").is_dir()
    assert not (tmp_path/"cwd"/"~").exists()  # no folder literally named '~'


def test_mean_std_channels_last_refused():
    x = torch.rand(6, 28, 28, 3)  # [N, H, W, C], as NumPy and PIL store images
    with pytest.raises(ValueError, match=r"looks channels-last \[N, H, W, C\].*x\.permute\(0, 3, 1, 2\)"):
        mean_std(x)
    with pytest.raises(ValueError, match="looks channels-last"):
        mean_std(x.numpy())
    got = mean_std(x.permute(0, 3, 1, 2))  # the fix the message names
    assert torch.allclose(got[0], x.mean(dim=(0, 1, 2)), atol=1e-6)
    assert mean_std(torch.rand(4, 3, 5, 3))[0].shape == (3,)  # 3 channels of width 3: not mistaken for channels-last


def test_csv_labels_stripped_and_near_duplicates_warned(tmp_path):
    d = _csv_images(tmp_path, names=("a", "b", "c", "d"))
    ds = CSVImageDataset(pd.DataFrame({"path": ["a.png", "b.png", "c.png"], "class": ["cat", "cat ", " dog"]}), root=d)
    assert ds.classes == ["cat", "dog"] and ds.targets == [0, 0, 1]  # "cat " is "cat"
    with pytest.warns(UserWarning, match=r"labels \['Cat', 'cat'\] in column 'class' look like one class"):
        ds = CSVImageDataset(pd.DataFrame({"path": ["a.png", "b.png"], "class": ["Cat", "cat"]}), root=d)
    assert ds.classes == ["Cat", "cat"]  # a warning, not a guess: the table decides
    with pytest.warns(UserWarning, match=r"\['1', '1\.0'\]"):
        CSVImageDataset(pd.DataFrame({"path": ["a.png", "b.png"], "class": ["1", "1.0"]}), root=d)
    va = CSVImageDataset(pd.DataFrame({"path": ["a.png"], "class": ["dog"]}), root=d, classes=["cat ", "dog"])
    assert va.classes == ["cat", "dog"] and va.targets == [1]


def test_csv_symlink_out_of_root_refused(tmp_path):
    import os
    d = _csv_images(tmp_path)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path/"secret.png")
    os.symlink(tmp_path/"secret.png", d/"innocent.png")     # a link inside root to a file outside it
    (tmp_path/"elsewhere").mkdir(); os.symlink(tmp_path/"elsewhere", d/"linkdir")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path/"elsewhere"/"x.png")
    for p in ("innocent.png", "linkdir/x.png"):
        with pytest.raises(ValueError, match=r"leads outside the root folder .*through a link to"):
            CSVImageDataset(pd.DataFrame({"path": [p], "class": ["x"]}), root=d)
    assert len(CSVImageDataset(pd.DataFrame({"path": ["innocent.png"], "class": ["x"]}), root=d, allow_outside_root=True)) == 1
    os.symlink(d, tmp_path/"root_link")                       # root itself through a link: its files are inside
    assert len(CSVImageDataset(pd.DataFrame({"path": ["a.png"], "class": ["x"]}), root=tmp_path/"root_link")) == 1


def test_mean_std_generator_named():
    with pytest.raises(TypeError, match="got a generator: for a generator or a DataLoader, collect the images first"):
        mean_std(x for x in torch.rand(3, 1, 4, 4))
    with pytest.raises(TypeError, match="got a DataLoader"):
        mean_std(DataLoader(torch.rand(4, 1, 2, 2), batch_size=2))


# ---- sweep: user mistakes on every public function give an error naming cause and fix ----

def test_sweep_paths_none_or_files(tmp_path):
    with pytest.raises(TypeError, match="path must be a file or folder path"):
        load_rgb(None)
    with pytest.raises(TypeError, match="root must be a file or folder path"):
        digits_to_imagefolder(None)
    (tmp_path/"f.txt").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        digits_to_imagefolder(tmp_path/"f.txt", size=8)


def test_sweep_home_in_patterns_and_tables(tmp_path, monkeypatch, photos):
    monkeypatch.setenv("HOME", str(photos.parent))
    assert len(ImageDataset("~/imgs/*.png", 8)) == 4
    assert np.asarray(load_rgb("~/imgs/a_rgb.png")).shape == (40, 50, 3)
    pd.DataFrame({"path": ["a_rgb.png"], "class": ["x"]}).to_csv(photos/"t.csv", index=False)
    assert len(CSVImageDataset("~/imgs/t.csv")) == 1


def test_sweep_image_dataset_folder_pattern_hint(photos):
    with pytest.raises(FileNotFoundError, match=r"is a folder, so use '.*imgs/\*'"):
        ImageDataset(str(photos), 8)


def test_sweep_csv_bad_tables(tmp_path):
    d = _csv_images(tmp_path)
    with pytest.raises(ValueError, match="the table has no rows"):
        CSVImageDataset(pd.DataFrame({"path": [], "class": []}), root=d)
    with pytest.raises(TypeError, match="transform must be a callable"):
        CSVImageDataset(pd.DataFrame({"path": ["a.png"], "class": ["x"]}), root=d, transform="ToTensor")
    with pytest.raises(TypeError, match="classes= must be a list of names"):
        CSVImageDataset(pd.DataFrame({"path": ["a.png"], "class": ["x"]}), root=d, classes="x")
    with pytest.raises(NotADirectoryError, match="root .* is a file"):
        CSVImageDataset(pd.DataFrame({"path": ["a.png"], "class": ["x"]}), root=d/"a.png")


def test_sweep_paired_crop_flip_numpy_mask():
    img = torch.zeros(1, 20, 20, dtype=torch.uint8)
    with pytest.raises(TypeError, match="mask must be a PIL image or a tensor .*torch.from_numpy"):
        PairedCropFlip(8)(img, np.zeros((20, 20), np.uint8))


def test_sweep_denormalize_missing_stats():
    with pytest.raises(TypeError, match="mean and std must be numbers or lists of numbers"):
        denormalize(torch.rand(3, 4, 4), None, None)


def test_sweep_show_batch_channels_last():
    import matplotlib
    matplotlib.use("Agg")
    with pytest.raises(ValueError, match=r"looks channels-last, reorder with x\.permute\(0, 3, 1, 2\)"):
        show_batch(torch.rand(4, 8, 8, 3))


def test_sweep_in_memory_loader_generator_and_dataset(photos):
    with pytest.raises(TypeError, match="is a generator: InMemoryLoader takes tensors"):
        InMemoryLoader(x for x in range(3))
    with pytest.raises(TypeError, match="for a Dataset use DataLoader"):
        InMemoryLoader(ImageDataset(str(photos/"*"), 8))


def test_sweep_numpy_valid_pct_accepted():
    X_train, _, X_valid, _ = digits_tensors(size=8, valid_pct=np.float32(0.2))
    assert len(X_valid) == 360


def test_sweep_show_batch_label_forms():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match=r"y has shape \(2, 2\).*y\.argmax\(1\)"):
        show_batch(x, torch.eye(2), classes=["a", "b"])
    with pytest.raises(ValueError, match="pass them as y without classes="):
        show_batch(x, ["cat", "dog"], classes=["cat", "dog"])
    fig = show_batch(x, ["cat", "dog"])  # names given directly
    assert [t.get_text() for t in fig.axes[0].texts] == ["cat", "dog"]
    plt.close(fig)


def test_sweep_csv_rows_without_path(tmp_path):
    d = _csv_images(tmp_path)
    (d/"t.csv").write_text("path,class\na.png,x\n,y\n")
    with pytest.raises(ValueError, match=r"1 rows have no path \(rows \[1\]"):
        CSVImageDataset(d/"t.csv")


def test_sweep_missing_file_and_numpy_denormalize(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.png' does not exist .*download a URL first"):
        load_rgb(tmp_path/"nope.png")
    with pytest.raises(ValueError, match="convert NumPy arrays with torch.from_numpy"):
        denormalize(np.zeros((3, 4, 4), np.float32), 0.5, 0.5)
