"""The shipped ``scripts/<architecture>/<dataset>/*.sh``: each one runs through bash with ``$PYTHON``
standing for a stub that parses the command line with the real option parser, so a script that
names an unknown option, a bad value or a contradiction fails here."""
import glob
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO

SCRIPTS = sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "scripts", "*", "*", "*.sh")))
ARCHITECTURES = {"cyclegan": "cyclegan", "mobile_cyclegan": "mobilecyclegan", "pix2pix": "pix2pix",
                 "mobile_pix2pix": "mobilepix2pix"}

# parses ``<script>.py ARGS`` like the entry point would, and prints the parsed options as JSON
STUB = """
import json, os, sys
sys.path.insert(0, os.getcwd())
from options import parse
script = os.path.splitext(os.path.basename(sys.argv[1]))[0]
opt = parse(script, sys.argv[2:])
print(json.dumps({"script": script, "cwd": os.getcwd(),
                  **{k: v for k, v in vars(opt).items() if isinstance(v, (str, int, float, bool, type(None)))}}))
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
    proc = subprocess.run(["bash", os.path.join(REPO, script), *extra], capture_output=True, text=True,
                          env=dict(os.environ, PYTHON=stub, **(env or {})), cwd="/", timeout=120)
    assert proc.returncode == 0, f"{script}: {proc.stderr.strip().splitlines()[-1:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


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
