"""Tests of models/legacy.py: checkpoints in the original DMAD code's layouts load and compute the same.

The original code is not available here, so ``to_original_*`` below write our networks' state dicts
in the original layouts, key by key from the tables of method.md §5.1-§5.6 (independently of
models/legacy.py); loading them back must give the same functions.
"""
from pathlib import Path

import pytest
import torch

import models
import prune
from models import legacy
from models.discriminator import NLayerDiscriminator
from models.families.resnet import ResnetGenerator
from models.families.unet import UnetGenerator
from pipeline.checkpoint import load_checkpoint, load_generator, read_checkpoint
from tests.conftest import REPO, randomise
from util.errors import UserError
from util.flops import count_macs_params

ROOT = Path(REPO)


# ------------------------------------------------------------------------- the original layouts (§5)

def _apply(sd, table):
    """Rename module paths by ``table`` (ours -> original); thop counters are added as the original's
    checkpoints sometimes carry them."""
    out = {}
    for key, value in sd.items():
        module, _, leaf = key.rpartition(".")
        if key == "block_coeff":
            continue  # the original kept it outside the state dict
        out[f"{table[module]}.{leaf}"] = value.clone()
    out["model.1.total_ops"] = torch.zeros(1, dtype=torch.float64)
    out["total_params"] = torch.zeros(1, dtype=torch.float64)
    return out


def to_original_mask_resnet(net):
    """§5.1: 9 blocks at model.13..21, masks at 3, 7, 11, conv_block.3/.8, 24, 28 (no 28 with
    --unmask_last_upconv, which moves the final conv from 31 to 30)."""
    t = {"stem.conv": "model.1", "stem.mask": "model.3", "down1.conv": "model.5", "down1.mask": "model.7",
         "down2.conv": "model.9", "down2.mask": "model.11", "up1.conv": "model.22", "up1.mask": "model.24",
         "up2.conv": "model.26", "up2.mask": "model.28",
         "head.conv": "model.30" if net.unmask_last_upconv else "model.31"}
    for i in range(9):
        t.update({f"blocks.{i}.conv1.conv": f"model.{13 + i}.conv_block.1",
                  f"blocks.{i}.conv1.mask": f"model.{13 + i}.conv_block.3",
                  f"blocks.{i}.conv2.conv": f"model.{13 + i}.conv_block.6",
                  f"blocks.{i}.conv2.mask": f"model.{13 + i}.conv_block.8"})
    return _apply(net.state_dict(), t)


def to_original_plain_resnet(net):
    """§5.2: with n kept blocks, 1 conv7, 4 down1, 7 down2, blocks at 10..9+n (conv_block.1/.5),
    convTs at 10+n and 13+n, the final conv at 17+n."""
    kept = sorted(int(k) for k in net.blocks.keys())
    n = len(kept)
    t = {"stem.conv": "model.1", "down1.conv": "model.4", "down2.conv": "model.7",
         "up1.conv": f"model.{10 + n}", "up2.conv": f"model.{13 + n}", "head.conv": f"model.{17 + n}"}
    for j, i in enumerate(kept):
        t.update({f"blocks.{i}.conv1.conv": f"model.{10 + j}.conv_block.1",
                  f"blocks.{i}.conv2.conv": f"model.{10 + j}.conv_block.5"})
    return _apply(net.state_dict(), t)


def resnet_cfg(net):
    """§5.2: [c3, c7, R, (k_i, R) x 9, c24, c28]."""
    w = net.widths
    cfg = [w["stem"], w["down1"], w["stream"]]
    for i in range(9):
        cfg += [w[f"blocks.{i}"], w["stream"]]
    return cfg + [w["up1"], w["up2"]]


