"""Tests of prune.py (pipeline/prune.py): a search checkpoint pruned end to end, the direction and
sizes taken from the search, the fine-tune hook, user errors before anything is written, and the
console summary beside the full per-layer log (the pruning itself: tests/compress/test_pruning.py)."""
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import pipeline.prune
import prune
from pipeline.checkpoint import is_native, load_checkpoint, load_generator
from tests.conftest import REPO, hash_tree, run_main, tiny_args
from tests.helpers import assert_equivalent, prune_args, search_checkpoint

ROOT = Path(REPO)
UNALIGNED = ROOT / "datasets" / "toy" / "unaligned"
ALIGNED = ROOT / "datasets" / "toy" / "aligned"


@pytest.fixture(scope="module", autouse=True)
def toy_data():
    if not (UNALIGNED / "testA").is_dir() or not (ALIGNED / "train").is_dir():
        subprocess.run([sys.executable, str(ROOT / "datasets" / "make_toy_dataset.py")], cwd=ROOT, check=True)


# ------------------------------------------------------------------------------------------ prune.py

def test_prune_py_cyclegan_end_to_end(tmp_path):
    ckpt = tmp_path / "search.pth"
    gens, _ = search_checkpoint(ckpt)
    prune.main(prune_args(tmp_path, ckpt))
    out = tmp_path / "exp" / "pruned" / "checkpoints" / "model_0.pth"
    state = load_checkpoint(str(out))
    assert is_native(state) and state["stage"] == "pruned" and state["epoch"] == 0 and state["model"] == "cyclegan"
    assert set(state["nets"]) == {"G_A", "G_B", "D_A", "D_B"}
    for name in ("G_A", "G_B"):
        assert not any("mask" in k or "bound" in k for k in state["nets"][name])
        assert state["configs"][name]["mask"] is False
        assert state["configs"][name]["widths"]["blocks.4"] == 0 and len(state["cfg"][name]) == 23
        assert state["macs"][name] == state["prune_report"][name]["macs_after"] > 0
    torch.testing.assert_close(state["nets"]["D_A"]["layers.conv1.weight"],
                               load_checkpoint(str(ckpt))["nets"]["D_A"]["layers.conv1.weight"])
    for direction, name in (("AtoB", "G_A"), ("BtoA", "G_B")):
        slim = load_generator(str(out), direction)
        assert "4" not in slim.blocks
        assert_equivalent(gens[name], slim, 32)
    log_text = (tmp_path / "exp" / "pruned" / "logger.log").read_text()
    assert "Prune done!!!" in log_text and "netG_B | Params:" in log_text and "MACs Prune Ratio:" in log_text
    assert "After Training. AtoB FID: 50.00" in log_text

    # test.py evaluates the pruned checkpoint
    results = tmp_path / "results"
    run = subprocess.run([sys.executable, "test.py", "--dataroot", str(UNALIGNED), "--model", "cyclegan",
                          "--load_path", str(out), "--name", "pruned", "--results_dir", str(results),
                          "--metric", "none", "--display_id", "0", "--crop_size", "32", "--load_size", "32",
                          "--gpu_ids", "-1", "--max_dataset_size", "2", "--num_threads", "0"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert (results / "pruned" / "test_0" / "index.html").is_file()


def test_prune_py_takes_the_direction_of_the_search_and_refuses_another(tmp_path, capsys):
    ckpt = tmp_path / "search.pth"
    search_checkpoint(ckpt, model="pix2pix", options={"direction": "BtoA"})
    # a B->A generator run on A images would translate the wrong side, silently
    assert run_main("prune", prune_args(tmp_path, ckpt, "pix2pix", "--direction", "AtoB")) == 2
    assert "the search was trained with --direction BtoA" in capsys.readouterr().err
    assert not (tmp_path / "exp").exists()
    assert run_main("prune", prune_args(tmp_path, ckpt, "pix2pix")) == 0
    out = tmp_path / "exp" / "pruned" / "checkpoints" / "model_0.pth"
    assert load_checkpoint(str(out))["options"]["direction"] == "BtoA"


@pytest.mark.parametrize("threshold", [0, 2])
def test_a_threshold_that_changes_the_output_is_said(tmp_path, capsys, threshold):
    ckpt = tmp_path / "search.pth"
    search_checkpoint(ckpt)
    assert run_main("prune", prune_args(tmp_path, ckpt, "cyclegan", "--threshold", str(threshold))) == 0
    captured = capsys.readouterr()
    said = "do not give the masked ones' output" in captured.out + captured.err
    assert said == (threshold > 0)


def test_a_teacher_that_does_not_fit_stops_prune_py_before_it_writes(tmp_path, capsys):
    ckpt, teacher = tmp_path / "search.pth", tmp_path / "teacher.pth"
    search_checkpoint(ckpt)
    search_checkpoint(teacher, mask=False, n_blocks=6)
    assert run_main("prune", prune_args(tmp_path, ckpt)) == 0  # an earlier run in the folder
    before = hash_tree(tmp_path / "exp")
    finetune = ["--finetune", "--overwrite", "--pretrain_path", str(teacher), "--lambda_attention_distill", "1",
                "--max_dataset_size", "2", "--num_threads", "0", "--ngf", "8", "--ndf", "8"]
    assert run_main("prune", prune_args(tmp_path, ckpt, "cyclegan", *finetune)) == 2
    assert "has n_blocks=6 but the student's has 9" in capsys.readouterr().err
    assert hash_tree(tmp_path / "exp") == before  # --overwrite removed nothing, model_0.pth was not rewritten


def test_prune_py_pix2pix_and_finetune_hook(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(pipeline.prune, "finetune",
                        lambda opt, pruned, device, prepared=None, evaluator=None, run=None: calls.append((opt, pruned,
                                                                                                           device)))
    ckpt = tmp_path / "search.pth"
    gens, _ = search_checkpoint(ckpt, model="pix2pix")
    prune.main(prune_args(tmp_path, ckpt, "pix2pix", "--finetune"))
    out = tmp_path / "exp" / "pruned" / "checkpoints" / "model_0.pth"
    state = load_checkpoint(str(out))
    assert state["configs"]["G"]["family"] == "unet" and state["configs"]["D"]["norm"] == "batch"
    filters, channels = state["cfg"]["G"]
    assert len(filters) == len(channels) == 9
    assert_equivalent(gens["G"], load_generator(str(out), "AtoB"), 32)
    assert len(calls) == 1 and calls[0][0].finetune is True
    assert calls[0][1].kind == "pruned" and set(calls[0][1].nets) == {"G", "D"}  # the Checkpoint of model_0.pth


def _exit_message(capsys, argv):
    with pytest.raises(SystemExit) as info:
        prune.main(argv)
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_prune_py_user_errors(tmp_path, capsys):
    args = prune_args(tmp_path, tmp_path / "missing.pth")
    no_mask = [a for a in args if a != "--mask"]
    assert "add --mask" in _exit_message(capsys, no_mask)
    assert f"--load_path {tmp_path / 'missing.pth'} does not exist" in _exit_message(capsys, args)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    assert f"--load_path {garbage} is not a readable checkpoint" in _exit_message(capsys, prune_args(tmp_path, garbage))
    without_path = args[:args.index("--load_path")] + args[args.index("--load_path") + 2:]
    assert "--load_path" in _exit_message(capsys, without_path)

    plain = tmp_path / "plain.pth"
    search_checkpoint(plain, mask=False)
    assert "plain (non-mask)" in _exit_message(capsys, prune_args(tmp_path, plain))

    search = tmp_path / "search.pth"
    search_checkpoint(search)
    assert "--model pix2pix" in _exit_message(capsys, prune_args(tmp_path, search, "pix2pix"))
    # the teacher's path is named by its option, missing or unreadable
    teacher = ["--finetune", "--lambda_attention_distill", "1", "--pretrain_path"]
    missing = tmp_path / "nope.pth"
    assert f"--pretrain_path {missing} does not exist" in _exit_message(
        capsys, prune_args(tmp_path, search, "cyclegan", *teacher, str(missing)))
    assert f"--pretrain_path {garbage} is not a readable checkpoint" in _exit_message(
        capsys, prune_args(tmp_path, search, "cyclegan", *teacher, str(garbage)))
    assert not (tmp_path / "exp" / "pruned" / "checkpoints" / "model_0.pth").exists()


def test_prune_py_error_as_a_process(tmp_path):
    argv = [a for a in prune_args(tmp_path, tmp_path / "x.pth") if a != "--mask"]
    run = subprocess.run([sys.executable, "prune.py", *argv], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip() == "error: prune.py prunes a mask-search checkpoint: add --mask"


def test_bad_finetune_options_leave_an_existing_run_untouched(tmp_path, capsys):
    """Teacher problems are found before prune.py writes anything into the run folder."""
    from tests.conftest import hash_tree

    ckpt = tmp_path / "search.pth"
    search_checkpoint(ckpt)
    prune.main(prune_args(tmp_path, ckpt))
    run_dir = tmp_path / "exp" / "pruned"
    before = hash_tree(run_dir)
    other = tmp_path / "other.pth"
    search_checkpoint(other, seed=7)
    bad = [["--finetune", "--lambda_attention_distill", "1"],
           ["--finetune", "--lambda_attention_distill", "1", "--pretrain_path", str(tmp_path / "missing.pth")],
           ["--finetune", "--lambda_discriminator_distill", "1", "--pretrain_path", str(other)]]
    for extra in bad:
        _exit_message(capsys, prune_args(tmp_path, other, "cyclegan", *extra))
        assert hash_tree(run_dir) == before, extra


# ------------------------------------------------------------------------------------------ console and log file

def test_search_and_prune_console_is_a_summary_and_logger_log_has_every_layer(toy_root, tmp_path, capsys):
    argv = tiny_args(tmp_path, "search", n_epochs=1, n_epochs_decay=1, mask=True, mask_weight_decay="0.01",
                     print_freq=4, lr="0.002")
    assert run_main("train", argv) == 0
    console = capsys.readouterr()
    out = console.out + console.err
    log = (tmp_path / "search" / "logger.log").read_text()
    # the per-layer report of every update point and the options table: in logger.log, in full
    updates = log.count("Bound: ")
    assert updates >= 8 and log.count("netG_A\nstem.mask sparsity ratio: ") == updates
    assert log.count("ResBlock sparsity ratio: ") == 2 * updates and "----------------- Options" in log
    assert "sparsity ratio" not in out and "Bound: " not in out and "----------------- Options" not in out
    # the console: one search line per epoch (bound, kept channels, MACs) next to the epoch's losses
    summaries = [line for line in out.splitlines() if "| search: bound " in line]
    assert len(summaries) == 2 and "search: bound 0.000 | netG_A " in summaries[-1]
    assert all(line.split(" | ", 1)[1] in log for line in summaries)
    assert len([line for line in out.splitlines() if "End of epoch" in line and "mean losses: D_A: " in line]) == 2
    assert len(out.splitlines()) < 25, out
    settled = re.search(r"netG_A (\d+/\d+) channels kept", summaries[-1]).group(1)

    argv = tiny_args(tmp_path, "pruned", mask=True, load_path=tmp_path / "search" / "checkpoints" / "latest.pth")
    assert run_main("prune", argv) == 0
    console = capsys.readouterr()
    out = console.out + console.err
    log = (tmp_path / "pruned" / "logger.log").read_text()
    assert "kept/full" in log and "netG_B | Params: " in log and "stem " in log  # the per-layer table
    assert "kept/full" not in out and "----------------- Options" not in out
    lines = [line for line in out.splitlines() if "channels kept, MACs " in line]
    # the pruned net keeps what the search's last line said it would
    assert len(lines) == 2 and f"netG_A: {settled} channels kept" in lines[0] and "x at 32x32" in lines[0]
    assert len(out.splitlines()) < 15, out


def test_prune_takes_sizes_and_ndf_from_the_search(toy_root, tmp_path, capsys):
    """prune.py without --ndf / --load_size / --crop_size counts MACs at, and fine-tunes at, the
    search's size with its discriminators; a given --ndf that does not fit them is refused before
    anything is written."""
    assert run_main("train", tiny_args(tmp_path, "search", mask=True, ndf=4)) == 0
    search = tmp_path / "search" / "checkpoints" / "latest.pth"

    def without(argv, *names):
        out = []
        for i, a in enumerate(argv):
            if a in names or (i and argv[i - 1] in names):
                continue
            out.append(a)
        return out

    argv = without(tiny_args(tmp_path, "ft", mask=True, load_path=search, finetune=True), "--ndf", "--crop_size",
                   "--load_size")
    capsys.readouterr()
    assert run_main("prune", argv) == 0
    out = "".join(capsys.readouterr())
    assert "--load_size 32 and --crop_size 32 and --ndf 4 taken from the options" in out
    assert "x at 32x32" in out and (tmp_path / "ft" / "checkpoints" / "latest.pth").is_file()
    assert run_main("prune", without(argv, "--name") + ["--name", "wrong", "--ndf", "8"]) == 2
    assert "--ndf 8 does not fit" in capsys.readouterr().err
    assert not (tmp_path / "wrong").exists()


def test_prune_takes_the_generator_architecture_from_the_search(toy_root, tmp_path, capsys):
    """A pix2pix search at 32 px (unet_32, ngf 8) prunes and fine-tunes without --crop_size, --netG or
    --ngf: they come from the search (opt.txt records them); a given --ngf or channel count that does
    not fit is one line before anything is written; test.py then finds the pruned model by --name."""
    assert run_main("train", tiny_args(tmp_path, "search", "pix2pix", mask=True)) == 0
    search = tmp_path / "search" / "checkpoints" / "latest.pth"

    def argv(name, *extra):
        out = tiny_args(tmp_path, name, "pix2pix", mask=True, load_path=search)
        for flag in ("--crop_size", "--load_size", "--ngf"):
            i = out.index(flag)
            del out[i:i + 2]
        return out + list(extra)

    capsys.readouterr()
    assert run_main("prune", argv("ft", "--finetune")) == 0
    out = "".join(capsys.readouterr())
    assert re.search(r"--crop_size 32 .*--ngf 8 .*--netG unet_32 taken from the options", out), out
    recorded = (tmp_path / "ft" / "opt.txt").read_text()
    assert re.search(r"^\s+netG: unet_32\s", recorded, re.M) and re.search(r"^\s+ngf: 8\s", recorded, re.M)
    assert (tmp_path / "ft" / "checkpoints" / "latest.pth").is_file()
    for extra, message in ((["--ngf", "16"], "--ngf 16 does not fit"), (["--input_nc", "1"], "--input_nc 1 does not fit"),
                           (["--netG", "unet_256", "--crop_size", "256", "--load_size", "256"],
                            "--netG unet_256 does not fit")):
        assert run_main("prune", argv("wrong", "--finetune", *extra)) == 2
        assert message in capsys.readouterr().err
        assert not (tmp_path / "wrong").exists()
    # prune.py alone, then test.py by --name: the run's pruned model_0.pth is what it tests
    assert run_main("prune", argv("alone")) == 0
    test_argv = [a for a in argv("alone") if a != "--mask"]
    i = test_argv.index("--load_path")
    del test_argv[i:i + 2]
    assert run_main("test", test_argv + ["--results_dir", str(tmp_path / "res")]) == 0
    assert (tmp_path / "res" / "alone").is_dir()
