"""Prune a mask-search checkpoint into a slim generator, and fine-tune it with distillation.

    python prune.py --dataroot ... --model cyclegan --mask --load_path <search>/model_best.pth [--finetune ...]

Reads a search checkpoint of this project (``model_best.pth``, ``latest.pth``, ``model_<epoch>.pth``)
or of the original code, prunes every generator at ``w > 0`` (residual vote ``--threshold``), keeps
the discriminators, logs the MACs/params table and writes
``<checkpoints_dir>/<name>/checkpoints/model_0.pth``; ``--finetune`` then trains the pruned model
(the fine-tune stage, pipeline/finetune.py).
"""
from util.cli import before_imports

before_imports()  # before torch loads: OpenMP's idle policy, a quiet Ctrl-C

from options import parse  # noqa: E402
from pipeline.prune import run  # noqa: E402
from util.cli import cli_entry  # noqa: E402


@cli_entry
def main(argv=None):
    run(parse("prune", argv))


if __name__ == "__main__":
    main()
