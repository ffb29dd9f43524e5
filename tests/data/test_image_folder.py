"""data/image_folder.py: photographs are read as they are displayed (EXIF orientation), and every image
of a split can be decoded up front."""
import numpy as np
import pytest
from PIL import Image

from data.image_folder import image_sizes, load_image, verify_images
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
