"""pipeline/train.py (train.py): the stage attaches the mask search's losses to the model itself, and
plain training adds none."""
import pytest

import options
from compress.mask_search import MaskSearch
from models import create_model
from tests.conftest import run_main, tiny_args
from tests.pipeline.conftest import CPU, extra_losses_after_a_step


@pytest.mark.parametrize("model_name", ["cyclegan", "pix2pix"])
def test_train_stage_attaches_the_mask_search_losses(tmp_path, toy_root, trained_model, model_name):
    opt = options.parse("train", tiny_args(tmp_path, "loose", model=model_name, mask=True, mask_weight_decay=0.01))
    model = create_model(opt, CPU)
    MaskSearch(opt, model, n_batches=4)
    assert model.loss_terms == []  # built alone, the search adds nothing to the generator loss
    assert extra_losses_after_a_step(model) == set()

    assert run_main("train", tiny_args(tmp_path, "search", model=model_name, mask=True, mask_weight_decay=0.01)) == 0
    trainer = trained_model["trainer"]
    assert trainer.model.loss_terms == [trainer.search.loss_term]
    assert extra_losses_after_a_step(trainer.model) == {"mask_weight"}


def test_plain_training_has_no_extra_losses(tmp_path, toy_root, trained_model):
    assert run_main("train", tiny_args(tmp_path, "plain", model="pix2pix")) == 0
    assert trained_model["trainer"].model.loss_terms == []
