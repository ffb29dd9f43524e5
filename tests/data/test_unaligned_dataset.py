"""data/unaligned_dataset.py: A images in order, B partners by index or at random per epoch."""
import pytest

import data
from tests.data.conftest import make_opt


def test_unaligned_pairing(unaligned_root):
    serial = data.create_dataset(make_opt(unaligned_root, serial_batches=True))
    assert len(serial) == 5  # max(5, 3)
    for i in range(len(serial)):
        item = serial[i]
        assert item["A_paths"] == serial.A_paths[i % 5]
        assert item["B_paths"] == serial.B_paths[i % 3]
    shuffled = data.create_dataset(make_opt(unaligned_root))
    partners = []
    for epoch in range(1, 9):
        shuffled.set_epoch(epoch)
        partners.append(tuple(shuffled[i]["B_paths"] for i in range(5)))
        assert [shuffled[i]["A_paths"] for i in range(5)] == shuffled.A_paths
    assert len(set(partners)) > 1  # random partners change with the epoch
    with pytest.raises(IndexError):
        shuffled[5]
