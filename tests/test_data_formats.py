"""File formats on small files the tests create: IDX, UCI semeion.data, local .npz."""

import gzip

import numpy as np
import pytest

import capas.data as data
from capas.data.formats import parse_semeion, read_idx, read_npz, write_idx
from capas.errors import DataError


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path, dtype, suffix):
    offset = {"uint8": 0, "float32": 5.5, "float64": 5.5}.get(dtype, 5)
    values = np.arange(24) - offset
    array = values.reshape(2, 3, 4).astype(dtype)
    path = tmp_path / f"a.idx{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == (2, 3, 4)
    np.testing.assert_array_equal(back, array)


def test_idx_header_is_big_endian_as_published(tmp_path):
    # the first 16 bytes of MNIST's t10k-images: magic 0x00000803, then 10000, 28, 28
    path = tmp_path / "labels"
    write_idx(path, np.zeros((3, 2, 5), dtype=np.uint8))
    assert path.read_bytes()[:16] == bytes([0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 5])
    hand_made = bytes([0, 0, 0x0B, 1, 0, 0, 0, 2]) + (258).to_bytes(2, "big") + (-2).to_bytes(2, "big", signed=True)
    (tmp_path / "i16").write_bytes(gzip.compress(hand_made))
    assert read_idx(tmp_path / "i16").tolist() == [258, -2]


def test_idx_errors_name_the_file_and_the_problem(tmp_path):
    bad_magic = tmp_path / "bad_magic"
    bad_magic.write_bytes(b"\x01\x00\x08\x01\x00\x00\x00\x01\x07")
    with pytest.raises(DataError, match="bad_magic.*two zero bytes"):
        read_idx(bad_magic)
    bad_code = tmp_path / "bad_code"
    bad_code.write_bytes(b"\x00\x00\x07\x01\x00\x00\x00\x01\x07")
    with pytest.raises(DataError, match="type code 0x07"):
        read_idx(bad_code)
    truncated = tmp_path / "truncated.gz"
    truncated.write_bytes(gzip.compress(b"\x00\x00\x08\x02\x00\x00\x00\x02\x00\x00\x00\x02" + b"\x01\x02\x03"))
    with pytest.raises(DataError, match=r"truncated.gz declares shape \(2, 2\).*holds 3"):
        read_idx(truncated)
    broken_gzip = tmp_path / "broken.gz"
    broken_gzip.write_bytes(gzip.compress(b"\x00" * 100)[:20])
    with pytest.raises(DataError, match="damaged gzip"):
        read_idx(broken_gzip)


def _semeion_line(pixels, label):
    return " ".join(f"{p:.4f}" for p in pixels) + " " + " ".join("1" if i == label else "0" for i in range(10)) + " \n"


def test_parse_semeion_reads_pixels_row_major_and_one_hot_labels(tmp_path):
    first = np.zeros(256)
    first[[0, 17, 255]] = 1  # (0, 0), (1, 1), (15, 15)
    second = np.ones(256)
    path = tmp_path / "semeion.data"
    path.write_text(_semeion_line(first, 7) + _semeion_line(second, 0))
    x, y = parse_semeion(path)
    assert x.shape == (2, 16, 16) and x.dtype == np.uint8
    assert y.tolist() == [7, 0]
    assert x[0].sum() == 3 and x[0, 0, 0] == x[0, 1, 1] == x[0, 15, 15] == 1
    assert x[1].min() == 1


def test_parse_semeion_errors_give_the_line(tmp_path):
    path = tmp_path / "semeion.data"
    path.write_text(_semeion_line(np.zeros(256), 1) + "0 1 2\n")
    with pytest.raises(DataError, match="line 2: expected 266 numbers"):
        parse_semeion(path)
    path.write_text(" ".join(["0.0000"] * 256 + ["1", "1"] + ["0"] * 8) + "\n")
    with pytest.raises(DataError, match="line 1: the last 10 columns must be one-hot"):
        parse_semeion(path)
    path.write_text(" ".join(["0.5000"] * 256 + ["1"] + ["0"] * 9) + "\n")
    with pytest.raises(DataError, match="line 1: pixels must be 0 or 1"):
        parse_semeion(path)


