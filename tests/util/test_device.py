"""util/device.py: the device of --gpu_ids, said in one log line, and a missing GPU as one line."""
import logging

import pytest
import torch

from util.device import select_device
from util.errors import UserError


def test_device_selection_logs_one_line(caplog):
    with caplog.at_level(logging.INFO):
        assert select_device([]) == torch.device("cpu")
    assert len([r for r in caplog.records if "running on" in r.getMessage()]) == 1
    assert "cpu" in caplog.records[-1].getMessage()
    caplog.clear()
    with caplog.at_level(logging.INFO):
        auto = select_device(None)
    expected = "cuda:0" if torch.cuda.is_available() else "cpu"
    assert auto == torch.device(expected)
    lines = [r.getMessage() for r in caplog.records if "running on" in r.getMessage()]
    assert len(lines) == 1 and expected in lines[0]


def test_missing_gpu_is_a_one_line_error():
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(UserError) as err:
        select_device([count + 7])
    assert "--gpu_ids" in str(err.value) and "\n" not in str(err.value)
