"""models/cyclegan_model.py: the discriminator loss adds the gradient penalty exactly."""
import pytest
import torch

from models import create_model
from tests.models.conftest import opts


def test_cyclegan_penalty_is_added_exactly(monkeypatch):
    import models.cyclegan_model

    monkeypatch.setattr(models.cyclegan_model, "gradient_penalty", lambda netD, real, fake: torch.tensor(7.0))
    opt = opts("--ngf", "4", "--ndf", "4", "--crop_size", "32", "--load_size", "32", "--gan_mode", "wgangp")
    m = create_model(opt, torch.device("cpu"))
    d = m.nets["D_A"]
    real, fake = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        base = 0.5 * (-d(real).mean() + d(fake).mean())
    loss = m.backward_D(d, real, fake)
    assert loss.item() == pytest.approx(base.item() + 7.0, rel=1e-5, abs=1e-5)
