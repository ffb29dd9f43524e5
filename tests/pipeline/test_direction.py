"""A model remembers the --direction it was trained with: test.py and export.py take it from the
checkpoint, feed each generator the side it learned, and name every result after the domain it is
in (fake_B is always a B image); a given direction that has no meaning is one line, exit 2."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from models import MODELS
from pipeline.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from tests.conftest import ALIGNED, UNALIGNED, run_main, tiny_args
from util.errors import UserError

# a saturated output: G_A's images are all black, G_B's all white, so a result shows which generator made it
MARK = {"G_A": -100.0, "G_B": 100.0, "G": -100.0}


def _marked(source, target, drop_direction=False):
    """``source`` with each generator's head bias set to its MARK (and, with ``drop_direction``, without
    the recorded direction: the files of the original code and of early versions record none)."""
    state = load_checkpoint(str(source))
    for name, sd in state["nets"].items():
        if name in MARK:
            last = [k for k in sd if k.endswith(".bias")][-1]
            sd[last] = torch.full_like(sd[last], MARK[name])
    if drop_direction:
        del state["options"]["direction"]
    save_checkpoint(state, str(target))
    return str(target)


@pytest.fixture(scope="module", params=["cyclegan", "mobilecyclegan"])
def trained(request, tmp_path_factory, toy_root):
    """{direction: marked checkpoint} of a tiny two-generator model trained with that --direction."""
    root = tmp_path_factory.mktemp(request.param)
    files = {}
    for direction in ("AtoB", "BtoA"):
        argv = tiny_args(root, direction, model=request.param, dataroot=UNALIGNED, direction=direction)
        assert run_main("train", argv) == 0
        files[direction] = _marked(root / direction / "checkpoints" / "latest.pth", root / f"{direction}.pth")
    return request.param, files


def _test(tmp_path, model, ckpt, *extra, dataroot=None):
    """Run test.py on ``ckpt``; returns (exit status, {folder: {file: 'black' | 'white' | 'other'}})."""
    argv = tiny_args(tmp_path, "t", model=model, dataroot=dataroot or UNALIGNED)
    for flag in ("--crop_size", "--load_size"):  # taken from the checkpoint
        i = argv.index(flag)
        del argv[i:i + 2]
    status = run_main("test", argv + ["--load_path", ckpt, "--results_dir", str(tmp_path / "res"), "--ntest", "2",
                                      *extra])
    found = {}
    for page in (tmp_path / "res" / "t").glob("test_*"):
        for folder in (page / "images").iterdir():
            found[folder.name] = {f.name: _shade(f) for f in folder.iterdir()}
    return status, found


def _shade(path):
    with Image.open(path) as image:
        pixels = np.asarray(image)
    return "black" if pixels.max() == 0 else "white" if pixels.min() == 255 else "other"


def test_a_cyclegan_trained_BtoA_is_tested_the_way_it_learned(trained, tmp_path, capsys):
    model, files = trained
    status, found = _test(tmp_path, model, files["BtoA"])
    assert status == 0
    # G_A learned B -> A: it reads testB and its outputs are A images; G_B reads testA
    assert found["fake_A"] == {"testB_0000_fake_A.png": "black", "testB_0001_fake_A.png": "black"}
    assert found["fake_B"] == {"testA_0000_fake_B.png": "white", "testA_0001_fake_B.png": "white"}
    assert sorted(found["real_B"]) == ["testB_0000_real_B.png", "testB_0001_real_B.png"]
    assert sorted(found["real_A"]) == ["testA_0000_real_A.png", "testA_0001_real_A.png"]
    out = capsys.readouterr()
    assert "--direction BtoA taken from the options" in out.out + out.err
    # an AtoB-trained model is tested as before
    status, found = _test(tmp_path / "atob", model, files["AtoB"])
    assert status == 0 and set(found["fake_B"].values()) == {"black"} and set(found["fake_A"].values()) == {"white"}
    assert sorted(found["fake_B"]) == ["testA_0000_fake_B.png", "testA_0001_fake_B.png"]


@pytest.mark.parametrize("trained_as, given", [("BtoA", "AtoB"), ("AtoB", "BtoA")])
def test_a_direction_that_contradicts_the_checkpoint_is_one_line(trained, tmp_path, capsys, trained_as, given):
    model, files = trained
    status, found = _test(tmp_path, model, files[trained_as], "--direction", given)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert status == 2 and found == {}
    assert len(err) == 1 and f"trained with --direction {trained_as}" in err[0] and "drop --direction" in err[0], err


def test_the_trained_direction_given_again_is_accepted(trained, tmp_path):
    model, files = trained
    status, found = _test(tmp_path, model, files["BtoA"], "--direction", "BtoA")
    assert status == 0 and set(found["fake_A"].values()) == {"black"}


@pytest.mark.parametrize("given, folder, shade", [(None, "testB", "black"), ("BtoA", "testB", "black"),
                                                  ("AtoB", "testA", "white")])
def test_single_mode_runs_the_generator_that_maps_the_given_direction(trained, tmp_path, capsys, given, folder,
                                                                      shade):
    """With --dataset_mode single, --direction chooses the translation: the generator that maps it runs."""
    model, files = trained
    extra = ["--dataset_mode", "single"] + (["--direction", given] if given else [])
    status, found = _test(tmp_path, model, files["BtoA"], *extra)
    assert status == 0
    source, target = (given or "BtoA")[0], (given or "BtoA")[-1]
    assert set(found) == {f"real_{source}", f"fake_{target}"}
    assert found[f"fake_{target}"] == {f"{folder}_0000_fake_{target}.png": shade,
                                       f"{folder}_0001_fake_{target}.png": shade}
    out = capsys.readouterr()
    if given == "AtoB":  # said in one line
        assert [line for line in (out.out + out.err).splitlines() if "G_B of" in line and "maps A to B" in line]


def test_a_checkpoint_without_a_direction_is_tested_as_before(trained, tmp_path):
    """The original code's files and early ones of this project record no direction: --direction as given."""
    model, files = trained
    plain = _marked(files["BtoA"], tmp_path / "old.pth", drop_direction=True)
    status, found = _test(tmp_path, model, plain)
    assert status == 0 and found["fake_B"] == {"testA_0000_fake_B.png": "black", "testA_0001_fake_B.png": "black"}
    status, found = _test(tmp_path / "given", model, plain, "--direction", "BtoA")
    assert status == 0 and found["fake_A"] == {"testB_0000_fake_A.png": "black", "testB_0001_fake_A.png": "black"}


