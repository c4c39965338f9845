"""The dataset: found, extracted, verified, normalised and batched as users rely on."""

from __future__ import annotations

import shutil

import pytest
import torch

from mnist_tui import cli
from mnist_tui.core import data

PROJECT_RAW = data.raw_dir(data.find_root())  # the checkout's extracted files


def test_normalisation_constants_are_the_training_set_statistics():
    train, _ = data.load()
    pixels = train.images.float().div(255)
    assert pixels.mean().item() == pytest.approx(data.MNIST_MEAN, abs=5e-5)
    assert pixels.std().item() == pytest.approx(data.MNIST_STD, abs=5e-5)
    normalised = data.normalise(train.images[:20000])
    assert normalised.shape == (20000, 1, 28, 28) and normalised.dtype == torch.float32


def test_splits_have_the_known_label_counts():
    train, test = data.load()
    assert train.labels.bincount().tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert test.labels.bincount().tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert train.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]


def test_extracts_gz_files_beside_them_and_verifies_them(tmp_path):
    raw = data.raw_dir(tmp_path)
    raw.mkdir(parents=True)
    for name in data.IDX_MD5:
        shutil.copy(data.SHIPPED_DATA / f"{name}.gz", raw)
    messages = []
    data.prepare(tmp_path, download=False, log=messages.append)
    assert sorted(p.name for p in raw.iterdir() if not p.name.endswith(".gz")) == sorted(data.IDX_MD5)
    assert len(messages) == 1 and "extracting 4 MNIST files" in messages[0]  # one line on a first run
    assert f"from the archives in {raw} into {raw}" in messages[0]


def test_the_package_carries_mnist_and_an_empty_data_folder_is_filled_from_it(tmp_path):
    """An installed copy has no checkout and no network: the archives inside the package are
    extracted into the data folder, with one line saying so, and nothing is downloaded."""
    assert sorted(p.name for p in data.SHIPPED_DATA.glob("*.gz")) == sorted(f"{name}.gz" for name in data.IDX_MD5)
    messages = []
    raw = data.prepare(tmp_path / "cache" / "data", download=False, log=messages.append)
    assert raw == data.raw_dir(tmp_path / "cache" / "data")
    assert sorted(p.name for p in raw.iterdir()) == sorted(data.IDX_MD5)  # no .gz copied
    assert messages == [f"extracting 4 MNIST files from the archives in {data.SHIPPED_DATA} into {raw} (first use only)"]
    data.prepare(tmp_path / "cache" / "data", download=False, log=messages.append)
    assert len(messages) == 1  # the second use says nothing


def test_a_damaged_file_in_a_data_folder_without_archives_is_extracted_again_from_the_package(tmp_path):
    raw = data.prepare(tmp_path, download=False)
    target = raw / "t10k-labels-idx1-ubyte"
    target.write_bytes(target.read_bytes()[:-10])  # truncated
    messages = []
    data.prepare(tmp_path, download=False, log=messages.append)
    assert messages == [f"t10k-labels-idx1-ubyte is damaged; extracting it again from {data.SHIPPED_DATA / 't10k-labels-idx1-ubyte.gz'}"]


def _copy_uncompressed(tmp_path):
    raw = data.raw_dir(tmp_path)
    raw.mkdir(parents=True)
    for name in data.IDX_MD5:
        (raw / name).symlink_to(PROJECT_RAW / name)
    return raw


def test_an_altered_file_is_reported_by_name(tmp_path, monkeypatch):
    """With no archive to extract it from again (the package's are covered above)."""
    data.prepare(data.find_root())  # make sure the project's files are extracted
    monkeypatch.setattr(data, "SHIPPED_DATA", tmp_path / "no-archives")
    raw = _copy_uncompressed(tmp_path)
    target = raw / "train-labels-idx1-ubyte"
    content = bytearray(target.read_bytes())
    target.unlink()
    content[100] ^= 0xFF
    target.write_bytes(bytes(content))
    with pytest.raises(data.DataError, match="train-labels-idx1-ubyte is damaged"):
        data.prepare(tmp_path, download=False)


def test_a_truncated_gz_is_reported_by_name(tmp_path):
    raw = data.raw_dir(tmp_path)
    raw.mkdir(parents=True)
    blob = (data.SHIPPED_DATA / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(data.DataError, match="t10k-labels-idx1-ubyte.gz cannot be decompressed"):
        data.prepare(tmp_path, download=False)
    assert not (raw / "t10k-labels-idx1-ubyte").exists()


def test_no_data_and_no_network_gives_one_clear_message(tmp_path, monkeypatch, capsys):
    """A copy whose package lost its archives, offline: one message naming the folder and files."""
    from torchvision.datasets import MNIST

    monkeypatch.setattr(data, "SHIPPED_DATA", tmp_path / "no-archives")

    def offline(self):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: network unreachable")

    monkeypatch.setattr(MNIST, "download", offline)
    status = cli.main(["train", "--data", str(tmp_path), "--runs", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert status == 1
    assert str(data.raw_dir(tmp_path)) in err
    assert all(name in err for name in data.IDX_MD5)
    assert "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_batches_reshuffle_each_epoch_reproducibly():
    split = data.Split(torch.zeros(100, 28, 28, dtype=torch.uint8), torch.arange(100))
    dev = data.DeviceSplit.from_split(split, "cpu")
    gen = torch.Generator().manual_seed(7)
    epoch1 = torch.cat([y for _, y in dev.batches(32, gen)])
    epoch2 = torch.cat([y for _, y in dev.batches(32, gen)])
    again = torch.cat([y for _, y in dev.batches(32, torch.Generator().manual_seed(7))])
    assert sorted(epoch1.tolist()) == list(range(100))  # every image once, last batch partial
    assert [len(y) for _, y in dev.batches(32, gen)] == [32, 32, 32, 4]
    assert not torch.equal(epoch1, epoch2)
    assert torch.equal(epoch1, again)
    assert torch.equal(torch.cat([y for _, y in dev.batches(32)]), torch.arange(100))


def test_limit_takes_the_first_images():
    train, _ = data.load()
    dev = data.DeviceSplit.from_split(train, "cpu", limit=10)
    assert dev.labels.tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]


def test_the_idx_reader_gives_torchvisions_tensors():
    """The splits are read straight from the IDX files (torchvision's MNIST class costs a
    second of imports): the same images and labels as torchvision reads."""
    from torchvision.datasets import MNIST

    train, test = data.load()
    root = data.find_root(None)
    for split, is_train in ((train, True), (test, False)):
        reference = MNIST(str(root), train=is_train, download=False)
        assert torch.equal(split.images, reference.data) and torch.equal(split.labels, reference.targets)


def test_an_idx_file_whose_size_disagrees_with_its_header_is_refused(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(b"\x00\x00\x08\x01" + (10).to_bytes(4, "big") + bytes(9))  # one label short
    with pytest.raises(data.DataError, match="header says 10"):
        data.read_idx(path, 1)
