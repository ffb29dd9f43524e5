"""One domain only (test.py on unpaired inputs): a folder of images."""
import os

from data.base_dataset import BaseDataset
from data.image_folder import is_image_file
from util.errors import UserError


class SingleDataset(BaseDataset):
    """Items ``{'A': FloatTensor[C, H, W] in [-1, 1], 'A_paths': str}``.

    Images come from ``<dataroot>`` itself when it directly holds images, else from
    ``<dataroot>/<phase>A``, else from ``<dataroot>/<phase>``.
    """

    def __init__(self, opt, phase, train=True):
        super().__init__(opt, phase, train)
        self.A_paths = self.find_checked(self._folder())

    def _folder(self):
        if any(is_image_file(n) and os.path.isfile(os.path.join(self.root, n)) for n in os.listdir(self.root)):
            return self.root
        for name in (self.phase + "A", self.phase):
            if os.path.isdir(os.path.join(self.root, name)):
                return os.path.join(self.root, name)
        raise UserError(f"--dataroot {self.root} holds no images, nor a folder {self.phase}A or {self.phase}: "
                        "point --dataroot at a folder of images")

    def __len__(self):
        return len(self.A_paths)

    def __getitem__(self, index):
        self.check_index(index)
        path = self.A_paths[index]
        return {"A": self.load(path, self.item_rng(index), self.gray_A), "A_paths": path}
