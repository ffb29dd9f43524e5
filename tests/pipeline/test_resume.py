"""Resuming runs: prune.py's run folders (model_0.pth and the fine-tune checkpoints) and train.py
--continue_train with changed options."""
import os
import re

import pytest
import torch

from tests.conftest import hash_tree, run_main, tiny_args


def _one_line_error(capsys):
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1, err
    return err


@pytest.fixture(scope="module")
def searches(tmp_path_factory, toy_root):
    """Two finished mask searches whose pruned generators differ, and a fine-tune run pruned from the
    first: {"root", "s1", "s2", "ft"} (the search checkpoints' paths, the fine-tune's argv)."""
    root = tmp_path_factory.mktemp("resume")
    paths = {}
    for name, seed in (("s1", 0), ("s2", 5)):
        assert run_main("train", tiny_args(root, name, mask=True, seed=seed, mask_weight_decay=0.5)) == 0
        paths[name] = str(root / name / "checkpoints" / "latest.pth")
    ft = tiny_args(root, "ft", mask=True, finetune=True, lambda_attention_distill=0, lambda_discriminator_distill=0)
    assert run_main("prune", ft + ["--load_path", paths["s1"]]) == 0
    pruned = [root / "p2" / "checkpoints" / "model_0.pth", root / "ft" / "checkpoints" / "model_0.pth"]
    assert run_main("prune", tiny_args(root, "p2", mask=True, load_path=paths["s2"])) == 0
    configs = [torch.load(p, weights_only=True)["configs"]["G_A"]["widths"] for p in pruned]
    assert configs[0] != configs[1]  # the two searches prune to different widths
    return {"root": root, "ft": ft, **paths}


def test_prune_without_finetune_on_a_run_folder_suggests_no_resume(searches, capsys):
    run = searches["root"] / "ft"
    before = hash_tree(run)
    argv = tiny_args(searches["root"], "ft", mask=True, load_path=searches["s2"])
    assert run_main("prune", argv) == 2
    err = _one_line_error(capsys)
    assert "--continue_train" not in err and "--name" in err and "--overwrite" in err
    # following the earlier advice (--continue_train) is refused too: it resumes a fine-tune only
    assert run_main("prune", argv + ["--continue_train"]) == 2
    err = _one_line_error(capsys)
    assert "--continue_train resumes a fine-tune: add --finetune" in err
    assert hash_tree(run) == before


def test_finetune_on_a_folder_holding_only_the_pruned_model_suggests_no_resume(searches, capsys):
    """A folder with only model_0.pth has no fine-tune to resume: the refusal names --name and
    --overwrite, and --continue_train there says to use --overwrite."""
    run = searches["root"] / "p2"
    before = hash_tree(run)
    argv = tiny_args(searches["root"], "p2", mask=True, finetune=True, load_path=searches["s2"],
                     lambda_attention_distill=0, lambda_discriminator_distill=0)
    assert run_main("prune", argv) == 2
    err = _one_line_error(capsys)
    assert "--continue_train" not in err and "--name" in err and "--overwrite" in err
    assert run_main("prune", argv + ["--continue_train"]) == 2
    err = _one_line_error(capsys)
    assert "found no fine-tune checkpoint" in err and "--overwrite" in err
    assert hash_tree(run) == before


def test_finetune_resume_from_another_search_is_refused_before_writing(searches, capsys):
    run = searches["root"] / "ft"
    before = hash_tree(run)
    assert run_main("prune", searches["ft"] + ["--load_path", searches["s2"], "--continue_train"]) == 2
    err = _one_line_error(capsys)
    assert f"the run was pruned from {searches['s1']}" in err and f"give --load_path {searches['s1']}" in err
    assert hash_tree(run) == before


def test_finetune_resume_keeps_model_0_and_records_the_search(searches):
    ckpt = searches["root"] / "ft" / "checkpoints"
    model_0 = (ckpt / "model_0.pth").read_bytes()
    assert torch.load(ckpt / "latest.pth", weights_only=True)["source"] == searches["s1"]
    argv = searches["ft"] + ["--load_path", searches["s1"], "--continue_train", "--n_epochs", "2"]
    assert run_main("prune", argv) == 0
    assert (ckpt / "model_0.pth").read_bytes() == model_0  # byte for byte
    latest = torch.load(ckpt / "latest.pth", weights_only=True)
    assert latest["epoch"] == 2 and latest["source"] == searches["s1"]
    assert os.path.isfile(ckpt / "model_2.pth")


