"""models/image_pool.py: the pool of generated images the discriminators see, and CycleGAN's
--pool_size."""
import io

import torch

from models import create_model
from models.image_pool import ImagePool
from tests.models.conftest import opts


def images(n, start=0):
    return torch.stack([torch.full((3, 2, 2), float(i)) for i in range(start, start + n)])


def test_pool_size_zero_is_a_passthrough():
    pool = ImagePool(0)
    x = images(3)
    assert pool.query(x) is x and pool.images == []


def test_pool_fills_then_respects_its_size():
    pool = ImagePool(3, seed=1)
    out = pool.query(images(2))
    assert torch.equal(out, images(2)) and len(pool.images) == 2
    out = pool.query(images(4, start=2))  # one more fits, the rest are swapped or passed through
    assert out.shape == (4, 3, 2, 2) and len(pool.images) == 3
    assert torch.equal(out[0], images(1, start=2)[0])
    for i in range(20):
        out = pool.query(images(2, start=10 + 2 * i))
        assert out.shape == (2, 3, 2, 2) and len(pool.images) == 3
    values = {float(img.mean()) for img in pool.images}
    assert values - {0.0, 1.0, 2.0}  # old images were replaced by later ones


def test_pool_returns_stored_images_about_half_the_time():
    pool = ImagePool(5, seed=3)
    pool.query(images(5))
    stored = 0
    for i in range(200):
        out = pool.query(images(1, start=100 + i))
        stored += float(out.mean()) != 100 + i
    assert 60 < stored < 140


def test_pool_state_dict_round_trip():
    pool = ImagePool(4, seed=5)
    for i in range(6):
        pool.query(images(1, start=i))
    buffer = io.BytesIO()
    torch.save(pool.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    other = ImagePool(4, seed=99)
    other.load_state_dict(state, torch.device("cpu"))
    assert len(other.images) == 4
    assert all(torch.equal(a, b) for a, b in zip(pool.images, other.images))
    for i in range(10):
        x = images(2, start=50 + 2 * i)
        assert torch.equal(pool.query(x), other.query(x))


def test_image_pool_state_keeps_images_of_different_sizes():
    """With --preprocess none or scale_width the pooled images differ in size; checkpoints keep them."""
    pool = ImagePool(4, seed=0)
    pool.query(torch.zeros(1, 3, 8, 8))
    pool.query(torch.ones(1, 3, 12, 8))
    restored = ImagePool(4, seed=0)
    restored.load_state_dict(pool.state_dict(), "cpu")
    assert [tuple(i.shape) for i in restored.images] == [(1, 3, 8, 8), (1, 3, 12, 8)]
    assert torch.equal(restored.images[1], pool.images[1])


def test_cyclegan_pool_honours_pool_size():
    m = create_model(opts("--ngf", "4", "--ndf", "4", "--pool_size", "7"), torch.device("cpu"))
    assert m.pools["A"].size == m.pools["B"].size == 7
    m0 = create_model(opts("--ngf", "4", "--ndf", "4", "--pool_size", "0"), torch.device("cpu"))
    x = images(2)
    assert m0.pools["A"].query(x) is x
