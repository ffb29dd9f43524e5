"""What the method does to the networks (docs/method.md §3-§7): the mask sparsity losses, the mask
search, structured pruning and distillation. Pure computation on modules and tensors: no file I/O."""
