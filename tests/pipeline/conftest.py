"""Fixtures and helpers of the pipeline/ tests: checkpoints read back, a batch, the extra losses a
step gives, and a stage run up to its training loop."""
import pytest
import torch

import pipeline.trainer

CPU = torch.device("cpu")


def load(path):
    return torch.load(path, weights_only=True)


def batch(n=1, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"A": torch.rand(n, 3, size, size, generator=g) * 2 - 1,
            "B": torch.rand(n, 3, size, size, generator=g) * 2 - 1, "A_paths": ["a"] * n, "B_paths": ["b"] * n}


def extra_losses_after_a_step(model):
    """The names of the extra generator losses one forward pass gives (what the loss terms add)."""
    model.set_input(batch())
    model.forward()
    model.generator_extra_loss()
    return set(model.extra_losses)


@pytest.fixture
def trained_model(monkeypatch):
    """Runs a stage up to its training loop and returns the Trainer it built (the loop itself is skipped)."""
    seen = {}
    monkeypatch.setattr(pipeline.trainer.Trainer, "train", lambda self: seen.setdefault("trainer", self))
    return seen