def _resume_search(searches, name, monkeypatch, *extra):
    """Resume a copy of the first search with the options ``extra``; the epochs are not run."""
    import shutil

    from pipeline.trainer import Trainer

    shutil.copytree(searches["root"] / "s1", searches["root"] / name)
    monkeypatch.setattr(Trainer, "_train", lambda self: None)
    argv = tiny_args(searches["root"], name, mask=True, mask_weight_decay=0.5, continue_train=True)
    for flag in ("--n_epochs", "--n_epochs_decay"):  # the schedule is what ``extra`` gives
        i = argv.index(flag)
        del argv[i:i + 2]
    return run_main("train", argv + list(extra))


def test_resuming_with_the_same_options_says_nothing(searches, monkeypatch, caplog):
    assert _resume_search(searches, "same", monkeypatch, "--n_epochs", "1", "--n_epochs_decay", "0") == 0
    assert "other options" not in caplog.text and "had settled" not in caplog.text


def test_resuming_a_settled_search_with_a_longer_schedule_warns(searches, monkeypatch, caplog):
    assert _resume_search(searches, "longer", monkeypatch, "--n_epochs", "2", "--n_epochs_decay", "0",
                          "--crop_size", "32", "--lr", "0.001") == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    changed = [w for w in warnings if "was trained with other options" in w]
    assert len(changed) == 1 and "--n_epochs 1 -> 2, --lr 0.0002 -> 0.001;" in changed[0]
    settled = [w for w in warnings if "the mask search had settled (bound 0)" in w]
    assert len(settled) == 1 and "re-opens the bound to 0." in settled[0] and "at epoch 2" in settled[0]
    assert "resume with --n_epochs 1 --n_epochs_decay 0" in settled[0]


def test_resuming_without_the_schedule_names_the_defaults(searches, monkeypatch, caplog):
    assert _resume_search(searches, "defaults", monkeypatch) == 0
    changed = [r.getMessage() for r in caplog.records if "was trained with other options" in r.getMessage()]
    assert len(changed) == 1
    assert "--n_epochs 1 -> 100 (default), --n_epochs_decay 0 -> 100 (default)" in changed[0]
    assert "schedule (--n_epochs, --n_epochs_decay, --lr_policy) is this command's" in changed[0]


@pytest.mark.parametrize("name", ["latest.pth", "model_0.pth"])
def test_train_py_refuses_to_resume_a_pruned_checkpoint(searches, capsys, name):
    run = searches["root"] / "ft"
    before = hash_tree(run)
    path = run / "checkpoints" / name
    argv = tiny_args(searches["root"], "teacher", continue_train=True, load_path=path)
    assert run_main("train", argv) == 2
    err = _one_line_error(capsys)
    dataroot = argv[argv.index("--dataroot") + 1]
    assert err == (f"error: {path} holds pruned generators (a prune.py checkpoint): resume it with prune.py --dataroot "
                   f"{dataroot} --model cyclegan --mask --finetune --continue_train --checkpoints_dir {searches['root']} "
                   f"--name ft --load_path {searches['s1']} and the fine-tune's other options "
                   f"({searches['root'] / 'ft' / 'opt.txt'})")
    assert hash_tree(run) == before and not (searches["root"] / "teacher").exists()