def test_read_npz_with_official_split_and_flattened_inputs(tmp_path):
    path = tmp_path / "m.npz"
    np.savez(path, x_train=np.zeros((6, 16), np.uint8), y_train=np.arange(6) % 3,
             x_test=np.ones((2, 4, 4), np.uint8), y_test=np.array([0, 2]))  # fmt: skip
    arrays = read_npz(path, (1, 4, 4), num_classes=3)
    assert arrays.x_train.shape == (6, 1, 4, 4) and arrays.x_test.shape == (2, 1, 4, 4)
    assert arrays.y_test.dtype == np.int64


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"images": np.zeros((4, 4, 4)), "labels": np.zeros(4, int)}, "expected x_train, y_train, x_test, y_test"),
        ({"x": np.zeros((4, 5, 5)), "y": np.zeros(4, int)}, r"x holds samples of shape \(5, 5\)"),
        ({"x": np.zeros((4, 4, 4)), "y": np.zeros(3, int)}, "x has 4 samples but y has 3"),
        ({"x": np.zeros((4, 4, 4)), "y": np.zeros(4)}, "integer class labels"),
        ({"x": np.zeros((4, 4, 4)), "y": np.full(4, 10)}, r"labels 10..10; expected 0..9"),
        ({"x": np.full((4, 4, 4), np.nan), "y": np.zeros(4, int)}, "NaN"),
    ],
)
def test_malformed_npz_is_a_data_error_naming_the_file(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message) as info:
        read_npz(path, (1, 4, 4), num_classes=10)
    assert "bad.npz" in str(info.value)


def test_npz_holding_pickled_objects_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "mnist.npz"
    np.savez(path, x=np.array([{"a": 1}] * 4, dtype=object), y=np.zeros(4, int))
    with pytest.raises(DataError, match="without pickle"):
        read_npz(path, (1,), num_classes=10)


def test_load_uses_a_local_npz_without_split_and_stratifies_it(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPAS_DATA", str(tmp_path))
    rng = np.random.default_rng(0)
    y = np.arange(100) % 10
    np.savez(tmp_path / "semeion.npz", x=rng.integers(0, 2, (100, 16, 16)).astype(np.uint8) * 255, y=y)
    assert {i.name: i.local for i in data.available()}["semeion"]
    ds = data.load("semeion", validation=0.125, seed=1)
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (70, 10, 20)
    assert ds.x_train.shape[1:] == (1, 16, 16) and ds.x_train.max().item() == 1.0
    assert ds.class_counts("test") == [2] * 10 and ds.class_counts("val") == [1] * 10
    assert ds.preprocessing["scale"]["divide_by"] == 255.0


def test_fashion_npz_accepts_both_spellings_and_keeps_official_split(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPAS_DATA", str(tmp_path))
    x = np.arange(20 * 784, dtype=np.int64).reshape(20, 28, 28) % 256
    np.savez(tmp_path / "fashion-mnist.npz", x_train=x.astype(np.uint8), y_train=np.arange(20) % 10,
             x_test=x[:10].astype(np.uint8), y_test=np.arange(10))  # fmt: skip
    ds = data.load("fashion_mnist", validation=0)
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (20, 0, 10)
    assert ds.x_val.shape == (0, 1, 28, 28)
    assert ds.class_names[0] == "T-shirt/top" and ds.preprocessing["split"]["test"] == "official"
    np.testing.assert_allclose(ds.x_test.numpy()[:, 0], x[:10] / 255, rtol=1e-6)


def test_local_only_dataset_missing_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPAS_DATA", str(tmp_path))
    with pytest.raises(DataError, match="put usps.npz .* there, or point CAPAS_DATA") as info:
        data.load("usps")
    assert str(tmp_path / "usps.npz") in str(info.value)


def test_load_mnist_from_idx_files_already_in_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPAS_DATA", str(tmp_path))
    folder = tmp_path / "mnist"
    folder.mkdir()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (30, 28, 28)).astype(np.uint8)
    write_idx(folder / "train-images-idx3-ubyte.gz", images[:20])
    write_idx(folder / "train-labels-idx1-ubyte.gz", (np.arange(20) % 10).astype(np.uint8))
    write_idx(folder / "t10k-images-idx3-ubyte.gz", images[20:])
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.arange(10).astype(np.uint8))
    ds = data.load("mnist", validation=0, scale=False)
    assert ds.x_train.shape == (20, 1, 28, 28) and ds.y_test.tolist() == list(range(10))
    np.testing.assert_array_equal(ds.x_test.numpy()[:, 0], images[20:])
    assert "scale" not in ds.preprocessing and ds.options["scale"] is False
