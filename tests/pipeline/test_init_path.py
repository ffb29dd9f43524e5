"""train.py --init_path: a run (a teacher, or with --mask the search) starts from the weights of a
checkpoint of this project or of pytorch-CycleGAN-and-pix2pix instead of random ones; the masks start
as usual; a file that does not fit is one line, exit 2, before the run folder is written."""
import logging

import pytest
import torch

import options
from models import create_model
from models.layers import masks
from pipeline.checkpoint import FORMAT, VERSION, load_checkpoint, read_checkpoint, save_checkpoint
from pipeline.train import read_init, load_init
from tests.conftest import ALIGNED, UNALIGNED, assert_user_error, run_main, run_script, tiny_args
from tests.models.test_upstream import (UpstreamNLayerD, UpstreamResnet, UpstreamUnet, made, save_run,
                                        with_stale_instance_statistics)
from tests.pipeline.test_upstream_checkpoints import trained_like

CPU = torch.device("cpu")


def without(argv, *names):
    """``argv`` without the options ``names`` and their values."""
    out = list(argv)
    for name in names:
        i = out.index(name)
        del out[i:i + 2]
    return out


def started(argv):
    """The model train.py builds for ``argv`` and the Init it loads: (opt, model, init)."""
    opt = options.parse("train", argv)
    opt, init = read_init(opt)
    model = create_model(opt, CPU, gen_configs=init.gen_configs)
    load_init(model, init)
    return opt, model, init


def assert_loaded(net, state):
    """Every tensor of ``state`` (a plain state dict) is ``net``'s; ``net``'s other entries are masks."""
    own = net.state_dict()
    for key, value in state.items():
        assert torch.equal(own[key], value), key
    assert all(".mask." in key for key in set(own) - set(state))


def unmasked(net):
    """``net`` with every mask at bound 0 and positive weight: a scale of 1 on every channel."""
    with torch.no_grad():
        for mask in masks(net).values():
            mask.mask_weight.fill_(1.0)
            mask.update(0.0)
    return net.eval()


@pytest.fixture(scope="module")
def upstream_cyclegan(tmp_path_factory):
    """An upstream cycle_gan run folder: resnet_6blocks with BatchNorm and dropout, ngf and ndf 4."""
    root = tmp_path_factory.mktemp("init")
    nets = {"G_A": trained_like(UpstreamResnet(ngf=4, n_blocks=6, norm="batch", dropout=True), 1),
            "G_B": trained_like(UpstreamResnet(ngf=4, n_blocks=6, norm="batch", dropout=True), 2),
            "D_A": made(UpstreamNLayerD(ndf=4), 3), "D_B": made(UpstreamNLayerD(ndf=4), 4)}
    save_run(root / "run", nets)
    return {"root": root, "run": root / "run", "nets": nets}


def test_a_plain_run_starts_from_the_upstream_weights(upstream_cyclegan, toy_root):
    """After one epoch at a 1e-12 learning rate every weight is the file's (the BatchNorm statistics
    move with the batches)."""
    root, run = upstream_cyclegan["root"], upstream_cyclegan["run"]
    assert run_main("train", without(tiny_args(root, "plain", init_path=run, lr=1e-12), "--ngf", "--ndf")) == 0
    state = load_checkpoint(str(root / "plain" / "checkpoints" / "latest.pth"))
    converted = read_checkpoint(run).nets
    for name in ("G_A", "G_B", "D_A", "D_B"):
        for key, value in converted[name].items():
            if value.is_floating_point() and "running_" not in key:
                torch.testing.assert_close(state["nets"][name][key], value, atol=1e-6, rtol=0)


