"""data/__init__.py: create_dataset's choice of dataset mode and create_dataloader's loaders (order,
workers, epochs replayed, batches of one size)."""
import time

import pytest
import torch

import data
import options
from tests.data.conftest import make_opt
from util.frozen import replace
from util.errors import UserError


def test_serial_batches_loader_order(unaligned_root):
    opt = make_opt(unaligned_root, serial_batches=True)
    ds = data.create_dataset(opt)
    paths = [p for batch in data.create_dataloader(opt, ds) for p in batch["A_paths"]]
    assert paths == ds.A_paths
    opt = replace(opt, serial_batches=False)
    orders = {tuple(p for b in data.create_dataloader(opt, ds, epoch=e) for p in b["A_paths"]) for e in range(1, 6)}
    assert all(sorted(o) == sorted(ds.A_paths) for o in orders)
    assert len(orders) > 1


def test_loader_workers_match_single_process(unaligned_root):
    opt = make_opt(unaligned_root, batch_size=2)
    ds = data.create_dataset(opt)

    def batches(workers, epoch):
        return list(data.create_dataloader(opt, ds, epoch=epoch, num_workers=workers))

    serial, parallel = batches(0, 2), batches(2, 2)
    assert [len(b["A_paths"]) for b in serial] == [2, 2, 1]  # last partial batch kept
    assert len(serial) == len(parallel)
    for x, y in zip(serial, parallel):
        assert x["A_paths"] == y["A_paths"] and x["B_paths"] == y["B_paths"]
        assert torch.equal(x["A"], y["A"]) and torch.equal(x["B"], y["B"])
    other = batches(0, 3)
    assert any(not torch.equal(x["A"], y["A"]) for x, y in zip(serial, other))
    start = time.perf_counter()
    for _ in data.create_dataloader(opt, ds, num_workers=2):
        break  # leaving early stops the workers at once
    # a hang guard, not a timing: without the early stop the loader would wait on its workers forever
    assert time.perf_counter() - start < 120


def test_loader_set_epoch_replays(unaligned_root):
    opt = make_opt(unaligned_root)
    ds = data.create_dataset(opt)
    loader = data.create_dataloader(opt, ds, epoch=5)
    assert isinstance(loader, torch.utils.data.DataLoader)
    first = list(loader)
    loader.set_epoch(6)
    list(loader)
    loader.set_epoch(5)
    again = list(loader)
    fresh = list(data.create_dataloader(opt, data.create_dataset(opt), epoch=5))
    for x, y, z in zip(first, again, fresh):
        assert torch.equal(x["A"], y["A"]) and torch.equal(x["A"], z["A"]) and x["B_paths"] == z["B_paths"]


def test_loader_defaults_from_options(unaligned_root):
    opt = options.parse("train", ["--dataroot", str(unaligned_root), "--load_size", "36", "--crop_size", "32",
                                  "--num_threads", "0", "--batch_size", "3", "--serial_batches"])
    ds = data.create_dataset(opt)
    loader = data.create_dataloader(opt, ds)
    assert loader.batch_size == 3 and loader.num_workers == 0 and not loader.drop_last
    batch = next(iter(loader))
    assert batch["A"].shape == (3, 3, 32, 32) and batch["A_paths"] == ds.A_paths[:3]
    assert next(iter(data.create_dataloader(opt, ds, batch_size=1, shuffle=True)))["A"].shape[0] == 1


def test_corrupt_file_in_worker_surfaces_as_one_line_user_error(unaligned_root):
    opt = make_opt(unaligned_root, serial_batches=True)
    ds = data.create_dataset(opt)
    bad = ds.A_paths[3]
    with open(bad, "wb") as f:  # broken after the construction-time check
        f.write(b"\x89PNG\r\n\x1a\ngarbage")
    for workers in (0, 2):
        with pytest.raises(UserError) as err:
            list(data.create_dataloader(opt, ds, num_workers=workers))
        assert bad in str(err.value) and "\n" not in str(err.value)


def test_images_of_different_sizes_in_one_batch_are_a_user_error(tmp_path):
    from data import _collate

    items = [{"A": torch.zeros(3, 8, 8), "B": torch.zeros(3, 8, 8)},
             {"A": torch.zeros(3, 8, 8), "B": torch.zeros(3, 12, 8)}]
    with pytest.raises(UserError, match="--batch_size 1"):
        _collate(items)
    assert _collate(items[:1])["B"].shape == (1, 3, 8, 8)


def test_unknown_dataset_mode(unaligned_root):
    with pytest.raises(UserError, match="--dataset_mode 'paired'"):
        data.create_dataset(make_opt(unaligned_root), dataset_mode="paired")