def to_original_unet(net):
    """§5.3 (mask) / §5.4 (plain): nested ``model`` Sequentials; the sub-block sits at index 2 (mask)
    or 1 (plain) of the outermost level and at 4 / 3 of the middle levels."""
    mask = net.has_mask
    n = net.num_downs
    prefix = {1: "model.model"}
    for level in range(2, n + 1):
        sub = (2 if mask else 1) if level == 2 else (4 if mask else 3)
        prefix[level] = f"{prefix[level - 1]}.{sub}.model"
    t = {"down1.conv": f"{prefix[1]}.0", "up1.conv": f"{prefix[1]}.{4 if mask else 3}"}
    if mask:
        t["down1.mask"] = f"{prefix[1]}.1"
    for level in range(2, n + 1):
        p, d, u = prefix[level], f"down{level}", f"up{level}"
        if level < n and mask:    # [LReLU, conv, BN, Mask, sub, ReLU, convT, BN, Mask, (Dropout)]
            t.update({f"{d}.conv": f"{p}.1", f"{d}.norm": f"{p}.2", f"{d}.mask": f"{p}.3",
                      f"{u}.conv": f"{p}.6", f"{u}.norm": f"{p}.7", f"{u}.mask": f"{p}.8"})
        elif level < n:           # [LReLU, conv, BN, sub, ReLU, convT, BN, (Dropout)]
            t.update({f"{d}.conv": f"{p}.1", f"{d}.norm": f"{p}.2", f"{u}.conv": f"{p}.5", f"{u}.norm": f"{p}.6"})
        elif mask:                # innermost [LReLU, conv, Mask, ReLU, convT, BN, Mask]
            t.update({f"{d}.conv": f"{p}.1", f"{d}.mask": f"{p}.2", f"{u}.conv": f"{p}.4",
                      f"{u}.norm": f"{p}.5", f"{u}.mask": f"{p}.6"})
        else:                     # innermost [LReLU, conv, ReLU, convT, BN]
            t.update({f"{d}.conv": f"{p}.1", f"{u}.conv": f"{p}.3", f"{u}.norm": f"{p}.4"})
    return _apply(net.state_dict(), t)


def unet_cfgs(net):
    """§5.4 for 8 levels: filter_cfgs in mask order, channel_cfgs[k] = f[k] (k <= 7), f[14-k] + f[k]."""
    w = net.widths
    f = [w[f"down{L}"] for L in range(1, 9)] + [w[f"up{L}"] for L in range(8, 1, -1)]
    return f, [f[k] if k <= 7 else f[14 - k] + f[k] for k in range(15)]


def to_original_discriminator(d):
    """§5.6: convs at 0, 2, 5, 8, norms at 3, 6, 9, head at 11."""
    t = {"layers.conv1": "model.0", "layers.conv2": "model.2", "layers.norm2": "model.3", "layers.conv3": "model.5",
         "layers.norm3": "model.6", "layers.conv4": "model.8", "layers.norm4": "model.9", "layers.head": "model.11"}
    out = _apply(d.state_dict(), t)
    del out["model.1.total_ops"], out["total_params"]
    return out


# ------------------------------------------------------------------------------------------ helpers

def same_function(a, b, size, channels=3, atol=1e-6):
    x = torch.randn(2, channels, size, size, generator=torch.Generator().manual_seed(size))
    with torch.no_grad():
        want, got = a.eval()(x), b.eval()(x)
    assert want.std() > 1e-3
    torch.testing.assert_close(got, want, atol=atol, rtol=0)


def original_cyclegan(path, g_a, g_b, export, **extra):
    d = NLayerDiscriminator(3, 8, 3, "instance")
    state = {"G_A": export(g_a), "G_B": export(g_b), "D_A": to_original_discriminator(d),
             "D_B": to_original_discriminator(d), "fid": (61.5, 139.3), **extra}
    torch.save(state, str(path))
    return state


# ------------------------------------------------------------------------------------------ ResNet

