"""The pipeline report: one HTML page (``index.html``) with the compression table, CPU latency, the kept
channels per layer as pictures, and translated images side by side. Every image is a file next to the
page, referenced by a relative path, so the folder can be copied or served as it is.
"""
import os

import dominate
import dominate.util
import torch
from dominate import tags

from util.files import atomic_path
from util.timing import median_ms

# Counts loaded images once the page has loaded (read by the browser check in the tests; harmless
# for a reader): sets data-images-total / data-images-loaded on <body>.
_IMAGE_CHECK = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute('data-images-total', imgs.length);
  document.body.setAttribute('data-images-loaded', ok);
});
"""


@torch.no_grad()
def cpu_latency_ms(net, shape, runs=5):
    """Median wall time (ms) of ``net`` on a zero input of ``shape`` on the CPU, eval mode, after a
    warm-up pass. The network is moved to the CPU and left in eval mode."""
    net = net.cpu().eval()
    x = torch.zeros(*shape)
    return median_ms(lambda: net(x), runs)


def write_report(out_dir, title, sections):
    """Write ``out_dir/index.html``. ``sections`` is a list of dicts, each with a ``title`` and one of:
    ``table`` ({"header": [...], "rows": [[...], ...]}), ``images`` (list of (relative path, caption)),
    ``grid`` ({"header": [...], "rows": [[relative image path, ...], ...]}) or ``text`` (str).
    Image paths are relative to ``out_dir`` and must exist. Returns the page's path."""
    doc = dominate.document(title=title)
    with doc.head:
        tags.meta(charset="utf-8")
        tags.style("body{font-family:sans-serif;margin:2em} table{border-collapse:collapse;margin:1em 0}"
                   "td,th{border:1px solid #bbb;padding:4px 8px;text-align:right} th{background:#eee}"
                   "td.img{padding:2px} img{image-rendering:pixelated}")
        tags.script(dominate.util.raw(_IMAGE_CHECK))
    with doc:
        tags.h1(title)
        for section in sections:
            tags.h2(section["title"])
            if "text" in section:
                tags.p(section["text"])
            if "table" in section:
                _table(section["table"]["header"], section["table"]["rows"])
            if "images" in section:
                for path, caption in section["images"]:
                    _check(out_dir, path)
                    with tags.figure(style="display:inline-block;margin:0 1em 1em 0"):
                        tags.img(src=path, alt=caption, style="max-width:640px")
                        tags.figcaption(caption)
            if "grid" in section:
                with tags.table():
                    with tags.tr():
                        for head in section["grid"]["header"]:
                            tags.th(head)
                    for row in section["grid"]["rows"]:
                        with tags.tr():
                            for path in row:
                                _check(out_dir, path)
                                tags.td(tags.img(src=path, width=128, alt=os.path.basename(path)), cls="img")
    page = os.path.join(out_dir, "index.html")
    with atomic_path(page) as tmp:
        with open(tmp, "w") as handle:
            handle.write(doc.render())
    return page


def _table(header, rows):
    with tags.table():
        with tags.tr():
            for head in header:
                tags.th(head)
        for row in rows:
            with tags.tr():
                for cell in row:
                    tags.td(str(cell))


def _check(out_dir, path):
    if not os.path.isfile(os.path.join(out_dir, path)):
        raise FileNotFoundError(f"report image {path} is missing in {out_dir}")
