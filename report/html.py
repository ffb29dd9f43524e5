"""A small HTML page of image tables (``<web_dir>/index.html`` with images under ``<web_dir>/images``)."""
import os
from urllib.parse import quote

import dominate
from dominate.tags import a, br, h3, img, meta, p, table, td, tr

from util.files import atomic_path


def _image_url(name):
    # Page-relative URL of a file in images/; quoted so names with spaces or '#' still resolve.
    return "images/" + quote(name.replace(os.sep, "/"))


class HTML:
    """Build a page step by step, then :meth:`save` it to ``<web_dir>/index.html``.

    Image arguments are paths relative to :meth:`get_image_dir`. ``refresh > 0`` adds an auto-reload
    every ``refresh`` seconds (useful while training).
    """

    def __init__(self, web_dir, title, refresh=0):
        self.title = title
        self.web_dir = os.fspath(web_dir)
        self.img_dir = os.path.join(self.web_dir, "images")
        os.makedirs(self.img_dir, exist_ok=True)
        self.doc = dominate.document(title=title)
        if refresh > 0:
            with self.doc.head:
                meta(http_equiv="refresh", content=str(refresh))

    def get_image_dir(self):
        """The folder the page's images live in."""
        return self.img_dir

    def add_header(self, text):
        """A section header (``<h3>``)."""
        with self.doc:
            h3(text)

    def add_images(self, ims, txts, links, width=256):
        """One table row of images ``ims`` with captions ``txts``, each linking to ``links``."""
        t = table(border=1, style="table-layout: fixed;")
        self.doc.add(t)
        with t:
            with tr():
                for im, txt, link in zip(ims, txts, links):
                    with td(style="word-wrap: break-word;", halign="center", valign="top"):
                        with p():
                            with a(href=_image_url(link)):
                                img(style=f"width:{int(width)}px", src=_image_url(im))
                            br()
                            p(txt)

    def add_image_block(self, path, caption, width=None):
        """A single figure (e.g. a plot) with a caption; ``width`` in pixels, None = natural size."""
        style = f"width:{int(width)}px" if width else "max-width:100%"
        with self.doc:
            with p():
                with a(href=_image_url(path)):
                    img(style=style, src=_image_url(path))
                br()
                p(caption)

    def save(self):
        """Write ``index.html`` atomically (a browser refreshing mid-write sees the old page)."""
        html_file = os.path.join(self.web_dir, "index.html")
        with atomic_path(html_file) as tmp:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(self.doc.render())
        return html_file
