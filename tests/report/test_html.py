"""report/html.py: the training page (epochs newest first, every image it shows on disk, none with
--no_html or in test mode) and test.py's result pages."""
import re
from pathlib import Path

from report import html
from report.visualizer import Visualizer, save_images
from tests.report.conftest import _opt, _records, _size, _visuals


def _srcs(index_html):
    return re.findall(r'src="([^"]+)"', index_html)


def test_html_page_epochs_newest_first_and_images_exist(tmp_path):
    vis = Visualizer(_opt(tmp_path))
    web = tmp_path / "ckpt" / "run" / "web"
    vis.reset()
    vis.display_current_results(_visuals(), epoch=1, save_result=False)  # first of the epoch: saved
    first = web / "images" / "epoch001_real_A.png"
    assert first.is_file()
    first.unlink()
    vis.display_current_results(_visuals(), epoch=1, save_result=False)  # already saved this epoch
    assert not first.exists()
    vis.display_current_results(_visuals(), epoch=1, save_result=True)  # forced save
    assert first.exists()
    vis.reset()
    vis.display_current_results(_visuals(), epoch=2, save_result=False)
    vis.plot_mask_search(_records())

    page = (web / "index.html").read_text()
    srcs = _srcs(page)
    assert srcs, "no images on the page"
    for src in srcs:
        assert (web / src).is_file(), src
    assert page.index("Mask search") < page.index("epoch [2]") < page.index("epoch [1]")
    assert page.index("epoch002_fake_B.png") < page.index("epoch001_fake_B.png")
    assert "images/mask_search.png" in srcs
    assert "width:64px" in page
    assert 'http-equiv="refresh"' in page
    # grayscale visual saved as RGB at the training resolution
    assert _size(web / "images" / "epoch002_real_B.png") == (8, 8)
    assert not [p for p in (web / "images").iterdir() if p.name.startswith(".")], "temporary files left"


def test_no_html_and_test_mode_write_no_page(tmp_path):
    for name, overrides in (("nohtml", dict(no_html=True)), ("eval", dict(isTrain=False))):
        vis = Visualizer(_opt(tmp_path, name=name, **overrides))
        vis.display_current_results(_visuals(), epoch=1, save_result=True)
        vis.plot_mask_search(_records())
        assert not (tmp_path / "ckpt" / name / "web").exists()


def test_save_images_for_test_script(tmp_path):
    webpage = html.HTML(tmp_path / "web", "test results")
    visuals = {"fake_B": _visuals()["fake_B"]}
    paths = save_images(webpage, visuals, ["data/testA/img 01.tar.jpg"], aspect_ratio=2.0, width=32)
    flat = save_images(webpage, visuals, "data/testA/img02.jpg", flat=True)
    index = Path(webpage.save()).read_text()
    assert Path(paths[0]) == tmp_path / "web" / "images" / "fake_B" / "img 01_fake_B.png"
    assert _size(paths[0]) == (16, 8)  # width stretched by the aspect ratio
    assert Path(flat[0]) == tmp_path / "web" / "images" / "img02_fake_B.png"
    assert "images/fake_B/img%2001_fake_B.png" in _srcs(index)
    assert "images/img02_fake_B.png" in _srcs(index)
