"""models/base_model.py: the learning-rate schedule's factors per policy, and the generator loss terms
a stage attaches (--amp and --channels_last: test_precision.py)."""
import pytest
import torch

import options
from models import create_model
from tests.conftest import tiny_args
from tests.helpers import schedule

CPU = torch.device("cpu")


# ---------------------------------------------------------------- learning-rate schedule

def test_linear_factors():
    s = schedule()
    assert [s.factor(e) for e in range(1, 6)] == pytest.approx([1, 1, 1, 2 / 3, 1 / 3])
    s = schedule(n_epochs=100, n_epochs_decay=100)
    for e in (1, 100, 101, 150, 200):
        assert s.factor(e) == pytest.approx(1 - max(0, e - 100) / 101)


def test_step_cosine_and_plateau_factors():
    s = schedule(lr_policy="step", lr_decay_iters=2)
    assert [s.factor(e) for e in range(1, 7)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    s = schedule(lr_policy="cosine", n_epochs=4)
    assert [s.factor(e) for e in (1, 3, 5)] == pytest.approx([1.0, 0.5, 0.0], abs=1e-12)
    s = schedule(lr_policy="plateau")
    s.observe(1.0)
    for _ in range(5):
        s.observe(1.0)
    assert s.factor(7) == 1.0  # patience 5
    s.observe(1.0)
    assert s.factor(8) == pytest.approx(0.2)
    s.observe(0.5)  # an improvement resets the count
    assert s.factor(9) == pytest.approx(0.2)
    restored = schedule(lr_policy="plateau")
    restored.load_state_dict(s.state_dict())
    assert restored.factor(9) == pytest.approx(0.2)


# ---------------------------------------------------------------- loss terms

def test_add_loss_term_sums_and_logs_each_term(tmp_path):
    opt = options.parse("train", tiny_args(tmp_path, "terms", model="pix2pix"))
    model = create_model(opt, CPU)
    model.add_loss_term(lambda: {"a": torch.tensor(1.5)})
    model.add_loss_term(lambda: {"b": torch.tensor(2.0), "c": torch.tensor(-0.5)})
    assert float(model.generator_extra_loss()) == 3.0
    assert {k: float(v) for k, v in model.extra_losses.items()} == {"a": 1.5, "b": 2.0, "c": -0.5}
    with pytest.raises(TypeError, match="callable"):
        model.add_loss_term({"a": torch.tensor(1.0)})
