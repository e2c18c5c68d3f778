"""Your own data files (capas.data.files): tables, arrays, image folders and text become a
Dataset like a registry name does, with what was fitted recorded; and every bad input is a
one-line DataError naming the file, the line and the column."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from PIL import Image

from capas.data import load
from capas.data.files import load_path, looks_like_path, npy_partner
from capas.data.fitted import read_new
from capas.data.tables import TableEncoder, read_table
from capas.data.text import CharText, read_text
from capas.errors import DataError


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def one_line_error(call, *fragments):
    """Run ``call``; it must raise a one-line DataError holding every fragment."""
    with pytest.raises(DataError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def table_rows(n=60, seed=0):
    """(header, rows) of a small table: two numbers, a colour, a yes/no class."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(3.0, 2.0, size=n)
    colour = rng.choice(["red", "green", "blue"], size=n)
    label = np.where(a + (colour == "red") > 0.3, "yes", "no")
    rows = [[f"{a[i]:.4f}", f"{b[i]:.4f}", colour[i], label[i]] for i in range(n)]
    return ["a", "b", "colour", "label"], rows


def csv_text(header, rows, delimiter=","):
    return "\n".join(delimiter.join(row) for row in [header, *rows]) + "\n"


def test_a_csv_becomes_a_standardised_one_hot_dataset_with_its_encoding_recorded(tmp_path):
    header, rows = table_rows()
    path = write(tmp_path / "t.csv", csv_text(header, rows))
    ds = load(str(path), seed=3)
    assert ds.name == str(path.resolve()) and ds.task == "classification" and ds.class_names == ["no", "yes"]
    assert ds.input_shape == (5,)  # a, b and three colours
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (43, 5, 12)
    table = ds.preprocessing["table"]
    assert table["target"] == "label" and [c["kind"] for c in table["columns"]] == ["numeric", "numeric", "categorical"]
    assert table["columns"][2]["categories"] == ["blue", "green", "red"]
    # the standardiser is the training split's: its features have mean 0 and N-1 std 1
    np.testing.assert_allclose(ds.x_train.double().mean(0).numpy(), 0, atol=1e-6)
    np.testing.assert_allclose(ds.x_train.double().std(0).numpy(), 1, atol=1e-5)
    json.dumps(ds.preprocessing)  # all of it goes into config.json
    again = load(ds.name, **ds.options)  # the options reproduce the tensors
    assert np.array_equal(again.x_test.numpy(), ds.x_test.numpy())


def test_target_task_tsv_and_regression_inference(tmp_path):
    header, rows = table_rows(40)
    path = write(tmp_path / "t.tsv", csv_text(header, rows, "\t"))
    regression = load(str(path), target="b")  # continuous numbers: regression
    assert regression.task == "regression" and regression.y_train.shape[1:] == (1,)
    assert regression.y_train.dtype.is_floating_point and regression.input_shape == (6,)  # a, 3 colours, 2 labels
    counts = write(tmp_path / "c.csv", "x,count\n" + "".join(f"{i},{i % 3}\n" for i in range(30)))
    assert load(str(counts)).task == "classification"  # a few whole numbers: classes
    assert load(str(counts), task="regression").task == "regression"


def test_missing_values_refused_by_line_and_column_or_imputed_from_training_rows(tmp_path):
    header, rows = table_rows(40)
    rows[6][1] = ""
    rows[9][2] = "NA"
    path = write(tmp_path / "m.csv", csv_text(header, rows))
    one_line_error(lambda: load(str(path)), "m.csv line 8, column 'b': missing value", "--impute")
    ds = load(str(path), impute="median", standardize=False)
    fill = ds.preprocessing["table"]["columns"][1]["fill"]
    train_b = [float(r[1]) for r in rows if r[1]]
    assert min(train_b) <= fill <= max(train_b)
    assert ds.preprocessing["table"]["columns"][2]["fill"] in ("red", "green", "blue")
    assert ds.options["impute"] == "median"


def test_id_column_is_not_a_feature(tmp_path):
    header, rows = table_rows(30)
    path = write(tmp_path / "i.csv", csv_text(["id", *header], [[f"s{i}", *r] for i, r in enumerate(rows)]))
    ds = load(str(path))
    assert ds.input_shape == (5,) and ds.preprocessing["table"]["id_column"] == "id"
    new = read_new(ds.preprocessing, path)
    assert new.ids[:2] == ["s0", "s1"] and new.x.shape == (30, 5)


