"""Tests of compress/distill.py (attention maps and losses, the frozen teacher, role hooks on pruned
students) and of the fine-tune stage that uses it, pipeline/finetune.py, end to end (teacher from
train.py, a hand-made pruned model)."""
import logging
import os
import subprocess
import sys

import pytest
import torch

import options
import train
from models import create_model
from pipeline.checkpoint import load_generator
from compress.distill import Distiller, attention_loss, attention_map, discriminator_distill_loss, resize_map
from pipeline.finetune import load_teacher
from models.families.resnet import ResnetGenerator
from models.families.unet import UnetGenerator
from pipeline.checkpoint import FORMAT, VERSION, checkpoint_from_state, load_checkpoint, options_dict, save_checkpoint
from tests.conftest import REPO
from util.frozen import replace
from util.errors import UserError
from pipeline.finetune import finetune

TOY = os.path.join(REPO, "datasets", "toy")
CPU = torch.device("cpu")

# slim widths of ngf-8 students, with removed residual blocks 2 and 8
RESNET_WIDTHS = {"stem": 6, "down1": 12, "stream": 20, "blocks.0": 16, "blocks.1": 8, "blocks.2": 0,
                 "blocks.3": 12, "blocks.4": 4, "blocks.5": 20, "blocks.6": 3, "blocks.7": 9, "blocks.8": 0,
                 "up1": 10, "up2": 5}
UNET_WIDTHS = {"down1": 6, "down2": 12, "down3": 20, "down4": 30, "down5": 40, "up5": 28, "up4": 18,
               "up3": 10, "up2": 7}


@pytest.fixture(scope="module", autouse=True)
def toy_data():
    if not (os.path.isdir(os.path.join(TOY, "unaligned")) and os.path.isdir(os.path.join(TOY, "aligned"))):
        subprocess.run([sys.executable, os.path.join(REPO, "datasets", "make_toy_dataset.py")], check=True, cwd=REPO)


def _common(model, tmp, name, extra=()):
    root = os.path.join(TOY, "unaligned" if model == "cyclegan" else "aligned")
    return ["--dataroot", root, "--model", model, "--name", name, "--checkpoints_dir", str(tmp),
            "--crop_size", "32", "--load_size", "32", "--n_epochs", "1", "--n_epochs_decay", "0",
            "--max_dataset_size", "2", "--num_threads", "0", "--display_id", "0", "--metric", "none",
            "--gpu_ids", "-1", *extra]


def student_opt(model, tmp, *extra, name="ft"):
    return options.parse("prune", _common(model, tmp, name, ["--ngf", "8", "--ndf", "8", "--print_freq", "1",
                                                              "--finetune", *extra]))


def teacher_file(tmp, model, ngf=16, ndf=8, mask=False):
    """A native teacher checkpoint with random weights (fast stand-in for a train.py run)."""
    extra = ["--ngf", str(ngf), "--ndf", str(ndf)] + (["--mask"] if mask else [])
    opt = options.parse("train", _common(model, tmp, "teacher", extra))
    torch.manual_seed(1)
    m = create_model(opt, CPU)
    state = {"format": FORMAT, "version": VERSION, "kind": "training", "model": model, "stage": "search" if mask else "train",
             "epoch": 1, "options": options_dict(opt), **m.state_dict()}
    path = os.path.join(str(tmp), f"teacher_{model}_{ngf}{'_mask' if mask else ''}.pth")
    save_checkpoint(state, path)
    return path


def slim_generators(model):
    if model == "cyclegan":
        return {"G_A": ResnetGenerator(ngf=8, widths=RESNET_WIDTHS),
                "G_B": ResnetGenerator(ngf=8, widths={"blocks.4": 0, "stream": 24})}
    return {"G": UnetGenerator(ngf=8, num_downs=5, widths=UNET_WIDTHS)}


