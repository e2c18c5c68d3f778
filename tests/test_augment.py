"""capas.augment: each transform against a hand-computed case, the statistics of the
random parameters, reproducibility (same seed, same batch; a killed run resumes with the
same augmented batches), the --augment option everywhere, and bad inputs."""

from __future__ import annotations

import pytest
import torch

import capas
from capas.augment import AugmentError, ImageAugmenter, TextAugmenter, ops, parse_augment
from capas.train.config import TrainConfig


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_spec_parses_and_is_canonical():
    spec = parse_augment("noise=0.1, flip, rotate=15,crop=2")
    assert (spec.flip, spec.rotate, spec.crop, spec.noise) == (0.5, 15.0, 2, 0.1)
    assert spec.text() == "flip=0.5,rotate=15,crop=2,noise=0.1"
    assert parse_augment(spec.text()) == spec
    assert TrainConfig(augment="flip,crop=2").augment == "flip=0.5,crop=2"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("flip,spin=3", "unknown augmentation 'spin'"),
        ("rotate", "'rotate' needs a value"),
        ("rotate=abc", "must be a number"),
        ("noise=-1", "finite number >= 0"),
        ("flip=2", "is a probability"),
        ("crop=1.5", "whole number of pixels"),
        ("scale=1", "must be below 1"),
        ("flip,flip", "given twice"),
        ("sigma=3", "give elastic=A too"),
        ("", "an augmentation spec is text"),
    ],
)
def test_bad_specs_are_one_line_errors(text, message):
    with pytest.raises(AugmentError, match=message) as info:
        parse_augment(text)
    assert "\n" not in str(info.value)
    with pytest.raises(capas.TrainingError, match="augment"):
        TrainConfig.from_options(augment=text)


def test_flip_hand_computed():
    x = torch.arange(6.0).view(2, 1, 1, 3)
    out = ops.flip(x, torch.tensor([True, False]))
    assert out.tolist() == [[[[2.0, 1.0, 0.0]]], [[[3.0, 4.0, 5.0]]]]
    up_down = ops.flip(torch.arange(4.0).view(1, 1, 2, 2), torch.tensor([True]), dim=-2)
    assert up_down.tolist() == [[[[2.0, 3.0], [0.0, 1.0]]]]


def test_rotation_by_90_degrees_is_rot90_and_360_is_identity():
    x = torch.randn(3, 2, 5, 5, dtype=torch.float64)
    turned = ops.affine(x, torch.full((3,), 90.0, dtype=torch.float64), torch.zeros(3, 2))
    torch.testing.assert_close(turned, torch.rot90(x, 1, (2, 3)), atol=1e-12, rtol=0)  # counterclockwise
    back = ops.affine(x, torch.full((3,), -90.0, dtype=torch.float64), torch.zeros(3, 2))
    torch.testing.assert_close(back, torch.rot90(x, -1, (2, 3)), atol=1e-12, rtol=0)
    torch.testing.assert_close(ops.affine(x, torch.full((3,), 360.0), torch.zeros(3, 2)), x, atol=1e-12, rtol=0)


