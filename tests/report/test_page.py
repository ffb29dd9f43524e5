"""report/page.py: the pipeline report, one index.html with its sections in order, its images referenced
by relative paths, and a missing image refused before the page is written."""
import pytest
import torch
from PIL import Image

from report.page import cpu_latency_ms, write_report


def test_the_page_shows_every_section_in_order_with_relative_image_paths(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "kept.png")
    (tmp_path / "images").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "images" / "a.png")
    page = write_report(str(tmp_path), "Demo report", [
        {"title": "Compression", "table": {"header": ["model", "MACs"], "rows": [["teacher", "1.2G"], ["student", 0.3]]}},
        {"title": "Kept channels", "images": [("kept.png", "G_A")]},
        {"title": "Translations", "grid": {"header": ["input"], "rows": [["images/a.png"]]}},
        {"title": "Notes", "text": "the tiny preset"}])
    assert page == str(tmp_path / "index.html")
    html = (tmp_path / "index.html").read_text()
    assert "<h1>Demo report</h1>" in html
    assert html.index("Compression") < html.index("Kept channels") < html.index("Translations") < html.index("Notes")
    assert "<th>MACs</th>" in html and "<td>student</td>" in html and "<td>0.3</td>" in html
    assert 'src="kept.png"' in html and 'src="images/a.png"' in html and "the tiny preset" in html
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "index.html", "kept.png"]  # nothing else


def test_a_missing_image_is_refused_and_no_page_is_written(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.png"):
        write_report(str(tmp_path), "Demo report", [{"title": "Kept channels", "images": [("nowhere.png", "G_A")]}])
    assert list(tmp_path.iterdir()) == []


def test_cpu_latency_runs_the_net_in_eval_mode():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Dropout()).train()
    assert cpu_latency_ms(net, (1, 3, 8, 8), runs=2) >= 0
    assert not net.training and not net[1].training