def pruned_state(opt):
    """The native dict prune.py saves as model_0.pth, built from slim generators by hand."""
    torch.manual_seed(2)
    gens = slim_generators(opt.model)
    full = create_model(opt, CPU)  # only for the discriminators of the options
    nets = {k: g.state_dict() for k, g in gens.items()}
    configs = {k: g.config() for k, g in gens.items()}
    for d in ("D_A", "D_B") if opt.model == "cyclegan" else ("D",):
        nets[d] = full.nets[d].state_dict()
        configs[d] = dict(full.configs[d])
    return {"format": FORMAT, "version": VERSION, "kind": "pruned", "model": opt.model, "stage": "pruned", "nets": nets,
            "configs": configs, "cfg": None, "epoch": 0}


def student_model(opt, state):
    gen_configs = {k: v for k, v in state["configs"].items() if k.startswith("G")}
    model = create_model(opt, CPU, gen_configs=gen_configs)
    model.load_state_dict(state, "pruned", optimizers=False)
    return model


def batch(n=2, size=32, seed=3):
    g = torch.Generator().manual_seed(seed)
    image = lambda: torch.rand(n, 3, size, size, generator=g) * 2 - 1  # noqa: E731
    return {"A": image(), "B": image(),
            "A_paths": ["a"] * n, "B_paths": ["b"] * n}


# ------------------------------------------------------------------------------------------ losses

def test_attention_map_is_channel_mean_of_squares():
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # [1, 2, 1, 2]
    assert torch.equal(attention_map(f), torch.tensor([[[[5.0, 10.0]]]]))
    assert attention_map(torch.randn(3, 7, 5, 4)).shape == (3, 1, 5, 4)


def test_attention_loss_normalised_and_plain():
    target = torch.tensor([[[[3.0, 4.0]]], [[[1.0, 0.0]]]])  # rows normalise to [.6, .8] and [1, 0]
    student = torch.tensor([[[[4.0, 3.0]]], [[[5.0, 0.0]]]])  # [.8, .6] and [1, 0]
    # squared differences .04, .04, 0, 0 over B*H*W = 4 entries
    assert attention_loss(target, student, True).item() == pytest.approx(0.02)
    assert attention_loss(target, student * 7, True).item() == pytest.approx(0.02)  # scale-free per sample
    plain = ((1 + 1 + 16 + 0) / 4)
    assert attention_loss(target, student, False).item() == pytest.approx(plain)
    zero = torch.zeros(1, 1, 2, 2)
    assert attention_loss(zero, zero, True).item() == 0.0  # eps keeps all-zero maps finite
    with pytest.raises(ValueError):
        attention_loss(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 4, 4))


def test_resize_map_is_per_sample_area_pooling_and_differentiable():
    m = torch.stack([torch.arange(16.0).view(1, 4, 4), -torch.ones(1, 4, 4)]).requires_grad_(True)
    small = resize_map(m, (2, 2))
    assert small.shape == (2, 1, 2, 2)
    assert torch.allclose(small[0, 0], torch.tensor([[2.5, 4.5], [10.5, 12.5]]))
    assert torch.allclose(small[1], -torch.ones(1, 2, 2))  # no broadcast of sample 0
    small.sum().backward()
    assert torch.allclose(m.grad, torch.full_like(m, 0.25))
    assert resize_map(m, (4, 4)) is m


def test_discriminator_distill_is_unsquared_frobenius_norm_of_the_batch():
    a, b = torch.ones(2, 3, 2, 2), torch.zeros(2, 3, 2, 2)
    assert discriminator_distill_loss(a, b).item() == pytest.approx(24 ** 0.5)


# ------------------------------------------------------------------------------------------ roles

