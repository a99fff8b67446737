"""Training pairs as tensors: square images in [-1, 1] and token ids of the instruction and the public caption.

Two ways to make an image square: ``"crop"`` (the shorter side scaled to the resolution,
then the centre crop; aspect kept, edges lost) and ``"stretch"`` (the whole image resized
to the square, aspect not kept; the paper's data loader). Horizontal flips are drawn per
pair in the training loop (``flip_pairs``), from the run's checkpointed generator.
"""

import logging

import numpy as np
import torch
from PIL import Image

from .. import columns as C
from .pairs import SOURCE_IMAGE, TARGET_IMAGE

logger = logging.getLogger(__name__)


def square(image: Image.Image, resolution: int) -> Image.Image:
    """Shorter side scaled to ``resolution``, then the centre ``resolution`` x ``resolution`` crop."""
    image = image.convert("RGB")
    width, height = image.size
    scale = resolution / min(width, height)
    size = (max(resolution, round(width * scale)), max(resolution, round(height * scale)))
    image = image.resize(size, Image.BICUBIC)
    left, top = (size[0] - resolution) // 2, (size[1] - resolution) // 2
    return image.crop((left, top, left + resolution, top + resolution))


def stretch(image: Image.Image, resolution: int) -> Image.Image:
    """The whole image resized to ``resolution`` x ``resolution`` (Lanczos, as the paper's data loader)."""
    return image.convert("RGB").resize((resolution, resolution), Image.LANCZOS)


RESIZE = {"crop": square, "stretch": stretch}


def flip_pairs(batch: dict, probability: float, generator: torch.Generator) -> dict:
    """Each pair mirrored left-right with ``probability``: source and target together, so they stay aligned."""
    if probability <= 0:
        return batch
    source = batch["source"]
    flip = (torch.rand(source.shape[0], generator=generator) < probability).to(source.device).view(-1, 1, 1, 1)
    return {**batch, "source": torch.where(flip, source.flip(-1), source),
            "target": torch.where(flip, batch["target"].flip(-1), batch["target"])}


def to_tensor(image: Image.Image) -> torch.Tensor:
    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


class PairsDataset(torch.utils.data.Dataset):
    """Rows of a pairs split, ready for the InstructPix2Pix objective.

    Each item: ``source`` and ``target`` (3xRxR in [-1, 1], both made square the same way, ``resize``),
    ``instruction_ids`` and ``public_ids`` (padded to the tokenizer's length). Texts longer
    than the text encoder's window are cut there, with a warning that counts them. With
    ``tokenizer=None`` the texts themselves (``instruction``, ``public_caption``), for
    pipelines that encode their own prompts.
    """

    def __init__(self, pairs, tokenizer, resolution: int, resize: str = "crop"):
        if resize not in RESIZE:
            raise ValueError(f"resize={resize!r} is not one of {', '.join(map(repr, RESIZE))}")
        self.pairs = pairs
        self.tokenizer = tokenizer
        self.resolution = resolution
        self.resize = RESIZE[resize]
        self.texts = {"instruction": [t or "" for t in pairs[C.EDIT_INSTRUCTION]],
                      "public_caption": [t or "" for t in pairs[C.PUBLIC_CAPTION]]}
        if tokenizer is not None:
            length = tokenizer.model_max_length
            self.instruction_ids = self._tokenize(self.texts["instruction"], length, "edit instructions")
            self.public_ids = self._tokenize(self.texts["public_caption"], length, "public captions")

    def _tokenize(self, texts, length, what):
        texts = [t or "" for t in texts]
        full = self.tokenizer(texts, padding=False, truncation=False)["input_ids"]
        cut = sum(len(ids) > length for ids in full)
        if cut:
            logger.warning("%d of %d %s are longer than %d tokens and are cut there", cut, len(texts), what, length)
        return self.tokenizer(texts, padding="max_length", max_length=length, truncation=True, return_tensors="pt").input_ids

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, index):
        row = self.pairs[int(index)]
        item = {"source": to_tensor(self.resize(row[SOURCE_IMAGE], self.resolution)),
                "target": to_tensor(self.resize(row[TARGET_IMAGE], self.resolution))}
        if self.tokenizer is None:
            return {**item, **{name: texts[index] for name, texts in self.texts.items()}}
        return {**item, "instruction_ids": self.instruction_ids[index], "public_ids": self.public_ids[index]}