def test_pruning_alone_says_nothing_about_absent_fid_weights(searches, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no Inception weights in the hub cache
    argv = tiny_args(tmp_path, "p", mask=True, load_path=searches["s1"])
    i = argv.index("--metric")
    del argv[i:i + 2]  # the default metric (auto: FID)
    assert run_main("prune", argv) == 0
    assert (tmp_path / "p" / "checkpoints" / "model_0.pth").is_file()
    assert "FID is skipped" not in caplog.text


def test_a_resume_takes_the_widths_from_its_checkpoint(searches, caplog):
    """train.py --continue_train without --ngf / --ndf builds the networks of the checkpoint (ngf and
    ndf 8 here, not the defaults 64) and says so."""
    import logging
    import shutil

    shutil.copytree(searches["root"] / "s1", searches["root"] / "widths")
    argv = tiny_args(searches["root"], "widths", mask=True, mask_weight_decay=0.5, continue_train=True)
    for option in ("--ngf", "--ndf"):
        i = argv.index(option)
        del argv[i:i + 2]
    with caplog.at_level(logging.INFO, logger="dmad"):
        assert run_main("train", argv) == 0
    assert any("--ngf 8 and --ndf 8 taken from the options" in r.getMessage() for r in caplog.records)
    # the run folder records the options the run used: the resolved copy, not the parsed defaults
    recorded = (searches["root"] / "widths" / "opt.txt").read_text()
    assert re.search(r"^\s+ngf: 8\s", recorded, re.M) and re.search(r"^\s+ndf: 8\s", recorded, re.M), recorded


def test_a_damaged_latest_checkpoint_points_to_the_one_before_it(tmp_path, capsys):
    argv = tiny_args(tmp_path, "cut", n_epochs=2, save_epoch_freq=1)
    assert run_main("train", argv) == 0
    latest = tmp_path / "cut" / "checkpoints" / "latest.pth"
    latest.write_bytes(latest.read_bytes()[:1000])  # a copy cut short
    assert run_main("train", argv + ["--continue_train", "--n_epochs", "3"]) == 2
    err = capsys.readouterr().err
    earlier = tmp_path / "cut" / "checkpoints" / "model_2.pth"
    assert "is not a readable checkpoint" in err and f"--load_path {earlier}" in err, err
    assert run_main("train", argv + ["--continue_train", "--n_epochs", "3", "--load_path", str(earlier)]) == 0


def test_finetune_clean_checkpoints_keeps_the_pruned_model(searches, caplog):
    """--clean_checkpoints removes the fine-tune's per-epoch checkpoints but not model_0.pth, the pruned
    generator; a resume afterwards keeps it as it is instead of pruning again."""
    argv = tiny_args(searches["root"], "clean", mask=True, finetune=True, clean_checkpoints=True,
                     lambda_attention_distill=0, lambda_discriminator_distill=0, load_path=searches["s1"])
    assert run_main("prune", argv) == 0
    ckpt = searches["root"] / "clean" / "checkpoints"
    assert sorted(os.listdir(ckpt)) == ["latest.pth", "model_0.pth"]
    assert "removed the per-epoch checkpoints (--clean_checkpoints); kept model_0.pth, the pruned model" in caplog.text
    model_0 = (ckpt / "model_0.pth").read_bytes()
    caplog.clear()
    assert run_main("prune", argv + ["--continue_train", "--n_epochs", "2"]) == 0
    assert "is kept as it is" in caplog.text and "pruned model saved to" not in caplog.text
    assert (ckpt / "model_0.pth").read_bytes() == model_0


def test_a_resume_and_an_init_path_go_on_in_the_trained_direction(tmp_path, caplog):
    """A run trained --direction BtoA resumes, and starts a new run with --init_path, in BtoA without
    repeating it; --init_path with another given --direction is one line."""
    import logging

    assert run_main("train", tiny_args(tmp_path, "ba", "pix2pix", direction="BtoA")) == 0
    with caplog.at_level(logging.INFO, logger="dmad"):
        assert run_main("train", tiny_args(tmp_path, "ba", "pix2pix", continue_train=True, n_epochs=2)) == 0
    assert "--direction BtoA taken from the options" in caplog.text
    assert re.search(r"^\s+direction: BtoA\s", (tmp_path / "ba" / "opt.txt").read_text(), re.M)
    teacher = tmp_path / "ba" / "checkpoints" / "latest.pth"
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="dmad"):
        assert run_main("train", tiny_args(tmp_path, "init", "pix2pix", mask=True, init_path=teacher)) == 0
    assert "--direction BtoA taken from the networks of --init_path" in caplog.text
    assert run_main("train", tiny_args(tmp_path, "init2", "pix2pix", init_path=teacher, direction="AtoB")) == 2
    assert not (tmp_path / "init2").exists()
