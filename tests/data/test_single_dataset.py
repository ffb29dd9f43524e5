"""data/single_dataset.py: one folder of images, or the side of a split the direction reads."""
import data
from tests.data.conftest import make_opt, save_noise


def test_single_dataset_folders(unaligned_root, tmp_path_factory):
    flat = tmp_path_factory.mktemp("flat")
    save_noise(flat, 3, 40, 40)
    ds = data.create_dataset(make_opt(flat, dataset_mode="single"), train=False)
    assert len(ds) == 3 and set(ds[0]) == {"A", "A_paths"} and ds[0]["A"].shape == (3, 32, 32)
    ds = data.create_dataset(make_opt(unaligned_root, dataset_mode="single"), phase="test", train=False)
    assert ds.A_paths == data.find_images(str(unaligned_root / "testA"))
    # BtoA reads the B side: the generator's input (G_B maps B images)
    ds = data.create_dataset(make_opt(unaligned_root, dataset_mode="single", direction="BtoA"), phase="test",
                             train=False)
    assert ds.A_paths == data.find_images(str(unaligned_root / "testB"))
    split = tmp_path_factory.mktemp("split")
    save_noise(split / "test", 2, 40, 40)
    ds = data.create_dataset(make_opt(split, dataset_mode="single", phase="test"), train=False)
    assert ds.A_paths == data.find_images(str(split / "test"))
