"""What a run shows: the visdom display and loss log (visualizer.py), the HTML pages of saved images
(html.py), the demo and study report pages (page.py) and image saving (image.py)."""
