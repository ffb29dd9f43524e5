"""Prune a mask-search checkpoint into a slim generator, and fine-tune it with distillation.

    python prune.py --dataroot ... --model cyclegan --mask --load_path <search>/model_best.pth [--finetune ...]

Reads a search checkpoint of this project (``model_best.pth``, ``latest.pth``, ``model_<epoch>.pth``)
or of the original code, prunes every generator at ``w > 0`` (residual vote ``--threshold``), keeps
the discriminators, logs the MACs/params table and writes
``<checkpoints_dir>/<name>/checkpoints/model_0.pth``; ``--finetune`` then trains the pruned model
(the fine-tune stage, pipeline/finetune.py).
"""
import os

# Idle OpenMP threads sleep instead of spinning: on a shared or busy CPU, spinning threads make
# training many times slower. Must be set before torch loads OpenMP; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from util.cli import quiet_start  # noqa: E402

quiet_start()  # before torch loads: a Ctrl-C meanwhile ends without a traceback

from options import parse  # noqa: E402
from pipeline.prune import run  # noqa: E402
from util.cli import cli_entry  # noqa: E402


@cli_entry
def main(argv=None):
    run(parse("prune", argv))


if __name__ == "__main__":
    main()