def test_npz_official_split_string_labels_and_npy_pairs(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 2, 3)).astype(np.float32)
    y = np.array(["ant", "bee"] * 25)
    np.savez(tmp_path / "s.npz", x_train=x[:40], y_train=y[:40], x_test=x[40:], y_test=y[40:])
    ds = load(str(tmp_path / "s.npz"), validation=0)
    assert ds.class_names == ["ant", "bee"] and len(ds.x_test) == 10 and ds.preprocessing["split"]["test"] == "official"
    assert ds.input_shape == (2, 3)
    np.save(tmp_path / "run_x.npy", rng.normal(size=(30, 4)))
    np.save(tmp_path / "run_y.npy", rng.normal(size=30))
    assert npy_partner(tmp_path / "run_x.npy", "y").name == "run_y.npy"
    pair = load(str(tmp_path / "run_x.npy"))
    assert pair.task == "regression" and pair.input_shape == (4,)
    assert looks_like_path("data/x.csv") and not looks_like_path("digits")


def test_image_folder_resized_and_scaled(tmp_path):
    rng = np.random.default_rng(2)
    for k, name in enumerate(["dark", "light"]):
        (tmp_path / "img" / name).mkdir(parents=True)
        for i in range(10):
            size = (10, 12) if i % 2 else (8, 8)
            pixels = rng.integers(0, 60, size=size) + 150 * k
            Image.fromarray(pixels.astype(np.uint8), "L").save(tmp_path / "img" / name / f"{i}.png")
    folder = str(tmp_path / "img")
    one_line_error(lambda: load(folder), "is 10x12 but", "--image-size 8x8")
    ds = load(folder, image_size="6x5")
    assert ds.input_shape == (1, 6, 5) and ds.class_names == ["dark", "light"]
    assert float(ds.x_train.max()) <= 1.0 and ds.preprocessing["images"] == {
        "size": [6, 5],
        "mode": "L",
        "classes": ["dark", "light"],
    }
    assert ds.options["image_size"] == "6x5"


def test_read_text_ids_vocabulary_and_windows(tmp_path):
    path = write(tmp_path / "t.txt", "abracadabra\n")
    text = read_text(path)
    assert text.vocabulary == ["\n", "a", "b", "c", "d", "r"]
    assert text.decode(text.ids) == "abracadabra\n" and text.encode("cab").tolist() == [3, 1, 2]
    x, y = text.windows(4, step=2)
    assert x.shape == (4, 4) and text.decode(x[1]) == "raca" and text.decode(y[1]) == "acad"
    assert CharText.from_json(json.loads(json.dumps(text.to_json()))).decode([5, 1]) == "ra"
    ds = load(str(path), length=3, validation=0)  # the registry's text dataset on this file
    assert ds.num_classes == 6 and ds.input_shape == (3, 6) and ds.class_names == text.vocabulary
    assert ds.preprocessing["text"] == {"vocabulary": text.vocabulary, "window": 3}
    window = ds.x_train[0].argmax(dim=1).numpy()  # one-hot rows -> ids: a piece of the text
    assert text.decode(window) in "abracadabra\n" and text.decode(ds.y_train[0][:-1]) == text.decode(window[1:])
    one_line_error(lambda: text.encode("xyz"), "not in the vocabulary")


def test_encoder_record_round_trips_through_json(tmp_path):
    header, rows = table_rows(30)
    path = write(tmp_path / "t.csv", csv_text(header, rows))
    table = read_table(path)
    encoder = TableEncoder.fit(table, None, None, "mean")
    again = TableEncoder.from_json(json.loads(json.dumps(encoder.to_json())))
    assert np.array_equal(again.transform(table), encoder.transform(table))
    assert again.feature_names() == ["a", "b", "colour=blue", "colour=green", "colour=red"]


# -- bad inputs: one line each, naming the file, the line and the column ----------------------


def test_empty_file(tmp_path):
    one_line_error(lambda: load(str(write(tmp_path / "e.csv", ""))), "e.csv is empty")
    one_line_error(lambda: load(str(write(tmp_path / "h.csv", "a,b\n"))), "h.csv has a header but no data rows")
    one_line_error(lambda: load(str(write(tmp_path / "e.txt", ""))), "e.txt is empty")


