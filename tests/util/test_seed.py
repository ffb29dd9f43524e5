"""util/seed.py: seed_everything seeds torch, NumPy and Python, and the generators' states round-trip."""
import random

import numpy as np
import torch

from util.seed import rng_state, seed_everything, set_rng_state


def test_seed_everything_seeds_torch_numpy_and_python():
    seed_everything(7)
    got = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(7)
    np.random.seed(7)
    random.seed(7)
    want = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(got[0], want[0]) and np.array_equal(got[1], want[1]) and got[2] == want[2]
    # the per-rank seeds of util/distributed.py exceed NumPy's 32 bits: NumPy takes them mod 2**32
    seed_everything(2 ** 62 + 1)
    after = np.random.rand()
    np.random.seed(1)
    assert after == np.random.rand()


def test_rng_state_round_trip():
    seed_everything(3)
    state = rng_state()
    first = (torch.rand(2), np.random.rand(2), random.random())
    seed_everything(4)
    set_rng_state(state)
    again = (torch.rand(2), np.random.rand(2), random.random())
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1]) and first[2] == again[2]
