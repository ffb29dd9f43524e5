"""One domain only (test.py on unpaired inputs): a folder of images."""
import os

from data.base_dataset import BaseDataset
from data.image_folder import is_image_file
from util.errors import UserError


class SingleDataset(BaseDataset):
    """Items ``{'A': FloatTensor[C, H, W] in [-1, 1], 'A_paths': str}``.

    Images come from ``<dataroot>`` itself when it directly holds images, else from
    ``<dataroot>/<phase>A`` (``<phase>B`` with ``--direction BtoA``: the side the generator reads),
    else from ``<dataroot>/<phase>``. The key is ``A`` (the input) either way, and the images have the
    channels of the generator's input (``--input_nc``), whichever side they are.
    """

    def __init__(self, opt, phase, train=True):
        super().__init__(opt, phase, train)
        self.side = "B" if opt.direction == "BtoA" else "A"
        self.gray_A = opt.input_nc == 1  # every image feeds the generator
        self.A_paths = self.find_checked(self._folder())

    def _folder(self):
        if any(is_image_file(n) and os.path.isfile(os.path.join(self.root, n)) for n in os.listdir(self.root)):
            return self.root
        for name in (self.phase + self.side, self.phase):
            if os.path.isdir(os.path.join(self.root, name)):
                return os.path.join(self.root, name)
        raise UserError(f"--dataroot {self.root} holds no images, nor a folder {self.phase}{self.side} or "
                        f"{self.phase}: point --dataroot at a folder of images")

    def __len__(self):
        return len(self.A_paths)

    def __getitem__(self, index):
        self.check_index(index)
        path = self.A_paths[index]
        return {"A": self.load(path, self.item_rng(index), self.gray_A), "A_paths": path}
