"""pytorch-CycleGAN-and-pix2pix ("upstream") checkpoints through the one reader
(pipeline.checkpoint.read_checkpoint): test.py writes the images upstream's forward gives (eval mode, to
within 1/255), export.py writes ONNX files that match it to 1e-4 in onnxruntime, and what the project
cannot represent is refused in one line.

The networks are the upstream-layout modules of tests/models/test_upstream.py, saved the way upstream
saves them (bare state dicts, ``<epoch>_net_<name>.pth`` in a run folder, or one generator in a
model-zoo file); the images are written here at exactly the size tested, so that no resize stands
between the file and the network.
"""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from data.transforms import to_tensor
from pipeline.checkpoint import read_checkpoint
from report.image import tensor2im
from tests.conftest import assert_user_error, randomise, run_main, run_script
from tests.models.test_upstream import (UpstreamNLayerD, UpstreamPixelD, UpstreamResnet, UpstreamUnet, made,
                                        save_run, with_stale_instance_statistics)
from util.errors import UserError

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def trained_like(net, seed):
    """``net`` with upstream's initialisation (conv weights N(0, 0.02)), random conv biases and BatchNorm
    parameters and statistics, in eval mode: activations of a trained network's size (larger weights
    make a BatchNorm network's activations grow to 1e4 and saturate every output)."""
    torch.manual_seed(seed)
    for module in net.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            torch.nn.init.normal_(module.weight, 0.0, 0.02)
    return randomise(net, seed)


def write_images(folder, count, size, seed, width=None):
    """``count`` random RGB PNGs of ``size`` x ``size`` px (``width`` x ``size`` when given) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        pixels = rng.integers(0, 256, (size, width or size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img_{i}.png")
    return folder


def upstream_image(net, path, crop=None):
    """What upstream's test writes for the image at ``path`` (eval mode): its tensor2im of the output;
    ``crop`` (left, upper, right, lower) takes one half of an aligned pair."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        if crop is not None:
            image = image.crop(crop)
        x = to_tensor(image)[None]
    with torch.no_grad():
        return tensor2im(net.eval()(x)).astype(int)


def written(path):
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).astype(int)


def test_args(dataroot, load_path, results, *extra):
    return ["--dataroot", str(dataroot), "--load_path", str(load_path), "--results_dir", str(results),
            "--name", "up", "--gpu_ids", "-1", "--metric", "none", "--num_threads", "0", *map(str, extra)]


test_args.__test__ = False  # a helper, not a test


@pytest.fixture(scope="module")
def cyclegan_run(tmp_path_factory):
    """An upstream cycle_gan run folder (resnet_6blocks, InstanceNorm, ngf 8) with latest and epoch-5
    files; D_B is a PixelGAN (--netD pixel), which test.py and export.py never read."""
    root = tmp_path_factory.mktemp("cyclegan_run")
    run = root / "checkpoints" / "horse2zebra"
    nets = {"G_A": made(UpstreamResnet(n_blocks=6), 1), "G_B": made(UpstreamResnet(n_blocks=6), 2),
            "D_A": made(UpstreamNLayerD(), 3), "D_B": made(UpstreamPixelD(), 4)}
    save_run(run, nets)
    epoch5 = {"G_A": made(UpstreamResnet(n_blocks=6), 5), "G_B": made(UpstreamResnet(n_blocks=6), 6)}
    save_run(run, epoch5, epoch="5")
    data = root / "data"
    for side, seed in (("A", 0), ("B", 1)):
        write_images(data / f"test{side}", 2, 32, seed)
    return {"run": run, "nets": nets, "epoch5": epoch5, "data": data, "root": root}


def test_cyclegan_run_folder_tests_as_upstream_computes(cyclegan_run, tmp_path):
    run, nets, data = cyclegan_run["run"], cyclegan_run["nets"], cyclegan_run["data"]
    assert run_main("test", test_args(data, run, tmp_path, "--crop_size", 32)) == 0
    page = tmp_path / "up" / "test_latest"
    for side, fake, net in (("A", "fake_B", nets["G_A"]), ("B", "fake_A", nets["G_B"])):
        for source in sorted((data / f"test{side}").iterdir()):
            got = written(page / "images" / fake / f"{source.stem}_{fake}.png")
            assert np.abs(got - upstream_image(net, source)).max() <= 1  # 1/255
    report = json.loads((page / "metrics.json").read_text())
    assert report["checkpoint"] == str(run) and set(report["macs"]) == {"AtoB", "BtoA"}


