"""Unpaired data (CycleGAN): ``<dataroot>/<phase>A`` and ``<dataroot>/<phase>B``."""
from data.base_dataset import BaseDataset


class UnalignedDataset(BaseDataset):
    """Items ``{'A': FloatTensor[Ca, H, W], 'B': FloatTensor[Cb, H, W], 'A_paths': str, 'B_paths': str}``.

    Length max(|A|, |B|). Item i takes A image i mod |A| and a B image drawn from its own random
    stream (i mod |B| with serial batches or for evaluation). A and B are cropped and flipped
    independently. Values in [-1, 1]; Ca, Cb = 1 for a grayscale side, else 3.
    """

    def __init__(self, opt, phase, train=True):
        super().__init__(opt, phase, train)
        layout = f"unaligned data needs {phase}A and {phase}B under --dataroot {self.root}"
        self.A_paths = self.find_checked(self.split_dir(phase + "A", layout))
        self.B_paths = self.find_checked(self.split_dir(phase + "B", layout))

    def __len__(self):
        return max(len(self.A_paths), len(self.B_paths))

    def __getitem__(self, index):
        self.check_index(index)
        rng = self.item_rng(index)
        a_path = self.A_paths[index % len(self.A_paths)]
        b_index = index % len(self.B_paths) if self.serial else rng.randrange(len(self.B_paths))
        b_path = self.B_paths[b_index]
        return {"A": self.load(a_path, rng, self.gray_A), "B": self.load(b_path, rng, self.gray_B),
                "A_paths": a_path, "B_paths": b_path}
