"""eval_mode switches dropout/batch norm to eval and restores the caller's mode, even on errors."""

import pytest
from torch import nn

from capas.models.modes import eval_mode


@pytest.mark.parametrize("training", [True, False])
def test_mode_is_restored_after_the_block_and_after_an_error(training):
    net = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)).train(training)
    with eval_mode(net):
        assert not net.training and not net[1].training
    assert net.training is training and net[1].training is training
    with pytest.raises(RuntimeError), eval_mode(net):
        raise RuntimeError("boom")
    assert net.training is training
