"""The models' facts: the per-direction table every other module reads, and the rule that no module
outside the model files and the registry branches on a model's name."""
import os
import re
from types import SimpleNamespace

import pytest
import torch

import options
from models import MODELS, create_model, generator_name
from pipeline.checkpoint import Checkpoint
from tests.conftest import REPO
from util.errors import UserError

ROOT = {"unaligned": os.path.join(REPO, "datasets", "toy", "unaligned"),
        "aligned": os.path.join(REPO, "datasets", "toy", "aligned")}


def opts(model, *argv):
    mode = MODELS[model].dataset_mode
    return options.parse("train", ["--dataroot", ROOT[mode], "--model", model, "--gpu_ids", "-1", "--ngf", "8",
                                   "--ndf", "8", "--crop_size", "32", "--load_size", "32", *argv])


@pytest.mark.parametrize("model", sorted(MODELS))
def test_direction_table_names_the_models_nets_options_and_visuals(model):
    cls = MODELS[model]
    for direction in ("AtoB", "BtoA"):
        table = cls.directions(direction)
        assert tuple(d.generator for d in table) == cls.generator_names
        assert {d.discriminator for d in table} == set(cls.discriminator_names)
        assert len({d.name for d in table}) == len(table)
        opt = opts(model, "--direction", direction)
        for d in table:
            assert d.real in cls.visual_names and d.fake in cls.visual_names
            assert isinstance(getattr(opt, d.macs_option), float)
            assert d.data_side(direction) != d.target_side(direction)
            assert generator_name(model, d.name) == d.generator
        assert set(cls.discriminator_configs(opt)) == set(cls.discriminator_names)


@pytest.mark.parametrize("model", sorted(MODELS))
def test_generators_and_discriminators_follow_the_table(model):
    """A model's generators() is its table; each discriminator takes what its direction feeds it."""
    opt = opts(model, "--direction", "BtoA")
    net = create_model(opt, torch.device("cpu"))
    table = net.directions(opt.direction)
    assert {name: id(g) for name, g in net.generators().items()} == \
        {d.name: id(net.nets[d.generator]) for d in table}
    batch = {"A": torch.rand(1, opt.input_nc, 32, 32) * 2 - 1, "B": torch.rand(1, opt.output_nc, 32, 32) * 2 - 1,
             "A_paths": ["a.png"], "B_paths": ["b.png"]}
    net.set_input(batch)
    with torch.no_grad():
        net.forward()
        for d in table:
            real, fake = getattr(net, d.real), getattr(net, d.fake)
            # the generator reads the side the table names, under --direction BtoA the swapped one
            assert torch.equal(real, batch[d.data_side(opt.direction)])
            judged = torch.cat((real, fake), 1) if net.conditional_d else fake
            assert net.nets[d.discriminator](judged).dim() == 4


def test_conditional_discriminators_are_the_paired_models():
    assert {name for name, cls in MODELS.items() if cls.conditional_d} == {"pix2pix", "mobilepix2pix"}
    assert {name for name, cls in MODELS.items() if cls.dataset_mode == "aligned"} == {"pix2pix", "mobilepix2pix"}


def test_unknown_models_and_directions_are_user_errors():
    with pytest.raises(UserError, match="unknown model 'stylegan'"):
        generator_name("stylegan", "AtoB", "x.pth")
    with pytest.raises(UserError, match="direction must be AtoB or BtoA"):
        generator_name("cyclegan", "AtoA")


@pytest.mark.parametrize("model", ["pix2pix", "mobilepix2pix"])
def test_test_py_and_export_take_a_one_generator_models_direction_from_its_checkpoint(model):
    """Both paired models map only the side they were trained on (not only the one named pix2pix)."""
    import pipeline.test as test_script

    def record(name):
        return Checkpoint(path="x.pth", kind="training", model=name, stage="train", version=2, epoch=1,
                          options={"direction": "BtoA"}, nets={}, configs={}, metric=None, state={})

    opt = SimpleNamespace(model=model, direction="AtoB", user_set=set(), dataset_mode="aligned")
    assert test_script.fit_direction(opt, record(model)) == {"direction": "BtoA"}
    assert opt.direction == "AtoB"  # the options are left as they are: the stage resolves into a copy
    opt = SimpleNamespace(model=model, direction="AtoB", user_set={"direction"}, dataset_mode="aligned")
    with pytest.raises(UserError, match="use --direction BtoA"):
        test_script.fit_direction(opt, record(model))
    cyclegan = SimpleNamespace(model="cyclegan", direction="AtoB", user_set=set(), dataset_mode="unaligned")
    assert test_script.fit_direction(cyclegan, record("cyclegan")) == {"direction": "BtoA"}  # a CycleGAN remembers its direction too (tests/pipeline/test_direction.py)


def test_no_module_outside_the_models_branches_on_a_model_name():
    """Comparisons with a model's name (or its objective) live in the model files and the registry only."""
    names = "|".join(sorted(MODELS, key=len, reverse=True))
    compare = re.compile(rf"""([=!]=\s*["']({names})["'])|(["']({names})["']\s*[=!]=)|\.objective\s*[=!]=""")
    allowed = {os.path.join("models", "__init__.py")} | \
        {os.path.join("models", f) for f in os.listdir(os.path.join(REPO, "models")) if f.endswith("_model.py")}
    hits = []
    for root, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("tests", "datasets", "__pycache__")]
        for name in files:
            path = os.path.join(root, name)
            if name.endswith(".py") and os.path.relpath(path, REPO) not in allowed:
                with open(path) as handle:
                    hits += [f"{os.path.relpath(path, REPO)}: {line.strip()}" for line in handle if compare.search(line)]
    assert hits == []


def test_the_identity_rule_applies_to_training_only(tmp_path):
    """test.py computes no identity loss: --input_nc 1 on a CycleGAN is left for the checkpoint to judge."""
    with pytest.raises(UserError, match="identity loss"):
        opts("cyclegan", "--input_nc", "1")
    opt = options.parse("test", ["--dataroot", ROOT["unaligned"], "--model", "cyclegan", "--input_nc", "1"])
    assert opt.input_nc == 1