def test_search_starts_from_an_upstream_run_and_prunes(upstream_cyclegan, toy_root, caplog):
    """--netG, --ngf, --norm and --ndf come from the networks, the dropout too; the search
    resumes with the same command and prunes."""
    root, run = upstream_cyclegan["root"], upstream_cyclegan["run"]
    argv = without(tiny_args(root, "s", mask=True, init_path=run, lr=1e-12), "--ngf", "--ndf")
    with caplog.at_level(logging.INFO, logger="dmad"):
        assert run_main("train", argv) == 0
    assert "--netG resnet_6blocks and --ngf 4 and --norm batch and --ndf 4 taken from the networks of --init_path" in caplog.text
    assert "G_A, G_B, D_A, D_B start from its weights (the masks initialised as usual)" in caplog.text
    state = load_checkpoint(str(root / "s" / "checkpoints" / "latest.pth"))
    config = state["configs"]["G_A"]
    assert (config["n_blocks"], config["ngf"], config["norm"], config["use_dropout"], config["mask"]) == \
        (6, 4, "batch", True, True)
    converted = read_checkpoint(run).nets
    for name in ("D_A", "D_B"):  # (the generators' weights take the masks' scales at each update: §4.4)
        for key, value in converted[name].items():
            torch.testing.assert_close(state["nets"][name][key], value, atol=1e-6, rtol=0)
    # the same command resumes (--init_path is not read then; the BatchNorm comes from the checkpoint)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="dmad"):
        assert run_main("train", argv + ["--continue_train", "--n_epochs", "2"]) == 0
    assert "is not read: --continue_train resumes the run's own weights" in caplog.text
    assert load_checkpoint(str(root / "s" / "checkpoints" / "latest.pth"))["epoch"] == 2
    prune = tiny_args(root, "p", mask=True, load_path=root / "s" / "checkpoints" / "latest.pth")
    assert run_main("prune", without(prune, "--ngf")) == 0
    assert load_checkpoint(str(root / "p" / "checkpoints" / "model_0.pth"))["configs"]["G_A"]["norm"] == "batch"


def test_without_init_path_the_weights_are_the_usual_random_ones(upstream_cyclegan):
    opt = options.parse("train", tiny_args(upstream_cyclegan["root"], "r", ngf=4, ndf=4, netG="resnet_6blocks"))
    assert opt.init_path is None and read_init(opt) == (opt, None)
    torch.manual_seed(0)
    model = create_model(opt, CPU)
    first = read_checkpoint(upstream_cyclegan["run"]).nets["G_A"]
    assert not torch.equal(model.nets["G_A"].state_dict()["stem.conv.weight"], first["stem.conv.weight"])


def test_the_masked_generator_computes_the_file_when_its_masks_are_open(upstream_cyclegan):
    """Plain weights in the mask generator: with every mask at scale 1 it is upstream's network."""
    argv = without(tiny_args(upstream_cyclegan["root"], "m", mask=True, init_path=upstream_cyclegan["run"]),
                   "--ngf", "--ndf")
    _, model, init = started(argv)
    assert set(init.sources) == {"G_A", "G_B", "D_A", "D_B"}
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        for name in ("G_A", "G_B"):
            want = upstream_cyclegan["nets"][name].eval()(x)
            torch.testing.assert_close(unmasked(model.nets[name])(x), want, atol=1e-5, rtol=0)


def test_model_zoo_generator_starts_the_generator_of_the_direction(tmp_path, toy_root, caplog):
    net = made(UpstreamResnet(ngf=4, n_blocks=9), 5)
    zoo = tmp_path / "latest_net_G.pth"
    torch.save(with_stale_instance_statistics(net, net.state_dict()), zoo)
    argv = without(tiny_args(tmp_path, "z", mask=True, init_path=zoo, direction="BtoA"), "--ngf")
    with caplog.at_level(logging.INFO, logger="dmad"):
        opt, model, init = started(argv)
    assert init.sources == {"G_A": "G"} and opt.ngf == 4 and opt.netG == "resnet_9blocks"
    assert "it starts G_A, the generator of --direction BtoA (B -> A); G_B, D_A, D_B start from random weights" \
        in caplog.text
    zoo_state = read_checkpoint(zoo).nets["G"]
    assert_loaded(model.nets["G_A"], zoo_state)
    assert not torch.equal(model.nets["G_B"].state_dict()["stem.conv.weight"], zoo_state["stem.conv.weight"])


def test_pix2pix_starts_from_an_upstream_batchnorm_unet_with_dropout(tmp_path, caplog):
    g = trained_like(UpstreamUnet(ngf=4, num_downs=7, norm="batch", dropout=True), 6)
    d = trained_like(UpstreamNLayerD(6, ndf=4, norm="batch"), 7)
    save_run(tmp_path / "facades", {"G": g, "D": d}, prefix="module.")
    argv = ["--dataroot", ALIGNED, "--model", "pix2pix", "--crop_size", "128", "--load_size", "128", "--mask",
            "--init_path", str(tmp_path / "facades" / "latest_net_G.pth"), "--gpu_ids", "-1"]
    opt, model, init = started(argv)
    assert (opt.netG, opt.ngf, opt.ndf) == ("unet_128", 4, 4) and set(init.sources) == {"G", "D"}
    assert model.configs["G"]["use_dropout"] and model.configs["G"]["mask"]
    converted = read_checkpoint(tmp_path / "facades").nets
    assert_loaded(model.nets["G"], converted["G"])
    x = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(unmasked(model.nets["G"])(x), g.eval()(x), atol=1e-5, rtol=0)
        pair = torch.cat([x, -x], 1)
        torch.testing.assert_close(model.nets["D"].eval()(pair), d.eval()(pair), atol=1e-4, rtol=1e-5)