def _onnx_shade(path):
    from pipeline.export import onnx_session

    out = onnx_session(path).run(None, {"input": np.zeros((1, 3, 32, 32), dtype=np.float32)})[0]
    return "black" if out.max() <= -0.99 else "white" if out.min() >= 0.99 else "other"


def test_export_writes_the_generator_that_maps_the_direction(trained, tmp_path, caplog):
    pytest.importorskip("onnxruntime")
    import logging

    model, files = trained
    ckpt = str(tmp_path / "btoa.pth")
    with open(files["BtoA"], "rb") as src, open(ckpt, "wb") as dst:
        dst.write(src.read())
    with caplog.at_level(logging.INFO):
        assert run_main("export", ["--load_path", ckpt, "--no_check"]) == 0  # the trained direction
        assert _onnx_shade(str(tmp_path / "btoa_BtoA.onnx")) == "black"  # G_A, which maps B to A
        assert not (tmp_path / "btoa_AtoB.onnx").exists()
        caplog.clear()
        assert run_main("export", ["--load_path", ckpt, "--no_check", "--direction", "AtoB"]) == 0
    assert _onnx_shade(str(tmp_path / "btoa_AtoB.onnx")) == "white"  # G_B, which maps A to B
    said = [r.getMessage() for r in caplog.records if "G_B" in r.getMessage()]
    assert len(said) == 1 and "maps A to B" in said[0] and "trained with --direction BtoA" in said[0]


def test_pix2pix_trained_BtoA_files_its_outputs_as_A_images(tmp_path, toy_root):
    assert run_main("train", tiny_args(tmp_path, "p", model="pix2pix", direction="BtoA")) == 0
    ckpt = _marked(tmp_path / "p" / "checkpoints" / "latest.pth", tmp_path / "p.pth")
    status, found = _test(tmp_path, "pix2pix", ckpt, dataroot=ALIGNED)
    assert status == 0 and set(found) == {"real_B", "fake_A"}
    assert found["fake_A"] == {"test_0000_fake_A.png": "black", "test_0001_fake_A.png": "black"}
    status, found = _test(tmp_path / "single", "pix2pix", ckpt, "--dataset_mode", "single",
                          dataroot=os.path.join(ALIGNED, "test"))
    assert status == 0 and set(found) == {"real_B", "fake_A"}


def _record(model, direction):
    return Checkpoint(path="x.pth", kind="training", model=model, stage="train", version=2, epoch=1,
                      options={"direction": direction} if direction else {}, nets={}, configs={}, metric=None,
                      state={})


@pytest.mark.parametrize("model", sorted(MODELS))
def test_table_direction_names_the_generator_of_each_translation(model):
    two = len(MODELS[model].generator_names) > 1
    for trained in (None, "AtoB", "BtoA"):
        record = _record(model, trained)
        for direction in ("AtoB", "BtoA"):
            swapped = two and trained == "BtoA"
            assert record.table_direction(direction) == (direction if not swapped else
                                                         {"AtoB": "BtoA", "BtoA": "AtoB"}[direction])
        assert record.fit_direction("AtoB", False) == (trained or "AtoB")
        if trained == "BtoA" and not two:
            with pytest.raises(UserError, match="use --direction BtoA"):
                record.fit_direction("AtoB", True)
        else:
            assert record.fit_direction("AtoB", True) == "AtoB"


def test_a_fine_tuned_model_remembers_the_search_direction(tmp_path, toy_root):
    root = tmp_path / "exp"
    assert run_main("train", tiny_args(root, "teacher", direction="BtoA")) == 0
    assert run_main("train", tiny_args(root, "search", mask=True, direction="BtoA")) == 0
    argv = tiny_args(root, "student", mask=True, finetune=True,
                     load_path=root / "search" / "checkpoints" / "latest.pth",
                     pretrain_path=root / "teacher" / "checkpoints" / "latest.pth")
    assert run_main("prune", argv) == 0
    for name in ("model_0.pth", "latest.pth"):
        assert load_checkpoint(str(root / "student" / "checkpoints" / name))["options"]["direction"] == "BtoA"
    # and test.py reads it from the fine-tuned file: the slim G_A reads testB
    ckpt = _marked(root / "student" / "checkpoints" / "latest.pth", tmp_path / "student.pth")
    status, found = _test(tmp_path, "cyclegan", ckpt)
    assert status == 0 and found["fake_A"] == {"testB_0000_fake_A.png": "black", "testB_0001_fake_A.png": "black"}