def test_one_file_of_an_epoch_reads_its_siblings(cyclegan_run, tmp_path):
    run, epoch5, data = cyclegan_run["run"], cyclegan_run["epoch5"], cyclegan_run["data"]
    record = read_checkpoint(run / "5_net_G_B.pth", "--load_path", generators_only=True)
    assert (record.kind, record.model, record.epoch, record.label) == ("upstream", "cyclegan", 5, "5")
    assert set(record.nets) == {"G_A", "G_B"} and record.files["G_A"] == str(run / "5_net_G_A.pth")
    assert run_main("test", test_args(data, run / "5_net_G_B.pth", tmp_path, "--crop_size", 32,
                                      "--direction", "BtoA", "--dataset_mode", "single")) == 0
    source = sorted((data / "testB").iterdir())[0]
    got = written(tmp_path / "up" / "test_5" / "images" / "fake_A" / f"{source.stem}_fake_A.png")  # B -> A
    assert np.abs(got - upstream_image(epoch5["G_B"], source)).max() <= 1


def test_every_net_is_read_where_discriminators_are_needed(cyclegan_run):
    """The teacher and --init_path read the discriminators too: a PixelGAN is refused there, naming it."""
    with pytest.raises(UserError, match=r"\[D_B\]: a PixelGAN discriminator \(pytorch-CycleGAN-and-pix2pix's "
                                        r"--netD pixel\) is not supported"):
        read_checkpoint(cyclegan_run["run"], "--pretrain_path")


def test_model_zoo_generator_with_stale_statistics_runs_in_the_given_direction(tmp_path):
    """A zoo file (one generator, InstanceNorm statistics of PyTorch < 0.4, DataParallel prefixes) under
    the default --model cyclegan: single-image data of --direction's side, as upstream's --model test."""
    net = made(UpstreamResnet(n_blocks=9), 7)
    zoo = tmp_path / "checkpoints" / "horse2zebra_pretrained" / "latest_net_G.pth"
    zoo.parent.mkdir(parents=True)
    torch.save({f"module.{k}": v for k, v in with_stale_instance_statistics(net, net.state_dict()).items()}, zoo)
    data = tmp_path / "data"
    write_images(data / "testA", 1, 32, 0)
    write_images(data / "testB", 2, 32, 1)
    assert run_main("test", test_args(data, zoo, tmp_path / "res", "--crop_size", 32, "--direction", "BtoA")) == 0
    page = tmp_path / "res" / "up" / "test_latest"
    outputs = sorted((page / "images" / "fake_A").iterdir())  # B -> A: A-domain images
    assert len(outputs) == 2  # the testB images, and no others
    for source, out in zip(sorted((data / "testB").iterdir()), outputs):
        assert np.abs(written(out) - upstream_image(net, source)).max() <= 1
    assert set(json.loads((page / "metrics.json").read_text())["macs"]) == {"BtoA"}


def test_batchnorm_unet_with_dropout_on_aligned_pairs(tmp_path):
    """A pix2pix run (unet_128, BatchNorm, dropout, saved from DataParallel) on aligned pairs: eval mode
    (dropout off, running statistics), the A half in, scored against the B half."""
    g = trained_like(UpstreamUnet(num_downs=7, norm="batch", dropout=True), 8)
    save_run(tmp_path / "facades", {"G": g, "D": made(UpstreamNLayerD(6, norm="batch"), 9)}, prefix="module.")
    data = tmp_path / "data"
    write_images(data / "test", 2, 128, 2, width=256)
    assert run_main("test", test_args(data, tmp_path / "facades" / "latest_net_D.pth", tmp_path / "res",
                                      "--model", "pix2pix", "--crop_size", 128)) == 0
    page = tmp_path / "res" / "up" / "test_latest"
    for source in sorted((data / "test").iterdir()):
        got = written(page / "images" / "fake_B" / f"{source.stem}_fake_B.png")
        assert np.abs(got - upstream_image(g, source, crop=(0, 0, 128, 128))).max() <= 1
    assert "L1" in json.loads((page / "metrics.json").read_text())