def test_ragged_csv(tmp_path):
    path = write(tmp_path / "r.csv", "a,b,c\n1,2,x\n3,4\n5,6,y\n")
    one_line_error(lambda: load(str(path)), "r.csv line 3: 2 fields but the header has 3 columns")


def test_text_where_numbers_are_expected(tmp_path):
    header, rows = table_rows(20)
    rows[4][0] = "abc"
    path = write(tmp_path / "w.csv", csv_text(header, rows))
    one_line_error(lambda: load(str(path)), "w.csv line 6, column 'a': 'abc' is not a number")


def test_target_with_one_class(tmp_path):
    path = write(tmp_path / "o.csv", "x,y\n1,a\n2,a\n3,a\n")
    one_line_error(lambda: load(str(path)), "o.csv", "column 'y' has one class ('a')")
    np.savez(tmp_path / "o.npz", x=np.ones((4, 2)), y=np.zeros(4, dtype=int))
    one_line_error(lambda: load(str(tmp_path / "o.npz")), "o.npz", "has one class")


def test_labels_and_categories_unseen_in_training_at_predict_time(tmp_path):
    header, rows = table_rows(30)
    ds = load(str(write(tmp_path / "t.csv", csv_text(header, rows))))
    new = write(tmp_path / "new.csv", csv_text(header, [rows[0], [*rows[1][:3], "maybe"]]))
    one_line_error(
        lambda: read_new(ds.preprocessing, new), "new.csv line 3, column 'label': label 'maybe' was not seen"
    )
    other = write(tmp_path / "other.csv", csv_text(header[:3], [[*rows[0][:2], "purple"]]))
    one_line_error(
        lambda: read_new(ds.preprocessing, other), "other.csv line 2, column 'colour': category 'purple' was not seen"
    )


def test_images_of_different_modes(tmp_path):
    for k in range(2):
        (tmp_path / "m" / f"c{k}").mkdir(parents=True)
        Image.new("L", (4, 4), 10).save(tmp_path / "m" / f"c{k}" / "a.png")
    Image.new("RGB", (4, 4), (1, 2, 3)).save(tmp_path / "m" / "c1" / "b.png")
    one_line_error(lambda: load(str(tmp_path / "m")), "c1/b.png has image mode RGB but", "c0/a.png is L")


class Trap:
    """Unpickling this object writes a file: it must never happen."""

    def __init__(self, flag):
        self.flag = flag

    def __reduce__(self):
        return (open, (self.flag, "w"))


def test_npz_with_object_arrays_is_never_unpickled(tmp_path):
    flag = tmp_path / "unpickled"
    objects = np.empty(3, dtype=object)
    objects[:] = [Trap(str(flag)), 1, 2]
    np.savez(tmp_path / "obj.npz", x=np.ones((3, 2)), y=objects)
    assert b"open" in pickle.dumps(objects[0])  # the trap is armed
    one_line_error(lambda: load(str(tmp_path / "obj.npz")), "obj.npz: array 'y' holds Python objects")
    assert not flag.exists()


def test_a_file_of_several_gigabytes_is_refused_from_its_header(tmp_path):
    path = tmp_path / "huge.csv"
    with path.open("wb") as handle:
        handle.write(b"a,b,c\n" + b"1,2,x\n" * 100)
        handle.truncate(6 * 1024**3)  # sparse: 6 GiB that cost no disk
    message = one_line_error(lambda: load(str(path)), "huge.csv", "needs about", "use a sample of the rows")
    assert "GiB" in message
    header = np.lib.format.header_data_from_array_1_0(np.zeros(1))
    header["shape"] = (10**6, 10**6)  # a .npy whose header claims 8 TB
    with (tmp_path / "big_x.npy").open("wb") as handle:
        np.lib.format.write_array_header_1_0(handle, header)
    np.save(tmp_path / "big_y.npy", np.zeros(3))
    one_line_error(lambda: load(str(tmp_path / "big_x.npy")), "big_x.npy")


def test_options_that_do_not_apply_and_missing_paths(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.ones((4, 2)), y=np.arange(4) % 2)
    one_line_error(lambda: load_path(tmp_path / "a.npz", impute="mean"), "option impute does not apply")
    one_line_error(lambda: load(str(tmp_path / "nope.csv")), "no file or folder")
    one_line_error(lambda: load_path(tmp_path / "a.npz", task="clustering"), "unknown task 'clustering'")
