"""export.py: ONNX and TorchScript files of pruned generators compute what PyTorch computes (to 1e-4,
in onnxruntime), with a dynamic batch axis and the stated input-size rule; bad input is one line."""
import json
import logging
import os
import re

import pytest
import torch

from tests.conftest import assert_user_error, randomise, run_main, run_script
from models.layers import masks
from compress.pruning import prune_generator
from models.families.mobile_resnet import MobileResnetGenerator
from models.families.resnet import ResnetGenerator
from models.families.unet import UnetGenerator
from pipeline.checkpoint import FORMAT, VERSION, load_checkpoint, save_checkpoint
from pipeline.export import RowColumnConv2d, onnx_session, size_multiple, split_narrow_convs

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

SIZE = 32
TOLERANCE = 1e-4  # the parity the deployment promises (float rounding of a different kernel library)


def masked_generator(family, seed):
    """A tiny settled mask generator (bound 0) whose pruning removes channels (and, for the ResNet
    and the mobile ResNet, two residual blocks; for the mobile ResNet, residual-stream channels)."""
    if family == "resnet":
        net = ResnetGenerator(ngf=8, n_blocks=6, mask=True)
    elif family == "mobile":
        net = MobileResnetGenerator(ngf=8, n_blocks=6, mask=True)
    else:
        net = UnetGenerator(ngf=8, num_downs=5, mask=True)
    randomise(net, seed, bound=0.0)
    if family in ("resnet", "mobile"):
        with torch.no_grad():
            for i in (1, 4):
                net.blocks[str(i)].conv1.mask.mask_weight.fill_(-1.0)
            if family == "mobile":  # a third of the residual stream off: its depthwise filters go too
                for name, m in masks(net).items():
                    if name == "down2.mask" or name.endswith("conv2.mask"):
                        m.mask_weight[::3] = -1.0
    return net


def pruned_generator(family, seed=0):
    slim, report = prune_generator(masked_generator(family, seed))
    assert sum(report["widths"].values()) < sum(masked_generator(family, seed).widths.values())
    return slim.eval()


def write_checkpoint(path, nets, model="cyclegan"):
    state = {"format": FORMAT, "version": VERSION, "kind": "pruned", "model": model, "stage": "pruned", "epoch": 0,
             "nets": {k: n.state_dict() for k, n in nets.items()}, "configs": {k: n.config() for k, n in nets.items()}}
    save_checkpoint(state, str(path))
    return str(path)