def onnx_output(path, x):
    from pipeline.export import onnx_session

    return torch.from_numpy(onnx_session(str(path)).run(None, {"input": x.numpy()})[0])


@pytest.mark.parametrize("case", ["run folder BtoA", "zoo file", "batchnorm unet"])
def test_export_matches_upstream_in_onnxruntime(cyclegan_run, tmp_path, case):
    if case == "run folder BtoA":
        load, net, size, extra = cyclegan_run["run"], cyclegan_run["nets"]["G_B"], 32, ["--direction", "BtoA"]
    elif case == "zoo file":
        net = trained_like(UpstreamResnet(2, 3, ngf=4, n_blocks=9, norm="batch", dropout=True), 3)
        size, extra = 32, []
        load = tmp_path / "zoo.pth"
        torch.save(net.state_dict(), load)
    else:
        net, size, extra = trained_like(UpstreamUnet(num_downs=7, norm="batch", dropout=True), 4), 128, []
        save_run(tmp_path / "run", {"G": net})
        load = tmp_path / "run"
    out = tmp_path / "g.onnx"
    assert run_main("export", ["--load_path", str(load), "--size", str(size), "--output", str(out), *extra]) == 0
    channels = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d)).in_channels
    x = torch.rand(2, channels, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        want = net.eval()(x)
    assert want.std() > 0.01
    assert (onnx_output(out, x) - want).abs().max() <= 1e-4


def test_export_of_a_run_folder_writes_inside_it_by_default(cyclegan_run):
    assert run_main("export", ["--load_path", str(cyclegan_run["run"]), "--size", "32", "--no_check"]) == 0
    written_file = cyclegan_run["run"] / "horse2zebra_AtoB.onnx"
    assert written_file.is_file()
    written_file.unlink()


def test_variants_this_project_cannot_represent_are_one_line(tmp_path):
    """--norm none and up-sampling without transposed convs: one line naming the variant, exit 2,
    nothing written; a folder that is no upstream run keeps its own message."""
    data = write_images(tmp_path / "data" / "testA", 1, 32, 0).parent
    none = tmp_path / "none.pth"
    torch.save(UpstreamResnet(n_blocks=6, norm="none").state_dict(), none)
    line = assert_user_error(run_script("test", test_args(data, none, tmp_path / "res", "--crop_size", 32)))
    assert "a generator without norm layers (pytorch-CycleGAN-and-pix2pix's --norm none) is not supported" in line
    save_run(tmp_path / "resize", {"G_A": UpstreamResnet(n_blocks=6, resize=True)})
    line = assert_user_error(run_script("export", ["--load_path", tmp_path / "resize", "--size", 32]))
    assert "no transposed convolution at model.16, where upstream's ResnetGenerator up-samples" in line
    (tmp_path / "other").mkdir()
    line = assert_user_error(run_script("test", test_args(data, tmp_path / "other", tmp_path / "res")))
    assert "is a folder, not a checkpoint file" in line and "pytorch-CycleGAN-and-pix2pix run folder" in line
    assert not (tmp_path / "res").exists() and not list((tmp_path / "resize").glob("*.onnx"))


def test_prune_refuses_an_upstream_model_and_names_the_search_that_comes_first(cyclegan_run, tmp_path, capsys):
    argv = ["--dataroot", str(cyclegan_run["data"]), "--mask", "--load_path", str(cyclegan_run["run"]),
            "--checkpoints_dir", str(tmp_path), "--name", "p", "--gpu_ids", "-1", "--metric", "none"]
    assert run_main("prune", argv) == 2
    err = capsys.readouterr().err
    assert "is a plain pytorch-CycleGAN-and-pix2pix model, not a mask search" in err and "--init_path" in err
    assert not (tmp_path / "p").exists()