def test_roles_follow_original_blocks_when_blocks_are_removed():
    torch.manual_seed(0)
    g = ResnetGenerator(ngf=8, widths=RESNET_WIDTHS).eval()
    assert "2" not in g.blocks and "8" not in g.blocks
    assert g.distill_roles() == ["down2", "blocks.2", "blocks.5", "blocks.8"]
    assert ResnetGenerator(ngf=8, n_blocks=6).distill_roles() == ["down2", "blocks.2", "blocks.5"]
    assert UnetGenerator(ngf=8, num_downs=5).distill_roles() == ["down2", "down4", "up5", "up3"]
    x = torch.randn(2, 3, 32, 32)
    out, feats = g.forward_features(x, g.distill_roles())
    with torch.no_grad():
        s = g.down2(g.down1(g.stem(x)))
        assert torch.equal(feats["down2"], s)
        s = g.blocks["1"](g.blocks["0"](s))
        assert torch.equal(feats["blocks.2"], s)  # block 2 removed: the stream after block 1
        for i in (3, 4, 5):
            s = g.blocks[str(i)](s)
        assert torch.equal(feats["blocks.5"], s)
        s = g.blocks["7"](g.blocks["6"](s))
        assert torch.equal(feats["blocks.8"], s)  # the last kept block (7)
        assert torch.equal(out, g(x))


def test_loss_with_removed_blocks_has_matching_sizes(tmp_path):
    opt = student_opt("cyclegan", tmp_path, "--pretrain_path", teacher_file(tmp_path, "cyclegan"),
                      "--lambda_attention_distill", "100", "--lambda_discriminator_distill", "1e-4")
    model = student_model(opt, pruned_state(opt))
    distiller = Distiller(opt, model, load_teacher(opt, CPU))
    assert model.feature_names == {"G_A": ["down2", "blocks.2", "blocks.5", "blocks.8"],
                                   "G_B": ["down2", "blocks.2", "blocks.5", "blocks.8"]}
    model.set_input(batch())
    model.forward()
    losses = distiller.loss()
    assert set(losses) == {"attention_distill", "discriminator_distill"}
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    assert model.feature_names["G_A"] == distiller.roles["G_A"]


# ------------------------------------------------------------------------------------------ teacher

@pytest.mark.parametrize("model_name", ["cyclegan", "pix2pix"])
def test_teacher_stays_frozen_and_in_eval_mode(tmp_path, model_name):
    opt = student_opt(model_name, tmp_path, "--pretrain_path", teacher_file(tmp_path, model_name),
                      "--lambda_attention_distill", "10", "--lambda_discriminator_distill", "1e-3")
    model = student_model(opt, pruned_state(opt))
    distiller = Distiller(opt, model, load_teacher(opt, CPU))
    model.add_loss_term(distiller.loss)  # as the fine-tune stage attaches it
    teacher = distiller.teacher
    before = {k: v.clone() for k, v in teacher.state_dict().items()}  # includes BN running stats
    student_before = {k: v.clone() for k, v in model.nets.state_dict().items()}
    model.train()
    teacher.train()
    for step in range(3):
        model.set_input(batch(seed=step))
        model.optimize_parameters()
    assert not teacher.training and not any(m.training for m in teacher.modules())
    assert all(not p.requires_grad and p.grad is None for p in teacher.parameters())
    after = teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    if model_name == "pix2pix":
        assert any("running_mean" in k for k in before)  # BN statistics were among the checked tensors
    assert not all(torch.equal(v, model.nets.state_dict()[k]) for k, v in student_before.items())
    assert {"attention_distill", "discriminator_distill"} <= set(model.get_current_losses())
    assert not any(p is q for p in teacher.parameters() for q in model.optimizers["G"].param_groups[0]["params"])