def random_batch(n, size=SIZE, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


# family: (model of the checkpoint, its AtoB generator's name, size multiple)
FAMILIES = {"resnet": ("cyclegan", "G_A", 4), "unet": ("pix2pix", "G", 32), "mobile": ("mobilecyclegan", "G_A", 4)}


@pytest.mark.parametrize("family", ["resnet", "unet", "mobile"])
def test_onnx_matches_pytorch_for_pruned_generators(tmp_path, family):
    """The pruned generator in onnxruntime equals PyTorch to 1e-4, at batch sizes other than the
    traced one (the batch axis is dynamic)."""
    net = pruned_generator(family)
    model, name, multiple = FAMILIES[family]
    ckpt = write_checkpoint(tmp_path / "pruned.pth", {name: net}, model)
    out = tmp_path / "g.onnx"
    assert run_main("export", ["--load_path", ckpt, "--format", "onnx", "--size", str(SIZE), "--output", str(out)]) == 0
    session = onnx_session(str(out), threads=1)
    for batch in (1, 3):
        x = random_batch(batch)
        with torch.no_grad():
            expected = net(x)
        got = torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
        assert got.shape == expected.shape
        assert (got - expected).abs().max().item() <= TOLERANCE
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["size_multiple"] == str(size_multiple(net)) == str(multiple)
    assert meta["input_size"] == f"{SIZE}x{SIZE}"


@pytest.mark.parametrize("conv", [torch.nn.Conv2d(6, 3, 7), torch.nn.Conv2d(5, 2, (3, 5), padding=(1, 2), bias=False),
                                  torch.nn.Conv2d(4, 1, 3, padding=1)], ids=["head", "padded-no-bias", "one-out"])
def test_row_column_split_computes_the_convolution(conv):
    """The split form of a narrow convolution (as the ONNX export writes it) is the same function."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(conv, torch.nn.Tanh())
    split = split_narrow_convs(net)
    assert isinstance(split[0], RowColumnConv2d) and net[0] is conv  # a copy; the original is kept
    x = torch.randn(2, conv.in_channels, 19, 23)
    with torch.no_grad():
        assert (split(x) - net(x)).abs().max().item() < 1e-5


@pytest.mark.parametrize("conv", [torch.nn.Conv2d(8, 3, 3, stride=2), torch.nn.Conv2d(8, 8, 3),
                                  torch.nn.Conv2d(6, 3, 3, groups=3), torch.nn.Conv2d(8, 3, 1),
                                  torch.nn.Conv2d(8, 3, 3, padding=1, padding_mode="reflect")],
                         ids=["strided", "wide", "grouped", "1x1", "reflect"])
def test_only_stride_1_narrow_convolutions_are_split(conv):
    assert type(split_narrow_convs(torch.nn.Sequential(conv))[0]) is torch.nn.Conv2d


def test_onnx_export_writes_the_head_split(tmp_path):
    """The ResNet's 7x7 RGB head is written as a 1x7 and a grouped 7x1 convolution (its original form
    ran at a sixth of the other convolutions' rate in onnxruntime)."""
    net = pruned_generator("resnet")
    ckpt = write_checkpoint(tmp_path / "pruned.pth", {"G_A": net})
    out = tmp_path / "g.onnx"
    assert run_main("export", ["--load_path", ckpt, "--format", "onnx", "--size", str(SIZE), "--output", str(out)]) == 0
    shapes = []
    for node in onnx.load(str(out)).graph.node:
        if node.op_type == "Conv":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            shapes.append((list(attrs["kernel_shape"]), attrs["group"]))
    wide_7x7 = [m for m in net.modules()
                if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (7, 7) and m.out_channels > 4]
    assert ([7, 1], 3) in shapes and ([1, 7], 1) in shapes
    assert sum(k == [7, 7] for k, _ in shapes) == len(wide_7x7)


@pytest.mark.parametrize("family", ["resnet", "unet", "mobile"])
def test_torchscript_matches_pytorch_at_any_batch_and_allowed_size(tmp_path, family):
    net = pruned_generator(family, seed=3)
    model, name, _ = FAMILIES[family]
    cyclegan = name == "G_A"  # export the BtoA generator of a CycleGAN checkpoint
    ckpt = write_checkpoint(tmp_path / "pruned.pth", {"G_B" if cyclegan else name: net}, model)
    out = tmp_path / "g.pt"
    direction = "BtoA" if cyclegan else "AtoB"
    assert run_main("export", ["--load_path", ckpt, "--direction", direction, "--format", "torchscript",
                               "--size", str(SIZE), "--output", str(out)]) == 0
    extra = {"metadata.json": ""}
    loaded = torch.jit.load(str(out), _extra_files=extra)
    assert json.loads(extra["metadata.json"])["size_multiple"] == size_multiple(net)
    for batch, size in ((2, SIZE), (1, 2 * SIZE)):  # the traced graph follows the input's size
        x = random_batch(batch, size)
        with torch.no_grad():
            assert (loaded(x) - net(x)).abs().max().item() <= TOLERANCE
    assert not loaded(random_batch(1)).requires_grad  # .numpy() works without .detach()


def test_torchscript_refuses_an_input_outside_the_size_rule(tmp_path):
    net = pruned_generator("resnet", seed=5)
    ckpt = write_checkpoint(tmp_path / "pruned.pth", {"G_A": net})
    out = tmp_path / "g.pt"
    assert run_main("export", ["--load_path", ckpt, "--format", "torchscript", "--size", str(SIZE), "--output",
                               str(out), "--no_check"]) == 0
    loaded = torch.jit.load(str(out))
    multiple = size_multiple(net)
    # one side off the multiple, too small, wrong channels: each an error that states the rule
    for shape, words in (((1, 3, SIZE + 2, SIZE), f"multiples of {multiple}"), ((1, 3, multiple, multiple), "at least"),
                         ((1, 1, SIZE, SIZE), "[N, 3, H, W]")):
        with pytest.raises(torch.jit.Error, match=re.escape(words)):
            loaded(torch.zeros(shape))


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exported_file_has_the_permissions_of_the_umask(tmp_path, fmt):
    ckpt = write_checkpoint(tmp_path / "pruned.pth", {"G_A": pruned_generator("resnet", seed=6)})
    out = tmp_path / f"g.{fmt}"
    old = os.umask(0o022)
    try:
        assert run_main("export", ["--load_path", ckpt, "--format", fmt, "--size", str(SIZE), "--output", str(out),
                                   "--no_check"]) == 0
    finally:
        os.umask(old)
    assert os.stat(out).st_mode & 0o777 == 0o644  # mkstemp alone would leave 0o600
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]