def test_helper_follows_the_documented_keys():
    net = ResnetGenerator(ngf=4, mask=True)
    keys = set(to_original_mask_resnet(net))
    assert {"model.11.mask_weight", "model.11.bound", "model.13.conv_block.1.weight",
            "model.21.conv_block.8.mask_weight", "model.28.mask_weight", "model.31.weight"} <= keys
    unet = UnetGenerator(ngf=4, num_downs=8, mask=True)
    assert "model.model.2.model.4.model.3.mask_weight" in to_original_unet(unet)
    plain = UnetGenerator(ngf=4, num_downs=8)
    # the level-2 and level-4 down BatchNorms the original's distillation hooks name
    keys = set(to_original_unet(plain))
    assert {"model.model.1.model.2.weight", "model.model.1.model.3.model.3.model.2.weight"} <= keys


@pytest.mark.parametrize("unmask", [False, True])
def test_mask_resnet_round_trip(tmp_path, unmask):
    g_a = randomise(ResnetGenerator(ngf=8, mask=True, unmask_last_upconv=unmask), 1, bound=0.3)
    g_b = randomise(ResnetGenerator(ngf=8, mask=True, unmask_last_upconv=unmask), 2, bound=0.0)
    path = tmp_path / "model_1200.pth"
    original_cyclegan(path, g_a, g_b, to_original_mask_resnet, epoch=1200)
    for direction, ours in (("AtoB", g_a), ("BtoA", g_b)):
        loaded = load_generator(str(path), direction)
        config = loaded.config()
        assert config["mask"] and config["ngf"] == 8 and config["n_blocks"] == 9
        assert config["unmask_last_upconv"] is unmask and config["widths"] == ours.widths
        assert float(loaded.blocks["3"].conv2.mask.bound) == float(ours.blocks["3"].conv2.mask.bound)
        same_function(ours, loaded, 32)
    converted = legacy.load_model_state(torch.load(str(path), weights_only=True), str(path))
    assert converted["model"] == "cyclegan" and converted["stage"] == "search" and converted["epoch"] == 1200
    assert converted["fid"] == [61.5, 139.3] and converted["configs"]["D_A"] == {
        "input_nc": 3, "ndf": 8, "n_layers": 3, "norm": "instance"}


def test_pruned_resnet_with_removed_blocks(tmp_path):
    widths = {"stem": 5, "down1": 9, "stream": 20, "up1": 11, "up2": 6}
    widths.update({f"blocks.{i}": 3 + 2 * i for i in range(9)})
    widths.update({"blocks.1": 0, "blocks.7": 0})
    g_a = randomise(ResnetGenerator(ngf=8, widths=widths), 3)
    g_b = randomise(ResnetGenerator(ngf=8, widths=dict(widths, stream=12)), 4)
    assert sorted(g_a.blocks.keys()) == ["0", "2", "3", "4", "5", "6", "8"]
    path = tmp_path / "model_0.pth"
    original_cyclegan(path, g_a, g_b, to_original_plain_resnet, epoch=0, cfg=(resnet_cfg(g_a), resnet_cfg(g_b)))
    assert "model.16.conv_block.5.weight" in torch.load(str(path), weights_only=True)["G_A"]  # 7 blocks: 10..16
    for direction, ours in (("AtoB", g_a), ("BtoA", g_b)):
        loaded = load_generator(str(path), direction)
        assert loaded.config()["n_blocks"] == 9 and loaded.widths == ours.widths and not loaded.has_mask
        assert sorted(loaded.blocks.keys()) == sorted(ours.blocks.keys())  # block identities from the cfg
        same_function(ours, loaded, 32)
    converted = legacy.load_model_state(torch.load(str(path), weights_only=True), str(path))
    assert converted["stage"] == "pruned" and converted["cfg"]["G_A"] == resnet_cfg(g_a)

    # without the cfg the 7 present blocks become blocks 0..6: the same function
    no_cfg = tmp_path / "no_cfg.pth"
    original_cyclegan(no_cfg, g_a, g_b, to_original_plain_resnet, cfg=(None, None))
    loaded = load_generator(str(no_cfg), "AtoB")
    assert loaded.config()["n_blocks"] == 7
    same_function(g_a, loaded, 32)
    assert legacy.load_model_state(torch.load(str(no_cfg), weights_only=True), "x")["stage"] == "train"

    # a cfg that contradicts the weights is refused
    bad = tmp_path / "bad.pth"
    wrong = resnet_cfg(g_a)
    wrong[3 + 2 * 1] = 4  # claims block 1 was kept
    original_cyclegan(bad, g_a, g_b, to_original_plain_resnet, cfg=(wrong, resnet_cfg(g_b)))
    with pytest.raises(UserError, match="bad.pth"):
        load_generator(str(bad), "AtoB")


