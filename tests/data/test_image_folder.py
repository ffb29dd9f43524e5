"""data/image_folder.py: the image files of a folder (sorted, any case, no loops or links out of it),
unique result names, photographs read as they are displayed (EXIF orientation), every Pillow mode as
8-bit L or RGB, and every image of a split decoded up front."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

import data
from data.image_folder import image_sizes, load_image, verify_images
from tests.data.conftest import make_opt, noise, save_noise
from util.errors import UserError


def _photo(path, orientation):
    """A 40x20 JPEG whose left half is red and right half blue, stored with EXIF ``orientation``."""
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20, 0] = 255
    pixels[:, 20:, 2] = 255
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, quality=95, exif=exif)


@pytest.mark.parametrize("orientation, size", [(1, (40, 20)), (3, (40, 20)), (6, (20, 40)), (8, (20, 40))])
def test_exif_orientation_is_applied_to_size_and_pixels(tmp_path, orientation, size):
    path = tmp_path / "photo.jpg"
    _photo(path, orientation)
    img = load_image(str(path))
    assert img.size == size and image_sizes([str(path)]) == [size]
    pixels = np.asarray(img).astype(int)
    red_first = pixels[2, 2, 0] > 200
    if orientation == 1:  # as stored: red left
        assert red_first
    elif orientation == 3:  # turned half round: blue left
        assert not red_first
    elif orientation == 6:  # displayed turned a quarter clockwise: red on top
        assert red_first and pixels[-3, 2, 2] > 200
    else:  # 8: a quarter anticlockwise: blue on top
        assert not red_first and pixels[-3, 2, 0] > 200


def test_verify_names_the_first_truncated_image(tmp_path):
    paths = []
    for i in range(70):  # above the threshold where a thread pool decodes
        path = tmp_path / f"{i:03d}.png"
        Image.fromarray(np.full((8, 8, 3), i, np.uint8)).save(path)
        paths.append(str(path))
    verify_images(paths)
    for i in (10, 50):
        raw = open(paths[i], "rb").read()
        open(paths[i], "wb").write(raw[: len(raw) // 2])
    with pytest.raises(UserError, match="010.png"):
        verify_images(paths)


# ---------------------------------------------------------------- file lists

def test_find_images_recursive_sorted_any_case(tmp_path):
    (tmp_path / "sub" / "deep").mkdir(parents=True)
    for name in ("b.PNG", "a.jpg", "sub/c.JPEG", "sub/deep/d.tiff", "e.Bmp", "f.ppm", "g.TIF"):
        noise(8, 8, 0).save(tmp_path / name, format="PNG" if name.lower().endswith(("png", "jpg", "jpeg")) else None)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "._hidden.png").write_bytes(b"resource fork")
    found = data.find_images(str(tmp_path))
    rel = [os.path.relpath(p, tmp_path) for p in found]
    assert rel == sorted(rel)
    assert set(rel) == {"b.PNG", "a.jpg", "sub/c.JPEG", "sub/deep/d.tiff", "e.Bmp", "f.ppm", "g.TIF"}
    assert data.find_images(str(tmp_path), max_size=2) == found[:2]


def test_find_images_errors_name_the_path(tmp_path):
    with pytest.raises(UserError, match=str(tmp_path / "nope")):
        data.find_images(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images.*" + str(tmp_path / "empty")):
        data.find_images(str(tmp_path / "empty"))


def test_folder_walk_follows_no_loop_and_no_link_out_of_the_folder(tmp_path, caplog):
    """4 + 4 images and a ``trainA/loop -> ..`` link: trainA still lists its 4 images, none of trainB."""
    save_noise(tmp_path / "trainA", 4, 8, 8)
    save_noise(tmp_path / "trainB", 4, 8, 8, seed0=10)
    save_noise(tmp_path / "outside", 1, 8, 8, seed0=20)
    os.symlink("..", tmp_path / "trainA" / "loop")
    os.symlink(tmp_path / "outside" / "img_00.png", tmp_path / "trainA" / "external.png")
    os.symlink("img_00.png", tmp_path / "trainA" / "alias.png")  # a second name of a listed image
    with caplog.at_level("WARNING"):
        found = data.find_images(str(tmp_path / "trainA"))
    assert found == [str(tmp_path / "trainA" / f"img_{i:02d}.png") for i in range(4)]
    assert "loop" in caplog.text or "external" in caplog.text


def test_result_names_are_unique_paths_relative_to_the_folder(tmp_path):
    from data.image_folder import result_names

    for rel in ("cam1/frame.png", "cam2/frame.png", "top.png", "x.png", "x.jpg", "img 01.tar.jpg"):
        os.makedirs(os.path.dirname(tmp_path / rel), exist_ok=True)
        noise(8, 8, 0).save(tmp_path / rel, format="PNG")
    names = result_names(data.find_images(str(tmp_path)), str(tmp_path))
    assert sorted(names.values()) == ["cam1/frame", "cam2/frame", "img 01", "top", "x.jpg", "x.png"]


# ---------------------------------------------------------------- every image read right

def test_16_bit_gray_png_reaches_the_network_as_its_8_bit_copy(tmp_path):
    """A 16-bit grayscale PNG (values 0..65535) is scaled to 8 bits, not clipped to white."""
    gray8 = np.random.default_rng(0).integers(0, 256, (40, 40), dtype=np.uint8)
    for root, img in ((tmp_path / "d16", Image.fromarray(gray8.astype(np.uint16) * 257)),
                      (tmp_path / "d8", Image.fromarray(gray8))):
        for split in ("trainA", "trainB"):
            os.makedirs(root / split)
            img.save(root / split / "x.png")
    assert Image.open(tmp_path / "d16" / "trainA" / "x.png").mode.startswith("I")
    for nc in (1, 3):
        opt = dict(input_nc=nc, output_nc=nc, no_flip=True, serial_batches=True)
        wide = data.create_dataset(make_opt(tmp_path / "d16", **opt))[0]["A"]
        narrow = data.create_dataset(make_opt(tmp_path / "d8", **opt))[0]["A"]
        assert wide.shape == (nc, 32, 32) and torch.equal(wide, narrow)


def test_every_pillow_mode_maps_to_8_bit_l_or_rgb_with_its_full_range():
    from data.image_folder import to_8bit

    # (mode, value of a black pixel, value of a white one)
    cases = [("1", 0, 1), ("L", 0, 255), ("LA", (0, 255), (255, 255)), ("La", (0, 255), (255, 255)),
             ("P", 0, 1), ("PA", (0, 255), (1, 255)), ("RGB", (0, 0, 0), (255, 255, 255)),
             ("RGBA", (0, 0, 0, 255), (255, 255, 255, 255)), ("RGBX", (0, 0, 0, 0), (255, 255, 255, 0)),
             ("RGBa", (0, 0, 0, 255), (255, 255, 255, 255)), ("CMYK", (0, 0, 0, 255), (0, 0, 0, 0)),
             ("YCbCr", (0, 128, 128), (255, 128, 128)), ("HSV", (0, 0, 0), (0, 0, 255)),
             ("LAB", (0, 128, 128), (255, 128, 128)), ("I", 0, 65535), ("F", 0.0, 1.0),
             ("I;16", 0, 65535), ("I;16B", 0, 65535), ("I;16L", 0, 65535)]
    for mode, black, white in cases:
        img = Image.new(mode, (2, 1), black)
        if mode.startswith("P"):
            img.putpalette([0, 0, 0, 255, 255, 255])
        img.putpixel((1, 0), white)
        out = to_8bit(img)
        assert out.mode in ("L", "RGB"), mode
        values = np.asarray(out.convert("L")).astype(int)
        assert values[0, 0] <= 1 and values[0, 1] >= 254, (mode, values)