def test_gradient_reaches_student_through_teacher_d_map(tmp_path):
    opt = student_opt("cyclegan", tmp_path, "--pretrain_path", teacher_file(tmp_path, "cyclegan"),
                      "--lambda_attention_distill", "1", "--lambda_discriminator_distill", "0")
    model = student_model(opt, pruned_state(opt))
    distiller = Distiller(opt, model, load_teacher(opt, CPU))
    model.set_input(batch())
    model.forward()
    # with the student's own features cut off, only the D-map path of the target is left
    model.features = {g: {r: t.detach() for r, t in f.items()} for g, f in model.features.items()}
    losses = distiller.loss()
    assert set(losses) == {"attention_distill"}
    losses["attention_distill"].backward()
    for name in ("G_A", "G_B"):
        grads = [p.grad for p in model.nets[name].parameters()]
        assert all(g is not None for g in grads)
        assert sum(g.abs().sum() for g in grads) > 0
    assert all(p.grad is None for p in distiller.teacher.parameters())


def test_pretrain_ngf_must_agree_with_the_teacher(tmp_path):
    path = teacher_file(tmp_path, "pix2pix", ngf=16)
    opt = student_opt("pix2pix", tmp_path, "--pretrain_path", path, "--pretrain_ngf", "64",
                      "--lambda_attention_distill", "1")
    with pytest.raises(UserError, match="--pretrain_ngf 64"):
        load_teacher(opt, CPU)
    opt = student_opt("pix2pix", tmp_path, "--pretrain_path", path, "--pretrain_ngf", "16")
    assert load_teacher(opt, CPU).configs["G"]["ngf"] == 16


def test_wrong_teachers_are_user_errors(tmp_path):
    opt = student_opt("cyclegan", tmp_path, "--pretrain_path", teacher_file(tmp_path, "pix2pix"),
                      "--lambda_attention_distill", "1")
    with pytest.raises(UserError, match="pix2pix"):
        load_teacher(opt, CPU)
    opt = replace(opt, pretrain_path=teacher_file(tmp_path, "cyclegan", mask=True))
    with pytest.raises(UserError, match="mask"):
        load_teacher(opt, CPU)
    # a checkpoint without its model name, holding U-Nets under CycleGAN names
    state = load_checkpoint(teacher_file(tmp_path, "cyclegan"))
    del state["model"]
    state["configs"]["G_A"]["family"] = "unet"
    opt = replace(opt, pretrain_path=os.path.join(str(tmp_path), "odd.pth"))
    save_checkpoint(state, opt.pretrain_path)
    with pytest.raises(UserError, match="unet"):
        load_teacher(opt, CPU)
    opt = replace(opt, pretrain_path=os.path.join(str(tmp_path), "missing.pth"))
    with pytest.raises(UserError, match="does not exist"):
        load_teacher(opt, CPU)


def test_finetune_option_errors(tmp_path):
    opt = student_opt("cyclegan", tmp_path, "--lambda_attention_distill", "1")
    with pytest.raises(UserError, match="--pretrain_path"):
        finetune(opt, checkpoint_from_state(pruned_state(opt), "model_0.pth"), CPU)
    opt = student_opt("cyclegan", tmp_path, "--use_pretrain_d")
    with pytest.raises(UserError, match="--pretrain_path"):
        finetune(opt, checkpoint_from_state(pruned_state(opt), "model_0.pth"), CPU)
    path = teacher_file(tmp_path, "cyclegan", ndf=16)
    opt = student_opt("cyclegan", tmp_path, "--use_pretrain_d", "--pretrain_path", path)
    with pytest.raises(UserError, match="--use_pretrain_d") as err:
        finetune(opt, checkpoint_from_state(pruned_state(opt), "model_0.pth"), CPU)
    # the student's discriminators are the search's (prune.py refuses another --ndf): the advice names
    # only what works, another teacher or no --use_pretrain_d
    message = str(err.value)
    assert "give --ndf" not in message
    assert message.endswith("give a --pretrain_path teacher whose discriminators are the search's (trained with "
                            "--ndf 8), or drop --use_pretrain_d"), message
    opt = student_opt("cyclegan", tmp_path, "--continue_train", name="nothing_yet")
    with pytest.raises(UserError, match="no fine-tune checkpoint"):
        finetune(opt, checkpoint_from_state(pruned_state(opt), "model_0.pth"), CPU)