def test_legacy_mask_resnet_ngf64_counts():
    net = ResnetGenerator(ngf=64, mask=True)
    config, state = legacy.convert_generator_state(to_original_mask_resnet(net))
    loaded = models.generator_from_state(config, state, "test")
    assert count_macs_params(loaded, (1, 3, 256, 256)) == (56_864_276_480, 11_378_179)


# ------------------------------------------------------------------------------------------ U-Net

def original_pix2pix(path, g, export, **extra):
    d = randomise(NLayerDiscriminator(6, 8, 3, "batch"), 9)
    state = {"G": export(g), "D": to_original_discriminator(d), "fid": 24.2, **extra}
    torch.save(state, str(path))
    return d


def test_mask_unet256_round_trip(tmp_path):
    g = randomise(UnetGenerator(ngf=8, num_downs=8, mask=True), 5, bound=0.0)
    path = tmp_path / "model_800.pth"
    d = original_pix2pix(path, g, to_original_unet, epoch=800)
    loaded = load_generator(str(path), "AtoB")
    config = loaded.config()
    assert config["mask"] and config["num_downs"] == 8 and config["ngf"] == 8 and config["widths"] == g.widths
    same_function(g, loaded, 256)
    converted = legacy.load_model_state(torch.load(str(path), weights_only=True), str(path))
    assert converted["model"] == "pix2pix" and converted["fid"] == 24.2
    d_config = converted["configs"]["D"]
    assert d_config == {"input_nc": 6, "ndf": 8, "n_layers": 3, "norm": "batch"}
    d_loaded = NLayerDiscriminator(**d_config)
    d_loaded.load_state_dict(converted["nets"]["D"])
    same_function(d, d_loaded, 64, channels=6)


def test_pruned_unet_with_cfgs(tmp_path):
    widths = {"down1": 3, "down2": 7, "down3": 1, "down4": 20, "down5": 33, "down6": 17, "down7": 9, "down8": 5,
              "up8": 6, "up7": 12, "up6": 30, "up5": 1, "up4": 10, "up3": 4, "up2": 2}
    g = randomise(UnetGenerator(ngf=8, num_downs=8, widths=widths), 6)
    path = tmp_path / "model_0.pth"
    original_pix2pix(path, g, to_original_unet, epoch=0, cfg=unet_cfgs(g))
    loaded = load_generator(str(path), "BtoA")
    assert loaded.widths == widths and not loaded.has_mask
    same_function(g, loaded, 256)
    assert legacy.load_model_state(torch.load(str(path), weights_only=True), "x")["stage"] == "pruned"


# ------------------------------------------------------------------------------------------ errors, prune

def test_unknown_layouts_name_the_file(tmp_path):
    path = tmp_path / "strange.pth"
    torch.save({"G_A": {"encoder.weight": torch.zeros(2)}, "G_B": {"encoder.weight": torch.zeros(2)}}, str(path))
    with pytest.raises(UserError, match="strange.pth"):
        load_generator(str(path), "AtoB")
    torch.save({"netG": {"model.1.weight": torch.zeros(2)}}, str(path))
    with pytest.raises(UserError, match="strange.pth.*unknown checkpoint layout"):
        load_generator(str(path), "AtoB")
    sd = to_original_mask_resnet(ResnetGenerator(ngf=4, mask=True))
    sd["model.5.weight"] = sd["model.5.weight"][:, :2]  # widths that do not chain
    with pytest.raises(UserError, match="do not form a ResnetGenerator"):
        legacy.convert_generator_state(sd, source="odd.pth")


