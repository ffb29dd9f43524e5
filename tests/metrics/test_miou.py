"""metrics/miou.py: confusion histograms and mean IoU, label ids, segmentation at the label size, the
Cityscapes table; and datasets/prepare_cityscapes_dataset.py, which writes the pairs, labels and table."""
import os

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from metrics import miou
from tests.metrics.conftest import SIZE
from util.errors import UserError


def test_fast_hist_and_mean_iou_on_hand_made_maps():
    label = np.array([[0, 0, 1, 255], [1, 2, 2, 2]])
    pred = np.array([[0, 1, 1, 0], [1, 2, 2, 0]])
    hist = miou.fast_hist(pred, label, 3)
    assert hist.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 2]]  # rows: label; the 255 pixel is ignored
    np.testing.assert_allclose(miou.per_class_iou(hist), [1 / 3, 2 / 3, 2 / 3])
    assert miou.mean_iou(hist) == 55.56
    full = miou.fast_hist(pred, label)  # 19 classes: absent ones are NaN and left out of the mean
    assert full.shape == (19, 19) and miou.mean_iou(full) == 55.56
    assert np.isnan(miou.mean_iou(np.zeros((19, 19))))


def test_label_ids_map_to_train_ids():
    lut = miou.label_id_to_train_id()
    assert lut[7] == 0 and lut[26] == 13 and lut[33] == 18
    assert lut[0] == lut[6] == lut[9] == lut[34] == 255
    assert sorted(set(lut.tolist()) - {255}) == list(range(19))


class _HalfAndHalf(nn.Module):
    """A stand-in segmenter: class 3 on the left half, class 5 on the right (at input resolution)."""

    def forward(self, x):
        n, _, h, w = x.shape
        out = torch.full((n, 19, h, w), -10.0)
        out[:, 3, :, : w // 2] = 0
        out[:, 5, :, w // 2:] = 0
        return out


def test_segment_resizes_to_the_label_size_and_normalises():
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    pred = miou.segment_image(_HalfAndHalf(), image, "cpu", (6, 16))
    assert pred.shape == (6, 16)
    assert (pred[:, :8] == 3).all() and (pred[:, 8:] == 5).all()
    seen = {}

    class Probe(nn.Module):
        def forward(self, x):
            seen["x"] = x
            return torch.zeros(x.shape[0], 19, *x.shape[2:])

    miou.segment_image(Probe(), torch.full((3, 8, 8), 255, dtype=torch.uint8), "cpu", (8, 8))
    expected = (1 - torch.tensor(miou.DRN_MEAN)) / torch.tensor(miou.DRN_STD)
    assert torch.allclose(seen["x"][0, :, 0, 0], expected)


def test_read_table_and_find_label(tmp_path):
    (tmp_path / "table.txt").write_text(
        "0 gtFine/val/a/a_1_gtFine_trainIds.png leftImg8bit/val/a/a_1_leftImg8bit.png\n"
        "\n1 gtFine/val/b/b_2_gtFine_trainIds.png leftImg8bit/val/b/b_2_leftImg8bit.png\n")
    table = miou.read_table(str(tmp_path))
    assert miou.find_label(table, "1") == os.path.join(str(tmp_path), "gtFine/val/b/b_2_gtFine_trainIds.png")
    assert miou.find_label(table, "a_1_leftImg8bit").endswith("a_1_gtFine_trainIds.png")
    with pytest.raises(UserError, match="'7'"):
        miou.find_label(table, "7")
    with pytest.raises(UserError, match="table.txt"):
        miou.read_table(str(tmp_path / "nowhere"))


# ---------------------------------------------------------------- Cityscapes preparation

def test_prepare_cityscapes_writes_pairs_labels_and_table(cityscapes_root):
    out, origin = cityscapes_root
    assert sorted(os.listdir(out / "val")) == ["0.jpg", "1.jpg", "2.jpg"]
    assert len(os.listdir(out / "train")) == 3
    with Image.open(out / "val" / "1.jpg") as pair:
        assert pair.size == (2 * SIZE, SIZE)
        left = np.asarray(pair)[:, :SIZE].astype(float)
    with Image.open(origin / "leftImg8bit" / "val" / "city" / "city_000001_000019_leftImg8bit.png") as photo:
        expected = np.asarray(photo.resize((SIZE, SIZE), Image.Resampling.BICUBIC)).astype(float)
    assert np.abs(left - expected).mean() < 8  # photo on the left (JPEG at quality 100)
    lines = (out / "table.txt").read_text().splitlines()
    assert lines[1] == ("1 gtFine/val/city/city_000001_000019_gtFine_trainIds.png "
                        "leftImg8bit/val/city/city_000001_000019_leftImg8bit.png")
    train_ids = np.array(Image.open(out / "gtFine/val/city/city_000001_000019_gtFine_trainIds.png"))
    label_ids = np.array(Image.open(origin / "gtFine/val/city/city_000001_000019_gtFine_labelIds.png"))
    assert train_ids.shape == (32, 64)
    assert np.array_equal(train_ids, miou.label_id_to_train_id()[label_ids])
    assert set(np.unique(train_ids)) <= {0, 1, 13, 10, 255, 18}


def test_check_labels_reads_the_values_of_a_sample_and_every_header(tmp_path):
    paths = []
    for i in range(20):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(np.full((4, 4), i % 19, dtype=np.uint8)).save(paths[-1])
    miou.check_labels(paths)
    Image.fromarray(np.full((4, 4), 26, dtype=np.uint8)).save(paths[-1])  # the last one is always read
    with pytest.raises(UserError, match="19.png holds values \\(26\\)"):
        miou.check_labels(paths)
