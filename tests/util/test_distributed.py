"""Data-parallel training with torchrun on the CPU (2 gloo processes): every rank holds bit-identical
weights and masks after a few iterations of the mask search and of fine-tuning, the first step
matches one process with the same global batch, and a run resumed under torchrun ends bit-identical
to the uninterrupted one (every rank gets back its own image pools and random generators)."""
import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO, run_main, tiny_args
from tests.ddp_driver import capture_first_step
from models import generator_from_state
from models.base_model import BaseModel

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="this torch build has no gloo backend")

# One process at batch 2 and two at batch 1 take the same images per step (the distributed sampler
# splits the single-process order) and average the same per-image gradients; they differ only in the
# order of float sums. Adam's first step moves a weight by lr * g / (|g| + 1e-8), i.e. +-lr (2e-4) for
# any gradient well above 1e-8, so a weight whose gradient differs in sign is 4e-4 off, while equal
# gradients give equal steps. Stated tolerance: after the first step every generator weight and mask
# of the two runs agrees to TOLERANCE, except at most FLIPS_ALLOWED of them (weights whose gradient is
# rounding noise: rows of a channel the pruning zeroed, seen through an InstanceNorm of a constant
# channel) and the conv biases that an affine-free InstanceNorm removes (gradient zero up to rounding).
# A wrong split of the data or a missing average moves about half of all weights differently. Later
# steps are not compared: Adam keeps turning rounding in near-zero gradients into whole steps.
TOLERANCE = 1e-5
FLIPS_ALLOWED = 1e-3  # share of the compared weights

# pool_size 0: each process would otherwise draw from its own history of fakes
COMMON = dict(pool_size=0, max_dataset_size=6)
# the search: 2 epochs of 3 steps per process, a checkpoint after each. The pool holds 2 fakes: full
# after 2 steps, so the first step still matches one process, and every later step draws from each
# process's own pool (what a resume must give back to each process)
SEARCH = dict(COMMON, mask=True, mask_weight_decay=0.01, lambda_update_coeff=1.0, pool_size=2, n_epochs=1,
              n_epochs_decay=1, save_epoch_freq=1)


def torchrun(out, script, argv, nproc=2):
    os.makedirs(out, exist_ok=True)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           os.path.join(REPO, "tests", "ddp_driver.py"), str(out), script, *map(str, argv)]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    load = lambda name: torch.load(os.path.join(out, name), weights_only=True)  # noqa: E731
    return [load(f"rank{r}.pth") for r in range(nproc)], [load(f"rank{r}_step1.pth") for r in range(nproc)]


def assert_identical(a, b):
    for net in a:
        for key in a[net]:
            assert torch.equal(a[net][key], b[net][key]), f"{net}.{key} differs between ranks"


def assert_first_step_matches(ddp, one, configs):
    compared, off = 0, []
    for name in (n for n in ddp if n.startswith("G")):
        net = generator_from_state(configs[name], ddp[name], "ddp")
        removed_by_norm = {f"{c.name}.bias" for c in net.structure().convs
                           if c.norm is not None and not c.norm_affine}
        for key, value in ddp[name].items():
            if key in removed_by_norm or not value.is_floating_point():
                continue
            diff = (value - one[name][key]).abs()
            off.extend((name, key, v) for v in diff[diff > TOLERANCE].tolist())
            compared += value.numel()
    assert compared > 10000
    assert len(off) <= FLIPS_ALLOWED * compared, off[:10]


def single_process(script, argv, monkeypatch):
    first = {}
    with monkeypatch.context() as patch:
        patch.setattr(BaseModel, "end_step", BaseModel.end_step)  # restored when the block ends
        capture_first_step(first)
        assert run_main(script, argv) == 0
    return first["step1"]


def configs_of(path):
    return torch.load(path, weights_only=True)["configs"]


