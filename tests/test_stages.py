"""Tests of the stages' wiring: train.py (training and the mask search) and pipeline/finetune.py (prune.py
--finetune) attach the mask and distillation losses to the model themselves, seed through
util/seed.py, and resume through the one pipeline.trainer.resume_state."""
import random

import numpy as np
import pytest
import torch

import options
import pipeline.trainer
from tests.conftest import run_main, tiny_args
from models import create_model
from compress.distill import Distiller, Teacher
from compress.mask_search import MaskSearch
from pipeline.checkpoint import FORMAT, VERSION, options_dict, save_checkpoint
from util.errors import UserError
from pipeline.finetune import finetune
from util.seed import rng_state, seed_everything, set_rng_state
from pipeline.checkpoint import resume_state
from pipeline.run import Run

CPU = torch.device("cpu")


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


# ------------------------------------------------------------------------------------------ losses

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

    finetune(opt, state, CPU)
    model = trained_model["trainer"].model
    assert len(model.loss_terms) == 1
    term = model.loss_terms[0]
    assert isinstance(term.__self__, Distiller) and term.__func__ is Distiller.loss
    assert extra_losses_after_a_step(model) == {"attention_distill", "discriminator_distill"}


def test_add_loss_term_sums_and_logs_each_term(tmp_path):
    opt = options.parse("train", tiny_args(tmp_path, "terms", model="pix2pix"))
    model = create_model(opt, CPU)
    model.add_loss_term(lambda: {"a": torch.tensor(1.5)})
    model.add_loss_term(lambda: {"b": torch.tensor(2.0), "c": torch.tensor(-0.5)})
    assert float(model.generator_extra_loss()) == 3.0
    assert {k: float(v) for k, v in model.extra_losses.items()} == {"a": 1.5, "b": 2.0, "c": -0.5}
    with pytest.raises(TypeError, match="callable"):
        model.add_loss_term({"a": torch.tensor(1.0)})


# ------------------------------------------------------------------------------------------ seeding

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


# ------------------------------------------------------------------------------------------ resume

def _checkpoint(path, stage, epoch, model="cyclegan", **extra):
    state = {"format": FORMAT, "version": VERSION, "model": model, "stage": stage, "epoch": epoch,
             "iteration": 1, "nets": {}, "configs": {}, "optimizers": {}, "rng": rng_state(), **extra}
    save_checkpoint(state, str(path))


def test_one_resume_path_for_both_stages(tmp_path):
    opt = options.parse("prune", tiny_args(tmp_path, "run", mask=True, finetune=True))
    run = Run(opt)
    ckpt = tmp_path / "run" / "checkpoints"
    _checkpoint(ckpt / "model_0.pth", "pruned", 0)

    def finetune_resume():
        return resume_state(opt, run, run.resume_candidates(), stages=("finetune",), kind="fine-tune checkpoint",
                            fix="run prune.py --finetune without --continue_train first")

    with pytest.raises(UserError, match="found no fine-tune checkpoint in .*: run prune.py --finetune"):
        finetune_resume()  # the pruned model_0.pth does not count
    _checkpoint(ckpt / "model_2.pth", "finetune", 2)
    _checkpoint(ckpt / "model_1.pth", "finetune", 1)
    assert finetune_resume()[0] == str(ckpt / "model_2.pth")  # newest epoch first
    _checkpoint(ckpt / "latest.pth", "finetune", 2, model="pix2pix")
    with pytest.raises(UserError, match="holds a pix2pix model but --model cyclegan"):
        finetune_resume()  # latest.pth first, and checked like train.py's
    _checkpoint(ckpt / "latest.pth", "finetune", 2, rng={})
    with pytest.raises(UserError, match="random-generator state lacks"):
        finetune_resume()

    # train.py: the first candidate counts, and must be a training checkpoint of the right kind
    _checkpoint(tmp_path / "other.pth", "train", 1, format="other")
    with pytest.raises(UserError, match="not a training checkpoint of this project"):
        resume_state(opt, run, [str(tmp_path / "other.pth")], stages=None, kind="checkpoint", fix="x")
    with pytest.raises(UserError, match=r"holds pruned generators \(a prune.py checkpoint\): resume it with prune.py"):
        resume_state(opt, run, [str(ckpt / "model_1.pth")], stages=None, kind="checkpoint", fix="x", search=False)
    _checkpoint(tmp_path / "plain.pth", "train", 1)
    with pytest.raises(UserError, match=r"plain \(no --mask\) checkpoint: resume it without --mask"):
        resume_state(opt, run, [str(tmp_path / "plain.pth")], stages=None, kind="checkpoint", fix="x", search=True)
    assert resume_state(opt, run, [str(tmp_path / "plain.pth")], stages=None, kind="checkpoint", fix="x",
                        search=False)[0] == str(tmp_path / "plain.pth")
    with pytest.raises(UserError, match="found no checkpoint in .*: give --load_path"):
        resume_state(opt, run, [], stages=None, kind="checkpoint", fix="give --load_path")