def test_pure_translation_moves_pixels_and_fills_zeros():
    x = torch.arange(1.0, 13.0, dtype=torch.float64).view(1, 1, 3, 4)
    moved = ops.affine(x, torch.zeros(1), torch.tensor([[1.0, -1.0]]))  # 1 right, 1 up
    expected = torch.tensor([[0.0, 5.0, 6.0, 7.0], [0.0, 9.0, 10.0, 11.0], [0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(moved[0, 0], expected, atol=1e-12, rtol=0)
    zoomed = ops.affine(x, torch.zeros(1), torch.zeros(1, 2), torch.ones(1))
    torch.testing.assert_close(zoomed, x, atol=1e-12, rtol=0)


def test_crop_is_an_integer_shift_in_range():
    x = torch.rand(64, 1, 10, 10, dtype=torch.float64) + 1.0  # no zeros inside, so the shift is visible
    out = ImageAugmenter("crop=2")(x, _gen())
    seen = set()
    for original, shifted in zip(x, out):
        match = [
            (dx, dy)
            for dx in range(-2, 3)
            for dy in range(-2, 3)
            if torch.allclose(
                ops.affine(original[None], torch.zeros(1), torch.tensor([[float(dx), float(dy)]]))[0],
                shifted,
                atol=1e-10,
            )  # fmt: skip
        ]
        assert len(match) == 1
        seen.add(match[0])
    assert len(seen) > 15  # of the 25 shifts


def test_brightness_contrast_hand_computed():
    x = torch.tensor([0.0, 1.0, 2.0, 5.0]).view(1, 1, 2, 2)  # mean 2
    out = ops.brightness_contrast(x, torch.tensor([0.5]), torch.tensor([2.0]))
    assert out.flatten().tolist() == [-1.5, 0.5, 2.5, 8.5]  # (x - 2) * 2 + 2 + 0.5


def test_elastic_field_moves_like_a_shift_and_smoothing_keeps_mass():
    x = torch.rand(2, 1, 6, 6, dtype=torch.float64)
    field = torch.zeros(2, 2, 6, 6, dtype=torch.float64)
    torch.testing.assert_close(ops.displace(x, field), x, atol=1e-12, rtol=0)
    field[:, 0] = 1.0  # every pixel reads one to its right: the image moves left
    torch.testing.assert_close(ops.displace(x, field)[..., :-1], x[..., 1:], atol=1e-12, rtol=0)
    kernel = ops.gaussian_kernel(4.0, torch.float64, torch.device("cpu"))
    assert len(kernel) == 25 and abs(float(kernel.sum()) - 1) < 1e-12
    out = ImageAugmenter("elastic=8")(x.float(), _gen())
    assert out.shape == x.shape and not torch.allclose(out, x.float())


def test_random_parameters_have_their_distributions():
    n = 20_000
    augmenter = ImageAugmenter("flip=0.3,rotate=15,crop=2,scale=0.1")
    params = augmenter.draw(n, _gen(), torch.float64)
    assert abs(params["flip"].double().mean() - 0.3) < 0.015
    angle = params["angle"]
    assert angle.abs().max() <= 15 and abs(angle.mean()) < 0.3 and abs(angle.var() - 15**2 / 3) < 3
    shifts = params["shift"]
    assert set(shifts.unique().tolist()) == {-2.0, -1.0, 0.0, 1.0, 2.0}
    counts = torch.bincount((shifts[:, 0] + 2).long()) / n
    assert (counts - 0.2).abs().max() < 0.015
    assert params["zoom"].min() >= 0.9 and params["zoom"].max() <= 1.1
    x = torch.zeros(64, 1, 16, 16)
    noisy = ImageAugmenter("noise=0.1")(x, _gen())
    assert abs(noisy.std() - 0.1) < 0.005 and abs(noisy.mean()) < 0.005


def test_same_seed_same_batch_and_the_generator_decides():
    x = torch.rand(16, 1, 12, 12)
    augmenter = ImageAugmenter("flip,rotate=20,crop=1,elastic=4,brightness=0.1,contrast=0.2,noise=0.05")
    first, second = augmenter(x, _gen(7)), augmenter(x, _gen(7))
    assert torch.equal(first, second)
    assert not torch.equal(first, augmenter(x, _gen(8)))
    generator = _gen(7)
    augmenter(x, generator)
    assert not torch.equal(first, augmenter(x, generator))  # the next batch gets new draws


def test_augmentation_refuses_data_that_are_not_images():
    with pytest.raises(AugmentError, match="works on images .* 784 per sample"):
        ImageAugmenter("flip")(torch.zeros(4, 784), _gen())
    x, y = torch.rand(40, 6), torch.randint(0, 2, (40,))
    with pytest.raises(AugmentError, match="works on images"):
        capas.fit("6-4-2", (x, y), augment="rotate=10", epochs=1, quiet=True)


def _images(n: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    """Bars: a vertical bar (class 0) or a horizontal one (class 1) at random places."""
    g = _gen(1)
    x = torch.zeros(n, 1, 10, 10)
    y = torch.randint(0, 2, (n,), generator=g)
    places = torch.randint(2, 8, (n,), generator=g)
    for i in range(n):
        if y[i] == 0:
            x[i, 0, 2:8, places[i]] = 1.0
        else:
            x[i, 0, places[i], 2:8] = 1.0
    return x, y


def test_a_fit_with_augmentation_is_reproducible_and_resumes_exactly(tmp_path):
    x, y = _images()

    class StopAfter(capas.Callback):
        def on_epoch_begin(self, trainer, epoch):
            if epoch == 3:
                raise KeyboardInterrupt

    def model():
        return capas.build("1x10x10 c3x3x4 mp2 d2", seed=0)

    options = dict(epochs=4, batch_size=16, seed=3, quiet=True, augment="flip,rotate=20,crop=1,noise=0.05")
    whole = capas.fit(model(), (x, y), out=tmp_path / "whole", **options)
    again = capas.fit(model(), (x, y), **options)
    plain = capas.fit(model(), (x, y), **{**options, "augment": None})
    with pytest.raises(KeyboardInterrupt):
        capas.fit(model(), (x, y), out=tmp_path / "cut", callbacks=[StopAfter()], **options)
    resumed = capas.fit(model(), (x, y), resume=tmp_path / "cut", epochs=4, quiet=True)
    for name, tensor in whole.model.state_dict().items():
        assert torch.equal(again.model.state_dict()[name], tensor), name
        assert torch.equal(resumed.model.state_dict()[name], tensor), name
    assert not torch.equal(plain.model.layers[0].weight, whole.model.layers[0].weight)
    config = capas.load_run(tmp_path / "whole").config["train"]
    assert config["augment"] == "flip=0.5,rotate=20,crop=1,noise=0.05"


def test_text_augmentation_edits_words_with_the_synonym_table():
    table = {"big": ["large", "huge"], "dog": ["hound"]}
    words = "the big dog runs".split()
    assert TextAugmenter(table, substitute=1, insert=0, delete=0, swap=0)(words, _gen()) in (
        ["the", "large", "hound", "runs"],
        ["the", "huge", "hound", "runs"],
    )
    inserted = TextAugmenter(table, substitute=0, insert=0.5, delete=0, swap=0)(words, _gen())
    assert len(inserted) == 6 and [w for w in inserted if w in words] == words
    assert set(inserted) - set(words) <= {"large", "huge", "hound"}
    assert TextAugmenter(table, substitute=0, insert=0, delete=1, swap=0)(words, _gen()) in [[w] for w in words]
    swapped = TextAugmenter(table, substitute=0, insert=0, delete=0, swap=0.5)(words, _gen())
    assert sorted(swapped) == sorted(words)
    deleted = [len(TextAugmenter(table, substitute=0, insert=0, delete=0.25, swap=0)(words * 50, _gen(s))) for s in range(20)]  # fmt: skip
    assert abs(sum(deleted) / len(deleted) / 200 - 0.75) < 0.02
    mixed = TextAugmenter(table, substitute=0.5, insert=0.25, delete=0.1, swap=0.2)
    assert mixed(words, _gen(4)) == mixed(words, _gen(4))
    with pytest.raises(AugmentError, match="list of words"):
        mixed("the big dog", _gen())
    with pytest.raises(AugmentError, match="must be in"):
        TextAugmenter(table, delete=1.5)


def test_smoothing_is_the_gaussian_convolution_with_zero_borders():
    import torch.nn.functional as F

    field = torch.rand(3, 2, 9, 7, dtype=torch.float64)
    kernel = ops.gaussian_kernel(1.5, torch.float64, torch.device("cpu"))
    k, r = len(kernel), len(kernel) // 2
    flat = field.reshape(-1, 1, 9, 7)
    expected = F.conv2d(
        F.conv2d(flat, kernel.view(1, 1, k, 1), padding=(r, 0)), kernel.view(1, 1, 1, k), padding=(0, r)
    )
    torch.testing.assert_close(ops.smooth(field, 1.5), expected.view(3, 2, 9, 7))