def test_a_teacher_of_this_project_starts_the_search(tmp_path, toy_root):
    assert run_main("train", tiny_args(tmp_path, "teacher")) == 0
    teacher = tmp_path / "teacher" / "checkpoints" / "latest.pth"
    _, model, init = started(tiny_args(tmp_path, "s", mask=True, init_path=teacher))
    state = load_checkpoint(str(teacher))
    for name in ("G_A", "G_B"):
        assert_loaded(model.nets[name], state["nets"][name])
    for name in ("D_A", "D_B"):
        assert all(torch.equal(model.nets[name].state_dict()[k], v) for k, v in state["nets"][name].items())


def test_a_discriminator_of_another_architecture_starts_from_random_weights(tmp_path, caplog):
    nets = {"G_A": made(UpstreamResnet(ngf=4, n_blocks=6), 1), "G_B": made(UpstreamResnet(ngf=4, n_blocks=6), 2),
            "D_A": made(UpstreamNLayerD(ndf=4, n_layers=4), 3), "D_B": made(UpstreamNLayerD(ndf=4, n_layers=4), 4)}
    save_run(tmp_path / "run", nets)
    with caplog.at_level(logging.WARNING, logger="dmad"):
        _, _, init = started(without(tiny_args(tmp_path, "d", init_path=tmp_path / "run"), "--ngf", "--ndf"))
    assert set(init.sources) == {"G_A", "G_B"}
    assert "its D_A (n_layers 4, norm instance, ndf 4) is not this model's discriminator (n_layers 3, norm " \
           "instance, ndf 4): it starts from random weights" in caplog.text


def _pruned_file(path, search):
    state = load_checkpoint(str(search))
    state.update({"format": FORMAT, "version": VERSION, "kind": "pruned", "stage": "pruned"})
    save_checkpoint(state, str(path))
    return path


def test_a_file_that_does_not_fit_is_one_line_before_the_run_folder(upstream_cyclegan, tmp_path, toy_root, capsys):
    run = upstream_cyclegan["run"]
    unet_zoo = tmp_path / "facades.pth"
    torch.save(UpstreamUnet(ngf=4, num_downs=7).state_dict(), unet_zoo)
    save_run(tmp_path / "pix2pix", {"G": UpstreamUnet(ngf=4, num_downs=7), "D": UpstreamNLayerD(6, ndf=4)})
    assert run_main("train", tiny_args(tmp_path, "search", mask=True)) == 0
    search = tmp_path / "search" / "checkpoints" / "latest.pth"
    cases = [
        (tiny_args(tmp_path, "a", init_path=run, ngf=16),
         "--ngf 16 does not fit --init_path"),
        (tiny_args(tmp_path, "a", init_path=run, input_nc=1, output_nc=1, ngf=4, ndf=4),
         "--input_nc 1 does not fit --init_path"),
        (tiny_args(tmp_path, "a", init_path=unet_zoo),
         "its G is a unet generator, but --model cyclegan trains resnet ones (resnet_9blocks / resnet_6blocks): "
         "use --model pix2pix"),
        (tiny_args(tmp_path, "a", init_path=tmp_path / "pix2pix"),
         "holds a pix2pix model but --model is cyclegan"),
        (tiny_args(tmp_path, "a", init_path=search, mask=True),
         "is a mask-search checkpoint: --init_path starts from a plain model"),
        (tiny_args(tmp_path, "a", init_path=_pruned_file(tmp_path / "pruned.pth", search)),
         "holds pruned generators: --init_path starts from a full-width plain model"),
        (tiny_args(tmp_path, "a", init_path=unet_zoo, model="pix2pix", ngf=4),
         "holds a unet_128 generator: --crop_size 32 must be a multiple of 128"),
        (tiny_args(tmp_path, "a", init_path=tmp_path / "missing"),
         "does not exist: check the path of the checkpoint"),
    ]
    for argv, words in cases:
        capsys.readouterr()
        assert run_main("train", argv) == 2, words
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], (words, lines)
        assert not (tmp_path / "a").exists()
    # as a process: exit status 2, one line, no traceback
    line = assert_user_error(run_script("train", tiny_args(tmp_path, "a", init_path=run, ngf=16)))
    assert "drop --ngf or give --ngf 4" in line


def test_init_path_has_no_effect_elsewhere():
    opt = options.parse("test", ["--dataroot", UNALIGNED, "--init_path", "x.pth"])
    assert [flag for flag, _ in options.ignored_options(opt)] == ["--init_path"]
