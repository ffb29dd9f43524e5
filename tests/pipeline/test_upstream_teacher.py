"""A pytorch-CycleGAN-and-pix2pix run folder as the teacher of prune.py --finetune (--pretrain_path):
co-attention and discriminator distillation read its generators and discriminators, --use_pretrain_d
starts the student's discriminators from its; a file without the discriminators the fine-tune needs
stops before anything is written, naming the missing file and the way on."""
import pytest
import torch

import options
from pipeline.checkpoint import load_checkpoint, read_checkpoint
from pipeline.finetune import load_teacher
from tests.conftest import ALIGNED, assert_user_error, run_main, run_script, tiny_args
from tests.models.test_upstream import UpstreamNLayerD, UpstreamResnet, UpstreamUnet, made, save_run
from tests.pipeline.test_upstream_checkpoints import trained_like
from util.errors import UserError


@pytest.fixture(scope="module")
def search(tmp_path_factory, toy_root):
    """A tiny CycleGAN mask search (resnet_9blocks, ngf / ndf 8, 32 px) and an upstream cycle_gan run
    folder of the same architecture (generators and discriminators)."""
    root = tmp_path_factory.mktemp("teacher")
    assert run_main("train", tiny_args(root, "s", mask=True)) == 0
    nets = {"G_A": made(UpstreamResnet(n_blocks=9), 1), "G_B": made(UpstreamResnet(n_blocks=9), 2),
            "D_A": made(UpstreamNLayerD(), 3), "D_B": made(UpstreamNLayerD(), 4)}
    save_run(root / "upstream", nets)
    return {"root": root, "ckpt": root / "s" / "checkpoints" / "latest.pth", "run": root / "upstream", "nets": nets}


def finetune_args(search, name, teacher, **extra):
    argv = tiny_args(search["root"], name, mask=True, load_path=search["ckpt"], finetune=True,
                     pretrain_path=teacher, **extra)
    for option in ("--ngf",):  # prune.py reads the widths from the search
        i = argv.index(option)
        del argv[i:i + 2]
    return argv


def test_upstream_run_folder_is_a_teacher_for_both_distillations(search, capsys):
    argv = finetune_args(search, "ft", search["run"] / "latest_net_G_A.pth", lambda_attention_distill=100,
                         lambda_discriminator_distill=0.001, use_pretrain_d=True, lr=1e-12)
    assert run_main("prune", argv) == 0
    out = capsys.readouterr().out
    assert "teacher loaded from" in out and "attention_distill:" in out and "discriminator_distill:" in out
    # --use_pretrain_d: the student's discriminators started from the upstream ones (a 1e-12 learning rate
    # leaves them where they started)
    state = load_checkpoint(str(search["root"] / "ft" / "checkpoints" / "latest.pth"))
    converted = read_checkpoint(search["run"]).nets
    for name in ("D_A", "D_B"):
        for key, value in converted[name].items():
            if value.is_floating_point():
                torch.testing.assert_close(state["nets"][name][key], value, atol=1e-6, rtol=0)


def test_the_teacher_computes_what_upstream_computes(search):
    opt = options.parse("prune", finetune_args(search, "x", search["run"], lambda_attention_distill=1))
    teacher = load_teacher(opt, torch.device("cpu"))
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        for name, net in search["nets"].items():
            want = net.eval()(x)
            torch.testing.assert_close(teacher.nets[name](x), want, atol=1e-5, rtol=0)


def test_pix2pix_batchnorm_unet_with_dropout_teacher(tmp_path):
    g = trained_like(UpstreamUnet(num_downs=7, norm="batch", dropout=True), 5)
    d = trained_like(UpstreamNLayerD(6, norm="batch"), 6)
    save_run(tmp_path / "facades", {"G": g, "D": d}, prefix="module.")
    argv = ["--dataroot", ALIGNED, "--model", "pix2pix", "--crop_size", "128", "--mask", "--finetune",
            "--pretrain_path", str(tmp_path / "facades"), "--lambda_attention_distill", "10", "--gpu_ids", "-1"]
    teacher = load_teacher(options.parse("prune", argv), torch.device("cpu"))
    x = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(teacher.nets["G"](x), g.eval()(x), atol=1e-5, rtol=0)  # dropout off
        pair = torch.cat([x, x.flip(-1)], 1)
        torch.testing.assert_close(teacher.nets["D"](pair), d.eval()(pair), atol=1e-4, rtol=1e-5)


def test_generator_only_teacher_stops_before_anything_is_written(search, tmp_path):
    """The generators alone: co-attention reads the teacher D's map (method.md §7.3), discriminator
    distillation its features, --use_pretrain_d its weights; each stops with the missing file named."""
    gonly = tmp_path / "generators_only"
    save_run(gonly, {name: search["nets"][name] for name in ("G_A", "G_B")})
    proc = run_script("prune", finetune_args(search, "g1", gonly, lambda_attention_distill=100))
    line = assert_user_error(proc)
    assert f"{gonly / 'latest_net_D_A.pth'} is missing" in line
    assert "--lambda_attention_distill 0 --lambda_discriminator_distill 0" in line
    assert not (search["root"] / "g1").exists()
    for extra in ({"lambda_discriminator_distill": 0.001}, {"use_pretrain_d": True}):
        opt = options.parse("prune", finetune_args(search, "g2", gonly / "latest_net_G_B.pth", **extra))
        with pytest.raises(UserError, match="latest_net_D_A.pth is missing"):
            load_teacher(opt, torch.device("cpu"))


def test_model_zoo_generator_is_no_teacher(search, tmp_path):
    zoo = tmp_path / "horse2zebra.pth"
    torch.save(search["nets"]["G_A"].state_dict(), zoo)
    opt = options.parse("prune", finetune_args(search, "z", zoo, lambda_attention_distill=100))
    with pytest.raises(UserError, match=r"holds one generator \(a model-zoo file\) and no discriminator: .*"
                                        r"latest_net_G_A.pth / latest_net_G_B.pth / latest_net_D_A.pth / "
                                        "latest_net_D_B.pth, or fine-tune without a teacher"):
        load_teacher(opt, torch.device("cpu"))
