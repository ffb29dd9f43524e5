"""The shipped ``scripts/<architecture>/<dataset>/*.sh``: each one runs through bash with ``$PYTHON``
standing for a stub that records its command line, which the real option parser then parses here
(in this process: a Python that imports torch for every script would take most of this file's
time), so a script that names an unknown option, a bad value or a contradiction fails here."""
import glob
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

SCRIPTS = sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "scripts", "*", "*", "*.sh")))
ARCHITECTURES = {"cyclegan": "cyclegan", "mobile_cyclegan": "mobilecyclegan", "pix2pix": "pix2pix",
                 "mobile_pix2pix": "mobilepix2pix"}

# prints the command line it was given and the folder it was started in, as JSON
STUB = """
import json, os, sys
print(json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd()}))
"""


def known_models():
    from options import build_parser

    action = next(a for a in build_parser("train")._actions if a.dest == "model")
    return set(action.choices)


@pytest.fixture(scope="module")
def stub(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stub")
    (tmp / "stub.py").write_text(STUB)
    python = tmp / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{tmp / "stub.py"}" "$@"\n')
    python.chmod(0o755)
    return str(python)


def run(script, stub, *extra, env=None):
    """The options ``script`` gives its entry point, parsed as the entry point would, in the folder
    the script started it in; with ``script`` (train or prune) and ``cwd``."""
    from options import parse

    proc = subprocess.run(["bash", os.path.join(REPO, script), *extra], capture_output=True, text=True,
                          env=dict(os.environ, PYTHON=stub, **(env or {})), cwd="/", timeout=120)
    assert proc.returncode == 0, f"{script}: {proc.stderr.strip().splitlines()[-1:]}"
    called = json.loads(proc.stdout.strip().splitlines()[-1])
    entry = os.path.splitext(os.path.basename(called["argv"][0]))[0]
    here = os.getcwd()
    os.chdir(called["cwd"])
    try:
        opt = parse(entry, called["argv"][1:])
    finally:
        os.chdir(here)
    return {"script": entry, "cwd": called["cwd"],
            **{k: v for k, v in vars(opt).items() if isinstance(v, (str, int, float, bool, type(None)))}}


def test_every_task_has_its_three_stages():
    folders = {os.path.dirname(s) for s in SCRIPTS}
    assert {f.split(os.sep)[1] for f in folders} == set(ARCHITECTURES)
    for folder in folders:
        for stage in ("pretrain.sh", "train.sh", "finetune.sh"):
            assert os.path.join(folder, stage) in SCRIPTS, (folder, stage)


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_parses(script, stub):
    arch = script.split(os.sep)[1]
    model = ARCHITECTURES[arch]
    if model not in known_models():
        pytest.skip(f"--model {model} is not available yet")
    opt = run(script, stub)
    assert opt["cwd"] == REPO  # the scripts run from the repository root, wherever they are called from
    assert opt["model"] == model
    stage = os.path.basename(script)
    assert opt["script"] == ("prune" if stage == "finetune.sh" else "train")
    assert opt["mask"] == (stage != "pretrain.sh")
    if stage == "finetune.sh":
        assert opt["finetune"] and opt["lambda_attention_distill"] > 0 and opt["lambda_discriminator_distill"] > 0
    # options given to a script are appended and win
    assert run(script, stub, "--gpu_ids", "-1", "--n_epochs", "3")["n_epochs"] == 3


def test_teachers_are_distinct_per_architecture_and_made_by_pretrain(stub):
    """The original reused one teacher file name for the ResNet and the separable-conv teacher
    (method.md §13.37): here every (architecture, dataset) has its own, written by its pretrain.sh."""
    models = known_models()
    teachers = {}
    for script in SCRIPTS:
        arch, dataset, stage = script.split(os.sep)[1:]
        if stage != "finetune.sh" or ARCHITECTURES[arch] not in models:
            continue
        teacher = run(script, stub)["pretrain_path"]
        made = run(script.replace("finetune.sh", "pretrain.sh"), stub)
        assert os.path.normpath(teacher) == os.path.normpath(
            os.path.join(made["checkpoints_dir"], made["name"], "model_best.pth"))
        teachers[(arch, dataset)] = teacher
        assert run(script, stub, env={"PRETRAIN": "/x/teacher.pth"})["pretrain_path"] == "/x/teacher.pth"
    assert len(set(teachers.values())) == len(teachers)
