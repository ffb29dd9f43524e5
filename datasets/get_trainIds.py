"""Write ``*_gtFine_trainIds.png`` next to every ``*_gtFine_labelIds.png`` under a folder.

    python datasets/get_trainIds.py cityscapes-origin/gtFine

Train ids 0 ... 18 are the 19 evaluated Cityscapes classes; every other label id becomes 255 (ignored).
``prepare_cityscapes_dataset.py`` already converts the val labels it needs; this is for other uses.
"""
import glob
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from tqdm import tqdm  # noqa: E402

from metrics.miou import label_id_to_train_id  # noqa: E402
from util.errors import ArgumentParser, UserError  # noqa: E402
from util.cli import cli_entry  # noqa: E402
from util.logger import setup_logging  # noqa: E402

log = logging.getLogger("dmad")


@cli_entry
def main(argv=None):
    parser = ArgumentParser(prog="get_trainIds.py", description=__doc__.splitlines()[0])
    parser.add_argument("gtFine_dir", help="folder searched recursively for *_gtFine_labelIds.png")
    args = parser.parse_args(argv)
    paths = sorted(glob.glob(os.path.join(args.gtFine_dir, "**", "*_gtFine_labelIds.png"), recursive=True))
    if not paths:
        raise UserError(f"no *_gtFine_labelIds.png under {args.gtFine_dir}: give the unzipped gtFine folder")
    setup_logging()
    lut = label_id_to_train_id()
    for path in tqdm(paths, desc="labels", leave=False):
        with Image.open(path) as img:
            ids = np.array(img)
        Image.fromarray(lut[ids]).save(path.replace("_gtFine_labelIds.png", "_gtFine_trainIds.png"))
    log.info("%d train-id labels written", len(paths))


if __name__ == "__main__":
    main()