def test_dynamic_size_onnx_accepts_other_multiples(tmp_path):
    net = pruned_generator("resnet", seed=4)
    ckpt = write_checkpoint(tmp_path / "pruned.pth", {"G_A": net})
    out = tmp_path / "g.onnx"
    assert run_main("export", ["--load_path", ckpt, "--size", str(SIZE), "--dynamic_size", "--output", str(out),
                               "--no_check"]) == 0
    x = random_batch(2, 44)  # 44 = 11 x 4: a ResNet needs multiples of 4 only
    session = onnx_session(str(out), threads=1)
    got = torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
    with torch.no_grad():
        assert (got - net(x)).abs().max().item() <= TOLERANCE
    # 30 px would come back as 32 px: refused instead, by a node whose name states the rule
    with pytest.raises(Exception, match="input_H_and_W_must_be_multiples_of_4"):
        session.run(None, {"input": random_batch(1, 30).numpy()})


def test_settled_mask_checkpoint_is_pruned_on_export(tmp_path):
    """A search checkpoint at bound 0 exports as the slim generator, which computes what the masked one does."""
    masked = masked_generator("resnet", seed=5)
    ckpt = write_checkpoint(tmp_path / "search.pth", {"G_A": masked})
    out = run_main_output(["--load_path", ckpt, "--size", str(SIZE), "--output", str(tmp_path / "g.onnx")])
    graph = onnx.load(out).graph
    widths = {n.name: n for n in graph.initializer}
    assert not any("mask" in name for name in widths)  # no mask tensors: the pruned architecture
    x = random_batch(2)
    got = torch.from_numpy(onnx_session(out, threads=1).run(None, {"input": x.numpy()})[0])
    with torch.no_grad():
        assert (got - masked(x)).abs().max().item() <= TOLERANCE


def run_main_output(argv):
    assert run_main("export", argv) == 0
    return argv[argv.index("--output") + 1]


def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    out = tmp_path / "g.onnx"
    line = assert_user_error(run_script("export", ["--load_path", garbage, "--output", out]))
    assert "garbage.pth" in line

    def error_line(argv):  # in-process for speed: exit status 2 and one line on stderr
        capsys.readouterr()
        assert run_main("export", [str(a) for a in argv] + ["--output", str(out)]) == 2
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), lines
        return lines[0]

    assert "does not exist" in error_line(["--load_path", tmp_path / "missing.pth"])
    unsettled = masked_generator("resnet", seed=6)
    for m in masks(unsettled).values():
        m.update(0.3)
    assert "not settled" in error_line(["--load_path", write_checkpoint(tmp_path / "search.pth", {"G_A": unsettled})])
    ckpt = write_checkpoint(tmp_path / "pruned.pth", {"G_A": pruned_generator("resnet")})
    assert "multiple of 4" in error_line(["--load_path", ckpt, "--size", "30"])
    assert "at least 8" in error_line(["--load_path", ckpt, "--size", "4"])
    assert "no generator for BtoA" in error_line(["--load_path", ckpt, "--direction", "BtoA"])
    assert "--format" in error_line(["--load_path", ckpt, "--format", "tflite"])
    assert "--opset 5 is not supported" in error_line(["--load_path", ckpt, "--opset", "5"])
    settled = write_checkpoint(tmp_path / "settled.pth", {"G_A": masked_generator("resnet", seed=7)})
    assert "multiple of 4" in error_line(["--load_path", settled, "--size", "30"])  # refused before pruning
    assert not os.path.exists(out)
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]


def test_pix2pix_exports_the_direction_it_was_trained_with(tmp_path, capsys):
    """A pix2pix generator maps only its trained side: the other --direction is one line, exit 2; no
    --direction takes the trained one (the output is named after it)."""
    net = pruned_generator("unet", seed=6)
    ckpt = write_checkpoint(tmp_path / "pruned.pth", {"G": net}, "pix2pix")
    state = load_checkpoint(ckpt)
    state["options"] = {"direction": "BtoA"}
    save_checkpoint(state, ckpt)
    argv = ["--load_path", ckpt, "--size", str(SIZE), "--no_check"]
    assert run_main("export", argv + ["--direction", "AtoB"]) == 2
    assert "was trained with --direction BtoA" in capsys.readouterr().err
    assert not (tmp_path / "pruned_AtoB.onnx").exists()
    assert run_main("export", argv) == 0
    assert (tmp_path / "pruned_BtoA.onnx").is_file()


