"""Preprocessing: the slides' standardisation (N-1 std), target codes, stratified splits."""

import numpy as np
import pytest
import torch

from capas.data.preprocess import Standardizer, encode_targets, one_hot, scale_to_unit, stratified_split
from capas.errors import DataError


def test_standardizer_matches_the_slides_formula_with_n_minus_1():
    x = torch.tensor([[1.0, 10.0], [2.0, 10.0], [4.0, 10.0], [9.0, 10.0]])  # (4, 2)
    s = Standardizer().fit(x)
    # mu = 4, sigma^2 = (9 + 4 + 0 + 25) / 3 for the first column; the second is constant
    assert s.mean.tolist() == [4.0, 10.0]
    assert s.std[0].item() == pytest.approx(np.sqrt(38 / 3))
    assert s.std[1].item() == 1.0  # zero std guarded: only centred
    z = s.transform(x)
    assert z.dtype == torch.float32
    assert z[:, 0].mean().item() == pytest.approx(0.0, abs=1e-6)
    assert z[:, 0].std(correction=1).item() == pytest.approx(1.0, abs=1e-6)
    assert z[:, 1].tolist() == [0.0] * 4
    torch.testing.assert_close(s.inverse_transform(z), x)


def test_standardizer_follows_the_device_and_dtype_of_its_input():
    x = torch.tensor([[0.0, 10.0], [2.0, 30.0], [4.0, 20.0]])
    standardizer = Standardizer().fit(x)
    expected = (x - x.mean(0)) / x.std(0)  # (3, 2), N-1 std
    torch.testing.assert_close(standardizer.transform(x.to(torch.uint8)), expected)  # raw pixels -> float32
    assert standardizer.transform(x.double()).dtype == torch.float64
    assert standardizer.transform(x.to("meta")).device.type == "meta"  # stands for CUDA data
    assert standardizer.inverse_transform(expected.to("meta")).device.type == "meta"


def test_standardizer_record_round_trips_and_keeps_sample_shape():
    x = torch.randn(20, 1, 3, 3, generator=torch.Generator().manual_seed(0)) * 5 + 2
    s = Standardizer().fit(x)
    rebuilt = Standardizer.from_dict(s.to_dict())
    assert np.array(s.to_dict()["mean"]).shape == (1, 3, 3)
    torch.testing.assert_close(rebuilt.transform(x), s.transform(x))


def test_standardizer_refuses_one_sample_and_unfitted_use():
    with pytest.raises(DataError, match="at least 2"):
        Standardizer().fit(torch.zeros(1, 3))
    with pytest.raises(DataError, match="not fitted"):
        Standardizer().transform(torch.zeros(2, 3))


def test_one_hot_and_target_codes_for_tanh_and_sigmoid():
    y = torch.tensor([2, 0, 1])
    assert one_hot(y, 3).tolist() == [[0, 0, 1], [1, 0, 0], [0, 1, 0]]
    tanh = encode_targets(y, 3, kind="tanh")
    assert tanh.dtype == torch.float32
    torch.testing.assert_close(tanh[0], torch.tensor([-0.9, -0.9, 0.9]))
    torch.testing.assert_close(encode_targets(y, 3, kind="sigmoid")[1], torch.tensor([0.9, 0.1, 0.1]))
    with pytest.raises(DataError, match="0..1"):
        one_hot(y, 2)
    with pytest.raises(DataError, match="onehot, tanh, sigmoid"):
        encode_targets(y, 3, kind="softmax")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_one_hot_stays_on_the_device_of_the_labels():
    y = torch.tensor([2, 0, 1], device="cuda")
    codes = one_hot(y, 3, low=-0.9, high=0.9)
    assert codes.device == y.device
    torch.testing.assert_close(codes.cpu(), one_hot(y.cpu(), 3, low=-0.9, high=0.9))


def test_scale_to_unit():
    torch.testing.assert_close(scale_to_unit(torch.tensor([0.0, 51.0, 255.0]), 255.0), torch.tensor([0.0, 0.2, 1.0]))
    with pytest.raises(DataError):
        scale_to_unit(torch.ones(2), 0.0)


def test_stratified_split_keeps_class_proportions_and_depends_on_seed():
    y = np.repeat([0, 1, 2], [100, 50, 10])  # 62.5% / 31.25% / 6.25%
    keep, held = stratified_split(y, 0.2, seed=3)
    assert len(held) == 32 and len(keep) == 128
    assert np.bincount(y[held]).tolist() == [20, 10, 2]
    assert sorted(np.concatenate([keep, held]).tolist()) == list(range(160))
    again, _ = stratified_split(y, 0.2, seed=3)
    other, _ = stratified_split(y, 0.2, seed=4)
    assert np.array_equal(keep, again) and not np.array_equal(keep, other)


def test_unstratified_split_holds_out_the_last_samples_in_order():
    keep, held = stratified_split(np.zeros(10), 0.25, seed=0, stratify=False)
    assert keep.tolist() == list(range(7)) and held.tolist() == [7, 8, 9]
    keep, held = stratified_split(np.zeros(10), 0.0, seed=0)
    assert len(keep) == 10 and len(held) == 0


def test_split_too_small_for_stratification_is_a_data_error():
    with pytest.raises(DataError, match="stratified"):
        stratified_split(np.arange(10) % 5, 0.1, seed=0)