def test_use_pretrain_d_takes_the_teacher_discriminators(tmp_path, monkeypatch):
    import pipeline.trainer

    seen = {}
    monkeypatch.setattr(pipeline.trainer.Trainer, "train", lambda self: seen.setdefault("model", self.model))
    path = teacher_file(tmp_path, "cyclegan", ndf=8)
    opt = student_opt("cyclegan", tmp_path, "--use_pretrain_d", "--pretrain_path", path)
    state = pruned_state(opt)
    finetune(opt, checkpoint_from_state(state, "model_0.pth"), CPU)
    teacher = load_checkpoint(path)["nets"]
    model = seen["model"]
    for name in ("D_A", "D_B"):
        assert all(torch.equal(v, teacher[name][k]) for k, v in model.nets[name].state_dict().items())
    for name in ("G_A", "G_B"):
        assert all(torch.equal(v, state["nets"][name][k]) for k, v in model.nets[name].state_dict().items())
    assert model.loss_terms == []  # no distillation weight: the teacher lends its D only


# ------------------------------------------------------------------------------------------ end to end

@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    """Teachers trained by train.py for one epoch on the toy data."""
    tmp = tmp_path_factory.mktemp("teachers")
    paths = {}
    for model in ("cyclegan", "pix2pix"):
        train.main(_common(model, tmp, f"teacher_{model}", ["--ngf", "16", "--ndf", "8"]))
        paths[model] = os.path.join(str(tmp), f"teacher_{model}", "checkpoints", "model_1.pth")
        assert os.path.isfile(paths[model])
    return paths


@pytest.mark.parametrize("model_name", ["cyclegan", "pix2pix"])
def test_finetune_end_to_end_and_resume(tmp_path, teachers, model_name, caplog):
    caplog.set_level(logging.INFO, logger="dmad")
    args = ["--pretrain_path", teachers[model_name], "--lambda_attention_distill", "100",
            "--lambda_discriminator_distill", "1e-4"]
    if model_name == "pix2pix":
        args += ["--scratch"]
    opt = student_opt(model_name, tmp_path, *args)
    state = pruned_state(opt)
    run_dir = os.path.join(str(tmp_path), "ft")
    save_checkpoint(state, os.path.join(run_dir, "checkpoints", "model_0.pth"))  # as prune.py leaves it
    finetune(opt, checkpoint_from_state(state, "model_0.pth"), CPU)
    assert "Start Finetune...." in caplog.text
    assert ("From Scratch" in caplog.text) == (model_name == "pix2pix")
    first = load_checkpoint(os.path.join(run_dir, "checkpoints", "model_1.pth"))
    assert first["stage"] == "finetune" and first["epoch"] == 1
    with open(os.path.join(run_dir, "loss_log.txt")) as handle:
        text = handle.read()
    assert "attention_distill" in text and "discriminator_distill" in text

    opt = student_opt(model_name, tmp_path, *args, "--continue_train", "--n_epochs", "2")
    caplog.clear()
    finetune(opt, checkpoint_from_state(state, "model_0.pth"), CPU)
    assert "resuming from" in caplog.text and "latest.pth" in caplog.text
    second = load_checkpoint(os.path.join(run_dir, "checkpoints", "model_2.pth"))
    assert second["stage"] == "finetune" and second["epoch"] == 2
    assert second["iteration"] == 2 * first["iteration"]
    assert load_checkpoint(os.path.join(run_dir, "checkpoints", "model_0.pth"))["stage"] == "pruned"

    slim = slim_generators(model_name)
    for direction, name in (("AtoB", "G_A"), ("BtoA", "G_B")) if model_name == "cyclegan" else (("AtoB", "G"),):
        g = load_generator(os.path.join(run_dir, "checkpoints", "latest.pth"), direction)
        assert g.widths == slim[name].widths
        assert g(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)
