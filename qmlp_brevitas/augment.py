"""Light augmentation of training batches: random crop with padding and horizontal flip.

:class:`BatchAugment` acts on a normalised batch ``(B, C, H, W)`` on its device, the way
torchvision's ``RandomCrop(size, padding=p)`` and ``RandomHorizontalFlip()`` act on single images:
the image is padded by ``p`` pixels of the black background (0 before normalisation, so
``-mean / std`` after it), a ``H x W`` window at a uniformly random offset in ``[0, 2p]`` is cut
out, and with probability 1/2 the result is mirrored left-right. Crop and flip are one gather.
The random numbers come from the augmenter's own generator, seeded per epoch
(:meth:`BatchAugment.set_epoch`), so a resumed run sees the same batches as an uninterrupted one.
Only training steps use it: calibration, evaluation and the export's verification input see
the plain images.
"""

from __future__ import annotations

import torch
from torch import Tensor


class BatchAugment:
    """Random crop with ``padding`` pixels (0: none) and random horizontal ``flip`` of a batch."""

    def __init__(self, padding: int, flip: bool, fill: tuple[float, ...], seed: int = 0):
        if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
            raise ValueError(f"random-crop padding must be an integer >= 0, got {padding!r}")
        self.padding, self.flip = padding, flip
        self.fill = tuple(float(v) for v in fill)
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    @property
    def enabled(self) -> bool:
        return self.padding > 0 or self.flip

    def set_epoch(self, epoch: int, rank: int = 0) -> None:
        """Reseed for ``epoch`` (and process ``rank``): the same epoch gets the same draws."""
        self.generator.manual_seed(self.seed * 1_000_003 + epoch * 1_009 + rank)

    def __call__(self, x: Tensor) -> Tensor:
        if not self.enabled:
            return x
        b, c, h, w = x.shape
        if len(self.fill) not in (1, c):
            raise ValueError(f"{len(self.fill)} fill values for {c} channels")
        p = self.padding
        offset = torch.randint(0, 2 * p + 1, (2, b), generator=self.generator)
        mirror = (
            torch.rand(b, generator=self.generator) < 0.5
            if self.flip
            else torch.zeros(b, dtype=torch.bool)
        )
        rows = offset[0, :, None] + torch.arange(h)
        steps = torch.arange(w)
        cols = offset[1, :, None] + torch.where(mirror[:, None], w - 1 - steps, steps)
        if p:
            fill = torch.tensor(self.fill, dtype=x.dtype, device=x.device).view(-1, 1, 1)
            padded = fill.expand(b, c, h + 2 * p, w + 2 * p).clone()
            padded[:, :, p : p + h, p : p + w] = x
        else:
            padded = x
        rows, cols = rows.to(x.device), cols.to(x.device)
        batch = torch.arange(b, device=x.device)[:, None, None, None]
        chans = torch.arange(c, device=x.device)[None, :, None, None]
        return padded[batch, chans, rows[:, None, :, None], cols[:, None, None, :]]