def test_prune_py_on_an_original_search_checkpoint(tmp_path):
    g_a = randomise(ResnetGenerator(ngf=8, mask=True), 7, bound=0.0)
    g_b = randomise(ResnetGenerator(ngf=8, mask=True), 8, bound=0.0)
    with torch.no_grad():
        g_a.blocks["5"].conv1.mask.mask_weight.fill_(-1)
    path = tmp_path / "model_best.pth"
    state = original_cyclegan(path, g_a, g_b, to_original_mask_resnet)
    state["G_A"] = {f"module.{k}": v for k, v in state["G_A"].items()}  # a DataParallel prefix is dropped
    torch.save(state, str(path))
    prune.main(["--dataroot", str(ROOT / "datasets" / "toy" / "unaligned"), "--model", "cyclegan", "--mask",
                "--load_path", str(path), "--checkpoints_dir", str(tmp_path / "exp"), "--name", "legacy",
                "--gpu_ids", "-1", "--crop_size", "32", "--load_size", "32", "--metric", "none"])
    out = tmp_path / "exp" / "legacy" / "checkpoints" / "model_0.pth"
    pruned = load_checkpoint(str(out))
    assert pruned["stage"] == "pruned" and pruned["configs"]["G_A"]["widths"]["blocks.5"] == 0
    same_function(g_a, load_generator(str(out), "AtoB"), 32, atol=1e-5)
    same_function(g_b, load_generator(str(out), "BtoA"), 32, atol=1e-5)
    log_text = (tmp_path / "exp" / "legacy" / "logger.log").read_text()
    assert "After Training. AtoB score: 61.50\tBtoA score: 139.30" in log_text


def test_numpy_scores_of_original_checkpoints_load(tmp_path):
    """The original saves ``fid`` as NumPy scalars; they load with weights_only, nothing else from NumPy."""
    import numpy as np


    path = tmp_path / "orig.pth"
    torch.save({"fid": (np.float64(61.5), np.float32(139.25)), "epoch": 3}, path)
    state = load_checkpoint(str(path))
    assert float(state["fid"][0]) == 61.5 and float(state["fid"][1]) == 139.25
    torch.save({"array": np.zeros(3)}, tmp_path / "array.pth")
    with pytest.raises(UserError, match="not a readable checkpoint"):
        load_checkpoint(str(tmp_path / "array.pth"))


def test_read_checkpoint_normalises_original_files(tmp_path):
    """An original file becomes the same record as this project's: converted networks, the model its
    layout fits, and its fid list as scores per direction (a pix2pix number under --direction)."""
    g_a = randomise(ResnetGenerator(ngf=8, mask=True), 1, bound=0.0)
    g_b = randomise(ResnetGenerator(ngf=8, mask=True), 2, bound=0.0)
    path = tmp_path / "model_1200.pth"
    original_cyclegan(path, g_a, g_b, to_original_mask_resnet, epoch=1200)
    record = read_checkpoint(str(path))
    assert (record.kind, record.model, record.stage, record.epoch, record.label) == \
        ("original", "cyclegan", "search", 1200, "1200")
    assert set(record.nets) == set(record.configs) == {"G_A", "G_B", "D_A", "D_B"}
    assert record.scores() == {"AtoB": 61.5, "BtoA": 139.3}
    same_function(g_b, record.generator("BtoA"), 32)
    record.check_model("mobilecyclegan")  # an original file does not say its model: nothing is refused

    g = randomise(UnetGenerator(ngf=8, num_downs=5, mask=True), 5, bound=0.0)
    original_pix2pix(tmp_path / "p.pth", g, to_original_unet)
    record = read_checkpoint(str(tmp_path / "p.pth"))
    assert record.model == "pix2pix" and record.scores("BtoA") == {"BtoA": 24.2}
    same_function(g, record.generator("BtoA"), 32)
