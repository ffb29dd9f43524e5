"""pipeline/finetune.py (prune.py --finetune): the stage attaches the distillation losses to the model
itself (the distillation: tests/compress/test_distill.py)."""
import pytest
import torch

import options
from compress.distill import Distiller, Teacher
from models import create_model
from pipeline.checkpoint import FORMAT, VERSION, checkpoint_from_state, options_dict, save_checkpoint
from pipeline.finetune import finetune
from tests.conftest import tiny_args
from tests.pipeline.conftest import CPU, extra_losses_after_a_step


def _pruned_state(opt):
    """A stand-in for prune.py's model_0.pth: full-width plain networks of the options."""
    torch.manual_seed(2)
    model = create_model(opt, CPU)
    return {"format": FORMAT, "version": VERSION, "kind": "pruned", "model": opt.model, "stage": "pruned", "epoch": 0,
            **{k: v for k, v in model.state_dict().items() if k in ("nets", "configs")}}


def _teacher_file(tmp_path, model_name):
    opt = options.parse("train", tiny_args(tmp_path, "teacher", model=model_name))
    torch.manual_seed(1)
    teacher = create_model(opt, CPU)
    path = str(tmp_path / f"teacher_{model_name}.pth")
    save_checkpoint({"format": FORMAT, "version": VERSION, "kind": "training", "model": model_name, "stage": "train",
                     "epoch": 1,
                     "options": options_dict(opt), **teacher.state_dict()}, path)
    return path


@pytest.mark.parametrize("model_name", ["cyclegan", "pix2pix"])
def test_finetune_stage_attaches_the_distillation_losses(tmp_path, toy_root, trained_model, model_name):
    argv = tiny_args(tmp_path, "ft", model=model_name, mask=True, finetune=True, lambda_attention_distill=1,
                     lambda_discriminator_distill=1e-3, pretrain_path=_teacher_file(tmp_path, model_name))
    opt = options.parse("prune", argv)
    state = _pruned_state(opt)

    student = create_model(opt, CPU, gen_configs={k: v for k, v in state["configs"].items() if k.startswith("G")})
    teacher_model = create_model(opt, CPU)
    Distiller(opt, student, Teacher(dict(teacher_model.nets), dict(teacher_model.configs), "t"))
    assert student.loss_terms == []  # built alone, the distiller adds nothing to the generator loss
    assert extra_losses_after_a_step(student) == set()

    finetune(opt, checkpoint_from_state(state, "model_0.pth"), CPU)
    model = trained_model["trainer"].model
    assert len(model.loss_terms) == 1
    term = model.loss_terms[0]
    assert isinstance(term.__self__, Distiller) and term.__func__ is Distiller.loss
    assert extra_losses_after_a_step(model) == {"attention_distill", "discriminator_distill"}
