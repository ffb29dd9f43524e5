"""Run train.py or prune.py as one torchrun process and dump this rank's networks at the end.

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/ddp_driver.py OUT_DIR SCRIPT ARGS...

Writes ``OUT_DIR/latest_epoch<e>.pth``, a copy of the full resume state after each epoch, and ``OUT_DIR/rank<r>.pth``: {net name: state dict} of the model every rank holds when training
ends, and ``OUT_DIR/rank<r>_step1.pth`` the same after the first optimisation step, so a test can
check that the ranks agree bit for bit (rank 0 alone writes the run's files) and compare the first
step with one process.
"""
import os
import shutil
import sys

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

torch.set_num_threads(1)

from tests.conftest import script_module  # noqa: E402
from util import distributed  # noqa: E402
from models.base_model import BaseModel  # noqa: E402
from pipeline.trainer import Trainer  # noqa: E402


def nets_state(model):
    return {k: {n: t.detach().cpu().clone() for n, t in v.state_dict().items()} for k, v in model.nets.items()}


def capture_first_step(target):
    """Patch BaseModel.end_step so that the first optimisation step's result lands in ``target``."""
    end_step = BaseModel.end_step

    def end_step_and_capture(self):
        end_step(self)
        if "step1" not in target:
            target["step1"] = nets_state(self)

    BaseModel.end_step = end_step_and_capture


def main():
    out, script, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
    finish = Trainer.finish
    first = {}
    capture_first_step(first)

    def dump_then_finish(self):
        torch.save(nets_state(self.model), os.path.join(out, f"rank{distributed.rank()}.pth"))
        torch.save(first["step1"], os.path.join(out, f"rank{distributed.rank()}_step1.pth"))
        finish(self)

    Trainer.finish = dump_then_finish
    save = Trainer.save

    def save_and_keep(self, epoch, numbered, announce=True):
        # the numbered checkpoints hold the networks only: keep each epoch's full state for resume tests
        save(self, epoch, numbered, announce)
        if self.main:
            shutil.copy(self.run.latest_path, os.path.join(out, f"latest_epoch{epoch}.pth"))

    Trainer.save = save_and_keep
    script_module(script).main(argv)


if __name__ == "__main__":
    main()
