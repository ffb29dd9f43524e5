"""Paired data (pix2pix): ``<dataroot>/<phase>/`` images holding A (left half) and B (right half)."""
from data.base_dataset import BaseDataset
from data.image_folder import load_image


class AlignedDataset(BaseDataset):
    """Items ``{'A': FloatTensor[Ca, H, W], 'B': FloatTensor[Cb, H, W], 'A_paths': str, 'B_paths': str}``.

    Both halves of a pair get the same crop and flip; ``A_paths == B_paths`` is the pair's file.
    Values in [-1, 1]; Ca, Cb = 1 for a grayscale side, else 3.
    """

    def __init__(self, opt, phase, train=True):
        super().__init__(opt, phase, train)
        folder = self.split_dir(phase, f"aligned data needs a folder {phase} of A|B pair images "
                                       f"under --dataroot {self.root}")
        self.AB_paths = self.find_checked(folder, halves=True)

    def __len__(self):
        return len(self.AB_paths)

    def __getitem__(self, index):
        self.check_index(index)
        path = self.AB_paths[index]
        ab = load_image(path)
        w, h = ab.size
        self.check_pair_width(path, w)
        half = w // 2
        a, b = ab.crop((0, 0, half, h)), ab.crop((half, 0, w, h))
        self.preprocess.check(a.size, path)
        params = self.preprocess.sample(a.size, self.item_rng(index))
        return {"A": self.preprocess.apply(a, params, self.gray_A), "B": self.preprocess.apply(b, params, self.gray_B),
                "A_paths": path, "B_paths": path}

    def load_side(self, index, side):
        """One half of pair ``index`` (the pair's crop and flip), as an item of :meth:`domain`."""
        item = self[index]
        return {side: item[side], f"{side}_paths": item[f"{side}_paths"]}

    def side_length(self, side):
        return len(self.AB_paths)

    def item_size_key(self, index):
        return (self.preprocess.output_size(self.sizes[self.AB_paths[index]]),)
