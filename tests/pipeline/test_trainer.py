"""The training loop's epoch summary and its stop on a non-finite loss."""
import torch

from models.base_model import BaseModel
from tests.conftest import run_main, tiny_args


def test_the_epoch_summary_of_large_finite_losses_is_finite(toy_root, tmp_path, capsys, monkeypatch):
    """Losses near float32's largest value are finite; their sum over the epoch is kept in float64."""
    real = BaseModel.current_loss_tensors
    monkeypatch.setattr(BaseModel, "current_loss_tensors",
                        lambda self: {k: torch.tensor(3e38) for k in real(self)})
    assert run_main("train", tiny_args(tmp_path, "big")) == 0
    out = capsys.readouterr()
    summary = [line for line in (out.out + out.err).splitlines() if "End of epoch" in line]
    assert len(summary) == 1 and "mean losses: D_A: 3000000" in summary[0] and "inf" not in summary[0], summary
