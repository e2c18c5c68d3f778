"""Named networks from the literature, written in the notation: ``capas train --model
lenet5``, ``capas.build(preset("lenet5"))``, ``spec = "lenet5"`` is not needed in a recipe
(write the spec there, so the file shows it).

All take 28x28 grey images (MNIST, Fashion-MNIST) and give 10 classes.

- ``lenet5``: LeNet-5 as published (LeCun et al. 1998): C1 6@5x5 (the 32x32 input is the
  28x28 image padded by 2), S2 trainable subsampling, C3 16@5x5 with the paper's partial
  connection table, S4, C5 120@5x5, F6 84, Euclidean RBF output; tanh throughout (the
  paper's 1.7159 tanh(2a/3) is tanh up to a scaling). 60,840 parameters, 340,908
  connections, as the paper counts them.
- ``lenet``: the LeNet-style net of the Theano tutorial (0.92% test error): 20@5x5, max
  pooling, 50@5x5, max pooling, 500 hidden units.
- ``nielsen-ch6``: the final network of Nielsen's *Neural Networks and Deep Learning*,
  chapter 6 (99.67%): 20@5x5 and 40@5x5 ReLU convolutions with max pooling, two dense
  layers of 1,000 ReLUs with dropout 0.5 each, softmax; trained on expanded data
  (``augment="crop=1"`` is his one-pixel shifts, drawn afresh each batch).
- ``fashion-inception``: a small Inception/Xception-style net (~20k weights): a 3x3 stem,
  one Inception block (1x1 | 1x1 then 3x3 | 1x1 then 5x5, concatenated), a 1x1 mixing
  then a depthwise-only 3x3 (Xception), global average pooling, dropout, softmax.
"""

from __future__ import annotations

from capas.errors import SpecError

PRESETS: dict[str, str] = {
    "lenet5": "1x28x28 c5x5x6:p2:tanh sub2:tanh pc5x5x16:tanh sub2:tanh c5x5x120:tanh d84:tanh rbf10",
    "lenet": "1x28x28 c5x5x20 mp2 c5x5x50 mp2 d500 10",
    "nielsen-ch6": "1x28x28 c5x5x20 mp2 c5x5x40 mp2 d1000 drop0.5 d1000 drop0.5 10",
    "fashion-inception": (
        "1x28x28 c3x3x32:same bn mp2 cat(c1x1x16, c1x1x16 c3x3x32:same, c1x1x8 c5x5x16:same) bn mp2 "
        "c1x1x96 dw3x3:same bn gap drop0.3 10"
    ),
}


def preset(name: str) -> str:
    """The spec of the preset ``name``; SpecError naming the presets otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise SpecError(f"unknown preset '{name}'; presets: {', '.join(PRESETS)}") from None


def resolve(spec_or_name: str) -> str:
    """A preset's spec when given a preset's name, else the text unchanged (a spec)."""
    return PRESETS.get(spec_or_name, spec_or_name) if isinstance(spec_or_name, str) else spec_or_name
