"""Tests of models/families/__init__.py: the registry, the family contract every family answers, the
original code's layout written and read back, and checkpoints written before the search state left the
networks (each family's own generators: tests/models/families/)."""
import os
import re

import pytest
import torch

from models import families
from models.families.resnet import ResnetGenerator
from models.families.unet import UnetGenerator
from models.layers import masks
from models.structure import full_widths
from pipeline.checkpoint import FORMAT, load_checkpoint, save_checkpoint
from tests.conftest import REPO
from tests.models.conftest import opts
from util.errors import UserError


# ---------------------------------------------------------------- the registry and the contract

def model_of(cls):
    """The --model whose generators are of family ``cls``."""
    from models import MODELS

    name = next((name for name, model in MODELS.items() if model.generator_family is cls), None)
    if name is None:
        pytest.skip(f"no --model builds the {cls.family} family")
    return name


def small_config(cls, netG, mask):
    opt = opts("--netG", netG, "--ngf", "4", "--model", model_of(cls), "--crop_size", "32", "--load_size", "32")
    return cls.options_config(opt, mask)


@pytest.mark.parametrize("netG", families.NETG_CHOICES)
def test_every_netG_resolves_to_one_family_that_answers_the_contract(netG):
    cls = families.for_netG(netG)
    assert families.get(cls.family) is cls and netG in cls.netG_choices and cls.depth_name
    config = cls.options_config(opts("--netG", netG, "--model", model_of(cls), "--crop_size", "256",
                                     "--load_size", "256"), True)
    assert config["family"] == cls.family
    with torch.device("meta"):
        net = families.build(config)
    assert isinstance(net, cls) and net.config() == dict(config, widths=net.widths)
    # the structure names every Mask of the module, in state-dict order
    assert net.structure().mask_names() == list(masks(net))
    assert 256 % cls.size_multiple(config) == 0 and cls.default_netG(256) in cls.netG_choices
    assert set(net.distill_roles()) and isinstance(net.distill_roles(), list)


@pytest.mark.parametrize("cls", list(families.FAMILIES.values()))
def test_config_round_trip_and_structure_widths(cls):
    config = small_config(cls, cls.default_netG(32), mask=False)
    net = families.build(config)
    again = families.build(net.config())
    assert again.config() == net.config() and full_widths(net.structure()) == net.widths
    assert [k for k, _ in again.state_dict().items()] == [k for k, _ in net.state_dict().items()]


def test_unknown_names_are_user_errors():
    with pytest.raises(UserError, match="unknown --netG"):
        families.for_netG("resnet_12blocks")
    with pytest.raises(UserError, match="unknown generator family 'stylegan'"):
        families.get("stylegan", "x.pth")
    assert families.NETG_CHOICES == ("resnet_9blocks", "resnet_6blocks", "unet_256", "unet_128", "unet_64",
                                     "unet_32", "mobile_resnet_9blocks", "mobile_resnet_6blocks")


def test_no_module_outside_the_families_branches_on_a_family_name():
    literal = re.compile(r"""["'](resnet|unet)["']""")
    hits = []
    for root, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("tests", "datasets", "__pycache__")]
        if os.path.relpath(root, REPO) == os.path.join("models", "families"):
            continue
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                with open(path) as handle:
                    hits += [f"{os.path.relpath(path, REPO)}: {line.strip()}" for line in handle if literal.search(line)]
    assert hits == []


# ---------------------------------------------------------------- earlier checkpoints

def test_block_coeff_of_earlier_checkpoints_moves_into_the_search_state(tmp_path):
    """Files written before the search state left the network hold the stream coefficients as the
    ResNet buffer ``block_coeff``: they load, and the search state they resume holds them."""
    net = ResnetGenerator(ngf=4, n_blocks=2, mask=True)
    coeff = torch.rand(16)
    nets = {"G_A": dict(net.state_dict(), block_coeff=coeff), "G_B": dict(net.state_dict(), block_coeff=coeff * 2)}
    configs = {"G_A": net.config(), "G_B": net.config()}
    path = tmp_path / "latest.pth"
    save_checkpoint({"format": FORMAT, "version": 1, "nets": nets, "configs": configs,
                     "search": {"bound": 0.5, "stopped": {}, "records": []}}, str(path))
    state = load_checkpoint(str(path))
    assert "block_coeff" not in state["nets"]["G_A"]
    net.load_state_dict(state["nets"]["G_A"])  # strict: the current layout
    assert torch.equal(state["search"]["group_coeff"]["G_B"]["stream"], coeff * 2)
    # a best model has no search state: the coefficients are dropped
    save_checkpoint({"format": FORMAT, "version": 1, "nets": nets, "configs": configs}, str(path))
    assert set(load_checkpoint(str(path))) == {"format", "version", "nets", "configs"}


# ---------------------------------------------------------------- the original code's layout

def _without_thop(sd):
    return {k: v for k, v in sd.items() if k.rsplit(".", 1)[-1] not in ("total_ops", "total_params")}


@pytest.mark.parametrize("make,export", [
    (lambda: ResnetGenerator(ngf=4, mask=True), "to_original_mask_resnet"),
    (lambda: ResnetGenerator(ngf=4, mask=True, unmask_last_upconv=True), "to_original_mask_resnet"),
    (lambda: ResnetGenerator(ngf=4, widths={"blocks.2": 0, "blocks.6": 0, "stream": 9}), "to_original_plain_resnet"),
    (lambda: UnetGenerator(ngf=4, num_downs=8, mask=True), "to_original_unet"),
    (lambda: UnetGenerator(ngf=4, num_downs=6), "to_original_unet")])
def test_to_original_writes_the_documented_layout_and_converts_back(make, export):
    """The family's own converter agrees key by key with the independent writers of tests/models/test_legacy.py
    (the tables of method.md §5), and ``from_original`` reads it back to the same network."""
    from tests.models import test_legacy

    net = make()
    original = net.to_original()
    want = _without_thop(getattr(test_legacy, export)(net))
    assert list(original) == list(net.to_original()) and set(original) == set(want)
    assert all(torch.equal(original[k], want[k]) for k in want)
    cfg = test_legacy.resnet_cfg(net) if export == "to_original_plain_resnet" else None
    config, state = families.from_original(original, cfg, "x")
    assert type(net).family == config["family"] and config["widths"] == net.widths
    assert state.keys() == net.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())


def test_netG_of_names_the_netG_that_builds_a_config():
    for family in families.FAMILIES.values():
        for netG in family.netG_choices:
            assert family.netG_of(dict(family.netG_args(netG), family=family.family)) == netG
    resnet = families.for_netG("resnet_9blocks")
    assert resnet.netG_of({"family": "resnet", "n_blocks": 7}) is None