def test_output_that_cannot_be_written_and_exported_files_as_checkpoints_are_one_line(tmp_path, capsys, caplog):
    ckpt = write_checkpoint(tmp_path / "pruned.pth", {"G_A": pruned_generator("resnet", seed=8)})
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    argv = ["--load_path", ckpt, "--size", str(SIZE), "--no_check"]
    assert run_main("export", argv + ["--output", str(blocker / "g.onnx")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    scripted = tmp_path / "g.torchscript.pt"
    assert run_main("export", argv + ["--format", "torchscript", "--output", str(scripted)]) == 0
    capsys.readouterr()
    assert run_main("export", ["--load_path", str(scripted), "--output", str(tmp_path / "g.onnx")]) == 2
    assert "exported TorchScript module" in capsys.readouterr().err
    with caplog.at_level(logging.WARNING, logger="dmad"):
        assert run_main("export", argv + ["--format", "torchscript", "--output", str(tmp_path / "g.onnx")]) == 0
    assert "extension of the onnx format" in caplog.text


def test_an_output_that_is_a_checkpoint_is_refused_and_left_as_it_was(tmp_path, capsys, caplog):
    """--output naming --load_path, or any other checkpoint, is one line, exit 2, the file untouched; an
    earlier export (ONNX or TorchScript) at --output is overwritten; a .pth name is warned about."""
    ckpt = write_checkpoint(tmp_path / "pruned.pth", {"G_A": pruned_generator("resnet", seed=9)})
    other = write_checkpoint(tmp_path / "other.pth", {"G_A": pruned_generator("resnet", seed=10)})
    argv = ["--load_path", ckpt, "--size", str(SIZE), "--no_check"]
    for target, words in ((ckpt, "is the checkpoint --load_path"), (other, "is a checkpoint")):
        before = open(target, "rb").read()
        assert run_main("export", argv + ["--output", target]) == 2
        assert words in capsys.readouterr().err
        assert open(target, "rb").read() == before
    for fmt, name in (("onnx", "g.onnx"), ("torchscript", "g.torchscript.pt")):
        out = tmp_path / name
        assert run_main("export", argv + ["--format", fmt, "--output", str(out)]) == 0
        assert run_main("export", argv + ["--format", fmt, "--output", str(out)]) == 0  # an export: overwritten
    with caplog.at_level(logging.WARNING, logger="dmad"):
        assert run_main("export", argv + ["--output", str(tmp_path / "new.pth")]) == 0
    assert "extension of a checkpoint" in caplog.text


def test_size_defaults_to_the_crop_size_the_checkpoint_was_trained_with(tmp_path):
    ckpt = write_checkpoint(tmp_path / "pruned.pth", {"G_A": pruned_generator("resnet", seed=11)})
    state = load_checkpoint(ckpt)
    state["options"] = {"crop_size": 40}
    save_checkpoint(state, ckpt)
    out = tmp_path / "g.onnx"
    assert run_main("export", ["--load_path", ckpt, "--output", str(out)]) == 0
    dims = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[2:]] == [40, 40]
    state["options"] = {}  # files that do not record it (the original code's): 256
    save_checkpoint(state, ckpt)
    assert run_main("export", ["--load_path", ckpt, "--output", str(out), "--no_check"]) == 0
    dims = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[2:]] == [256, 256]


def test_a_large_difference_to_pytorch_is_warned_with_its_likely_causes(tmp_path, monkeypatch, caplog):
    import export
    import pipeline.export

    ckpt = write_checkpoint(tmp_path / "pruned.pth", {"G_A": pruned_generator("resnet", seed=12)})
    monkeypatch.setattr(pipeline.export, "max_difference", lambda *args, **kwargs: 1e-3)
    with caplog.at_level(logging.WARNING, logger="dmad"):
        assert export.main(["--load_path", ckpt, "--size", str(SIZE), "--output", str(tmp_path / "g.onnx")]) \
            == str(tmp_path / "g.onnx")
    assert "1.00e-03 (more than 0.0001" in caplog.text and "instance normalisation" in caplog.text
