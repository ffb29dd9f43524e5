"""The history of generated images the discriminator sees (Shrivastava et al.), method.md §8.3."""
import torch


class ImagePool:
    """``query(images)``: while not full, store and return each image; afterwards, with probability
    0.5 return a stored image (replacing it by the new one), else the new one. ``size`` 0 disables it.

    Random choices come from a private ``torch.Generator`` whose state is checkpointed with the pool,
    so a resumed run draws what an uninterrupted one would.
    """

    def __init__(self, size, seed=0):
        self.size = size
        self.images = []
        self.generator = torch.Generator().manual_seed(seed)

    def query(self, images):
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand(1, generator=self.generator).item() > 0.5:
                index = int(torch.randint(0, self.size, (1,), generator=self.generator))
                out.append(self.images[index].clone())
                self.images[index] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_dict(self):
        # a list, not one tensor: with --preprocess none or scale_width the images differ in size
        return {"size": self.size, "images": [img.cpu() for img in self.images], "rng": self.generator.get_state()}

    def load_state_dict(self, state, device):
        stored = state["images"]
        if torch.is_tensor(stored):  # one [N, C, H, W] tensor
            stored = [img.unsqueeze(0) for img in stored]
        self.images = [img.to(device) for img in stored][: self.size]
        self.generator.set_state(state["rng"])
