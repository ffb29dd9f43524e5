r"""Cityscapes as pix2pix pairs, plus the train-id labels and table the mIoU needs (method.md §9.3).

    python datasets/prepare_cityscapes_dataset.py --gtFine_dir cityscapes-origin/gtFine \
        --leftImg8bit_dir cityscapes-origin/leftImg8bit --output_dir database/cityscapes

Download gtFine_trainvaltest.zip and leftImg8bit_trainvaltest.zip from https://www.cityscapes-dataset.com
and unzip them. Writes

* ``<output_dir>/{train,val}/<i>.jpg``: photo (A, left) and colour label map (B, right), each 256x256;
* ``<output_dir>/gtFine/val/<city>/<id>_gtFine_trainIds.png``: full-resolution train-id labels
  (0 ... 18, 255 = ignored) converted from ``*_gtFine_labelIds.png``;
* ``table.txt`` (default ``<output_dir>/table.txt``): ``<i> <label path> <photo path>`` per val pair,
  label paths relative to ``<output_dir>``.

Train Cityscapes with ``--direction BtoA`` (label map -> photo).
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


def build_parser():
    p = ArgumentParser(prog="prepare_cityscapes_dataset.py", description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--gtFine_dir", required=True, help="the unzipped gtFine folder (holds train/ and val/)")
    p.add_argument("--leftImg8bit_dir", required=True, help="the unzipped leftImg8bit folder (holds train/ and val/)")
    p.add_argument("--output_dir", required=True, help="the dataset root to write (--dataroot for training)")
    p.add_argument("--table", "--table_path", dest="table", default=None,
                   help="where to write the val table. default: <output_dir>/table.txt")
    p.add_argument("--size", type=int, default=256, help="side of each half of a pair. default: 256")
    p.add_argument("--phases", nargs="+", default=["val", "train"], choices=("train", "val"),
                   help="splits to convert. default: val train")
    return p


def matched_pairs(gtfine_dir, photo_dir, phase):
    """Sorted ``[(colour map path, photo path, identifier)]`` of one split; UserError on any mismatch."""
    colours = sorted(glob.glob(os.path.join(gtfine_dir, phase, "*", "*_gtFine_color.png")))
    photos = sorted(glob.glob(os.path.join(photo_dir, phase, "*", "*_leftImg8bit.png")))
    if not colours or not photos:
        raise UserError(f"no {phase} images in {gtfine_dir}/{phase}/<city>/*_gtFine_color.png or "
                        f"{photo_dir}/{phase}/<city>/*_leftImg8bit.png: point --gtFine_dir and --leftImg8bit_dir "
                        "at the unzipped Cityscapes folders")
    by_id = {os.path.basename(p)[:-len("_leftImg8bit.png")]: p for p in photos}
    pairs = []
    for colour in colours:
        ident = os.path.basename(colour)[:-len("_gtFine_color.png")]
        if ident not in by_id:
            raise UserError(f"no photo {ident}_leftImg8bit.png for {colour}: use complete gtFine and leftImg8bit "
                            "downloads of the same splits")
        pairs.append((colour, by_id[ident], ident))
    if len(pairs) != len(photos):
        raise UserError(f"{len(photos)} {phase} photos but {len(pairs)} colour label maps: use complete gtFine and "
                        "leftImg8bit downloads of the same splits")
    return pairs


def _resized(path, size):
    with Image.open(path) as img:
        return img.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)


def write_pair(colour, photo, out_path, size):
    """Photo left (A), colour map right (B), each ``size`` x ``size``, as a lossless-quality JPEG."""
    pair = Image.new("RGB", (2 * size, size))
    pair.paste(_resized(photo, size), (0, 0))
    pair.paste(_resized(colour, size), (size, 0))
    pair.save(out_path, format="JPEG", subsampling=0, quality=100)


def write_train_ids(label_ids_path, out_path, lut):
    """``*_gtFine_labelIds.png`` -> train-id PNG of the same size."""
    if not os.path.isfile(label_ids_path):
        raise UserError(f"{label_ids_path} is missing: the gtFine download holds a *_labelIds.png per image")
    with Image.open(label_ids_path) as img:
        ids = np.array(img)
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    Image.fromarray(lut[ids]).save(out_path)


def process(gtfine_dir, photo_dir, output_dir, phase, size, table=None):
    """Write one split's pairs (and, with ``table``, its train-id labels and table lines)."""
    pairs = matched_pairs(gtfine_dir, photo_dir, phase)
    os.makedirs(os.path.join(output_dir, phase), exist_ok=True)
    lut = label_id_to_train_id()
    lines = []
    for i, (colour, photo, ident) in enumerate(tqdm(pairs, desc=phase, leave=False)):
        write_pair(colour, photo, os.path.join(output_dir, phase, f"{i}.jpg"), size)
        if table is not None:
            city = os.path.basename(os.path.dirname(colour))
            rel_label = f"gtFine/{phase}/{city}/{ident}_gtFine_trainIds.png"
            write_train_ids(colour.replace("_gtFine_color.png", "_gtFine_labelIds.png"),
                            os.path.join(output_dir, rel_label), lut)
            lines.append(f"{i} {rel_label} leftImg8bit/{phase}/{city}/{ident}_leftImg8bit.png\n")
    if table is not None:
        os.makedirs(os.path.dirname(os.path.abspath(table)), exist_ok=True)
        with open(table, "w") as f:
            f.writelines(lines)
    log.info("%s: %d pairs written to %s", phase, len(pairs), os.path.join(output_dir, phase))


@cli_entry
def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.size < 1:
        raise UserError(f"--size must be positive, got {args.size}")
    for name in ("gtFine_dir", "leftImg8bit_dir"):
        if not os.path.isdir(getattr(args, name)):
            raise UserError(f"--{name} {getattr(args, name)} is not a folder: give the unzipped Cityscapes folder")
    setup_logging()
    table = args.table or os.path.join(args.output_dir, "table.txt")
    for phase in args.phases:
        process(args.gtFine_dir, args.leftImg8bit_dir, args.output_dir, phase, args.size,
                table=table if phase == "val" else None)
    if "val" in args.phases:
        log.info("val label table written to %s", table)


if __name__ == "__main__":
    main()