def test_two_processes_match_each_other_and_one_process(tmp_path, monkeypatch):
    # mask search: 2 epochs of 3 steps per process, the bound updated during the run
    search = tiny_args(tmp_path, "ddp", batch_size=1, **SEARCH)
    (end0, end1), (first0, first1) = torchrun(tmp_path / "dump", "train", search)
    assert_identical(end0, end1)
    assert_identical(first0, first1)
    assert any(k.endswith("mask_weight") for k in end0["G_A"])
    saved = torch.load(tmp_path / "ddp" / "checkpoints" / "latest.pth", weights_only=True)
    assert_identical(end0, saved["nets"])  # rank 0 wrote what every rank holds
    assert saved["world_size"] == 2  # a resume with another number of processes is warned about
    # every rank's per-process state is in the checkpoint: rank 0's at the top level, the others' apart
    assert len(saved["rank_states"]) == 1 and set(saved["rank_states"][0]) == {"rng", "pools"}
    assert len(saved["pools"]["A"]["images"]) == 2
    assert not torch.equal(saved["pools"]["A"]["images"][0], saved["rank_states"][0]["pools"]["A"]["images"][0])

    # resumed from the first epoch's full state: bit-identical to the uninterrupted run
    resumed = tiny_args(tmp_path, "ddp_resumed", batch_size=1, continue_train=True,
                        load_path=tmp_path / "dump" / "latest_epoch1.pth", **SEARCH)
    (again0, again1), _ = torchrun(tmp_path / "dump_resumed", "train", resumed)
    assert_identical(again0, again1)
    assert_identical(end0, again0)
    # from the first epoch's numbered snapshot (networks only): the ranks still agree
    snap = tiny_args(tmp_path, "ddp_snapshot", batch_size=1, continue_train=True,
                     load_path=tmp_path / "ddp" / "checkpoints" / "model_1.pth", **SEARCH)
    (snap0, snap1), _ = torchrun(tmp_path / "dump_snapshot", "train", snap)
    assert_identical(snap0, snap1)

    single = tiny_args(tmp_path, "one", batch_size=2, **SEARCH)
    one = single_process("train", single, monkeypatch)
    assert_first_step_matches(first0, one, saved["configs"])
    final_one = torch.load(tmp_path / "one" / "checkpoints" / "latest.pth", weights_only=True)["nets"]
    bounds = [k for k in final_one["G_A"] if k.endswith("bound")]
    assert all(torch.equal(end0["G_A"][k], final_one["G_A"][k]) for k in bounds)  # same bound schedule

    # fine-tuning the pruned search result: 3 steps per process
    load = tmp_path / "one" / "checkpoints" / "latest.pth"
    finetune = tiny_args(tmp_path, "ft_ddp", mask=True, finetune=True, load_path=load, batch_size=1, **COMMON)
    (end0, end1), (first0, first1) = torchrun(tmp_path / "dump_ft", "prune", finetune)
    assert_identical(end0, end1)
    assert len(torch.load(tmp_path / "ft_ddp" / "checkpoints" / "latest.pth", weights_only=True)["rank_states"]) == 1
    single = tiny_args(tmp_path, "ft_one", mask=True, finetune=True, load_path=load, batch_size=2, **COMMON)
    one = single_process("prune", single, monkeypatch)
    assert_first_step_matches(first0, one, configs_of(tmp_path / "ft_one" / "checkpoints" / "latest.pth"))


def test_options_that_make_no_sense_distributed_are_refused(tmp_path, monkeypatch, capsys):
    """Checked before the process group is joined: one line, exit status 2."""
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    for script, extra, words in (("train", dict(lr_policy="plateau"), "plateau"),
                                 ("train", dict(gpu_ids="0,1"), "--gpu_ids"),
                                 ("test", {}, "one process"),
                                 ("prune", dict(mask=True, load_path=tmp_path / "x.pth"), "--finetune"),
                                 *([("train", dict(gpu_ids="0"), "no GPU here")] if not torch.cuda.is_available()
                                   else [])):
        argv = tiny_args(tmp_path, "refused", **extra)
        if "gpu_ids" in extra:
            argv = [a for i, a in enumerate(argv) if a != "-1" and not (a == "--gpu_ids" and argv[i + 1] == "-1")]
        capsys.readouterr()
        assert run_main(script, argv) == 2
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(err) == 1 and words in err[0], err
    assert not os.path.exists(tmp_path / "refused")


def test_resume_command_and_world_size_warning(tmp_path, monkeypatch, caplog):
    """Under torchrun the resume command relaunches as many processes (the global batch is theirs);
    a checkpoint resumed by another number of processes says how the global batch changed and that
    the per-process state is rank 0's; a damaged per-process record stops the resume."""
    import logging

    from pipeline import trainer as training
    from util import distributed

    opt = type("Opt", (), {"script": "train", "argv": ["--name", "x", "--batch_size", "2"]})()
    assert training.resume_command(opt) == "python train.py --name x --batch_size 2 --continue_train"
    monkeypatch.setattr(distributed, "active", lambda: True)
    monkeypatch.setattr(distributed, "world_size", lambda: 4)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setenv("GROUP_WORLD_SIZE", "2")
    assert training.resume_command(opt) == ("torchrun --nproc_per_node=2 --nnodes=2 train.py --name x --batch_size 2 "
                                            "--continue_train")
    monkeypatch.undo()
    argv = tiny_args(tmp_path, "ws", max_dataset_size=2)
    assert run_main("train", argv) == 0
    latest = tmp_path / "ws" / "checkpoints" / "latest.pth"
    state = torch.load(latest, weights_only=True)
    assert state["world_size"] == 1
    state["world_size"] = 2
    torch.save({**state, "rank_states": [{"rng": {"torch": state["rng"]["torch"]}}]}, latest)  # damaged
    assert run_main("train", argv + ["--continue_train", "--n_epochs", "2"]) == 2
    torch.save(state, latest)
    with caplog.at_level(logging.WARNING, logger="dmad"):
        assert run_main("train", argv + ["--continue_train", "--n_epochs", "2"]) == 0
    assert "trained by 2 process(es), this run has 1: the global batch is now 1 instead of 2" in caplog.text
    assert "per-process state (random generators, image pools) is not restored exactly" in caplog.text
