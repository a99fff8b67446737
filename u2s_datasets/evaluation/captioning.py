"""Captioning utility as the paper measures it: BLIP-2 fine-tuned on the safe images, tested on real ones.

The authors fine-tune BLIP-2 (OPT-2.7B) with LAVIS's ``caption_coco_ft.yaml`` on MS-COCO's human
captions, each image replaced by its safe version where it has one and dropped where it is private
without one, and report the COCO caption metrics on the real test images. This is that recipe in
transformers (``Blip2ForConditionalGeneration``):

- images 364 px (BLIP-2's position embeddings interpolated); training: random resized crop (scale
  0.5-1, bicubic) and horizontal flip; test: bicubic resize;
- captions as LAVIS's ``blip_caption`` processor writes them (lower case, ``.!"()*#:;~`` removed, at
  most 50 words), after the prompt ``"a photo of "`` and ending in ``"\\n"``; the loss covers the
  caption only;
- the language model frozen, the vision tower and Q-Former trained; AdamW, lr 1e-5, weight decay
  0.05 (none on biases and norms), linear warm-up from 1e-8 over 1000 steps of the first epoch, then a
  cosine per epoch to 0; 5 epochs of batch 16;
- captions by beam search (5 beams, 8-30 new tokens) after the same prompt.
"""

import logging
import math
import random
import re
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from PIL import Image

logger = logging.getLogger(__name__)

DEFAULT_BLIP2 = "Salesforce/blip2-opt-2.7b"
PROMPT = "a photo of "


@dataclass
class CaptionRecipe:
    """LAVIS's ``caption_coco_ft.yaml`` for BLIP-2 OPT-2.7B."""

    epochs: int = 5
    batch_size: int = 16
    learning_rate: float = 1e-5
    min_learning_rate: float = 0.0
    warmup_learning_rate: float = 1e-8
    warmup_steps: int = 1000
    weight_decay: float = 0.05
    image_size: int = 364
    min_crop_scale: float = 0.5
    max_words: int = 50
    num_beams: int = 5
    min_new_tokens: int = 8
    max_new_tokens: int = 30
    prompt: str = PROMPT


def pre_caption(caption: str, max_words: int = 50) -> str:
    """LAVIS's ``blip_caption`` text processor."""
    caption = re.sub(r"([.!\"()*#:;~])", " ", caption.lower())
    caption = re.sub(r"\s{2,}", " ", caption).rstrip("\n").strip(" ")
    return " ".join(caption.split(" ")[:max_words])


def learning_rate_at(recipe: CaptionRecipe, epoch: int, step: int) -> float:
    """LAVIS's ``linear_warmup_cosine_lr``: warm-up by step in epoch 0, a cosine by epoch afterwards."""
    if epoch == 0:
        rise = (recipe.learning_rate - recipe.warmup_learning_rate) * step / max(recipe.warmup_steps, 1)
        return min(recipe.learning_rate, recipe.warmup_learning_rate + rise)
    span = recipe.learning_rate - recipe.min_learning_rate
    return span * 0.5 * (1.0 + math.cos(math.pi * epoch / recipe.epochs)) + recipe.min_learning_rate


def random_resized_crop(image: Image.Image, size: int, scale: tuple, rng: random.Random) -> Image.Image:
    """A crop of ``scale`` of the area and aspect 3/4-4/3 (log-uniform), resized to ``size`` (bicubic)."""
    width, height = image.size
    for _ in range(10):
        area = width * height * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        w, h = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            x, y = rng.randint(0, width - w), rng.randint(0, height - h)
            return image.crop((x, y, x + w, y + h)).resize((size, size), Image.BICUBIC)
    side = min(width, height)  # as torchvision falls back: the central square
    x, y = (width - side) // 2, (height - side) // 2
    return image.crop((x, y, x + side, y + side)).resize((size, size), Image.BICUBIC)


def caption_labels(input_ids: torch.Tensor, attention_mask: torch.Tensor, caption_start: torch.Tensor) -> torch.Tensor:
    """Token targets: the caption tokens (from ``caption_start`` of each row on), -100 elsewhere and on padding."""
    positions = torch.arange(input_ids.shape[1]).expand_as(input_ids)
    labels = input_ids.clone()
    labels[(positions < caption_start[:, None]) | (attention_mask == 0)] = -100
    return labels


def _pil(image) -> Image.Image:
    return (image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))).convert("RGB")


class Blip2CaptionTuner:
    """Fine-tunes BLIP-2 on (image, caption) pairs and captions new images; each ``fit`` starts from the checkpoint."""

    def __init__(self, model: str = DEFAULT_BLIP2, revision: Optional[str] = None, recipe: Optional[CaptionRecipe] = None,
                 device: Optional[str] = None, local_files_only: bool = False, progress: bool = True):
        self.model_id, self.revision, self.recipe = model, revision, recipe or CaptionRecipe()
        self.device_name, self.local_files_only, self.progress = device, local_files_only, progress
        self.model = self.processor = None

    def _load(self):
        from transformers import Blip2ForConditionalGeneration, Blip2Processor

        from ..models.devices import resolve_device

        options = dict(revision=self.revision, local_files_only=self.local_files_only)
        try:
            self.processor = Blip2Processor.from_pretrained(self.model_id, **options)
            self.model = Blip2ForConditionalGeneration.from_pretrained(self.model_id, use_safetensors=True, **options)
        except OSError as e:
            raise OSError(f"cannot load the BLIP-2 model {self.model_id!r} (revision {self.revision}): {e}") from None
        self.device = resolve_device(self.device_name, None)
        self.model.to(self.device)
        for parameter in self.model.language_model.parameters():
            parameter.requires_grad_(False)

    def _pixels(self, images: list) -> torch.Tensor:
        size = self.recipe.image_size
        return self.processor.image_processor(images=images, size={"height": size, "width": size},
                                              return_tensors="pt")["pixel_values"]

    def _optimiser(self):
        decay, no_decay = [], []
        for name, parameter in self.model.named_parameters():
            if parameter.requires_grad:
                plain = parameter.ndim < 2 or "bias" in name or "norm" in name or "ln" in name
                (no_decay if plain else decay).append(parameter)
        return torch.optim.AdamW([{"params": decay, "weight_decay": self.recipe.weight_decay},
                                  {"params": no_decay, "weight_decay": 0.0}], lr=self.recipe.learning_rate)

    def fit(self, images: list, captions: list, seed: int = 0):
        """Train on ``images[i]`` with ``captions[i]`` (a string); returns self."""
        from tqdm.auto import tqdm

        torch.manual_seed(seed)
        rng = random.Random(seed)
        self._load()
        recipe, tokenizer = self.recipe, self.processor.tokenizer
        self.model.train()
        optimiser = self._optimiser()
        per_epoch = -(-len(images) // recipe.batch_size)
        bar = tqdm(total=recipe.epochs * per_epoch, desc="fine-tuning BLIP-2", disable=not self.progress)
        for epoch in range(recipe.epochs):
            order = list(range(len(images)))
            rng.shuffle(order)
            for step, start in enumerate(range(0, len(order), recipe.batch_size)):
                for group in optimiser.param_groups:
                    group["lr"] = learning_rate_at(recipe, epoch, step)
                rows = order[start:start + recipe.batch_size]
                crops = [random_resized_crop(_pil(images[i]), recipe.image_size, (recipe.min_crop_scale, 1.0), rng)
                         for i in rows]
                crops = [c.transpose(Image.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else c for c in crops]
                texts = [recipe.prompt + pre_caption(captions[i], recipe.max_words) + "\n" for i in rows]
                tokenizer.padding_side = "right"
                inputs = self.processor(images=crops, text=texts, padding=True, return_tensors="pt")
                prompt_ids = self.processor(images=crops[:1], text=[recipe.prompt], return_tensors="pt")["input_ids"]
                start_at = torch.full((len(rows),), prompt_ids.shape[1])
                labels = caption_labels(inputs["input_ids"], inputs["attention_mask"], start_at)
                loss = self.model(pixel_values=self._pixels(crops).to(self.device),
                                  input_ids=inputs["input_ids"].to(self.device),
                                  attention_mask=inputs["attention_mask"].to(self.device),
                                  labels=labels.to(self.device), interpolate_pos_encoding=True).loss
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                bar.update(1)
        bar.close()
        self.model.eval()
        return self

    def caption(self, images: list, batch_size: int = 8) -> list:
        """Beam-search captions of ``images`` after the prompt (the prompt itself left out)."""
        recipe, captions = self.recipe, []
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                batch = [_pil(image).resize((recipe.image_size,) * 2, Image.BICUBIC)
                         for image in images[start:start + batch_size]]
                inputs = self.processor(images=batch, text=[recipe.prompt] * len(batch), return_tensors="pt")
                output = self.model.generate(
                    pixel_values=self._pixels(batch).to(self.device), input_ids=inputs["input_ids"].to(self.device),
                    attention_mask=inputs["attention_mask"].to(self.device), interpolate_pos_encoding=True,
                    num_beams=recipe.num_beams, min_new_tokens=recipe.min_new_tokens,
                    max_new_tokens=recipe.max_new_tokens, do_sample=False, eos_token_id=self._newline())
                new_tokens = output[:, inputs["input_ids"].shape[1]:]
                captions += [text.strip() for text in self.processor.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
        return captions

    def _newline(self) -> int:
        """Captions end at their newline, as LAVIS stops OPT's generation."""
        return self.processor.tokenizer("\n", add_special_tokens=False)["input_ids"][0]

    def describe(self) -> dict:
        r = self.recipe
        return {"id": self.model_id, "revision": self.revision,
                "recipe": f"BLIP-2 caption fine-tuning as LAVIS caption_coco_ft: {r.epochs} epochs, batch {r.batch_size}, "
                          f"AdamW lr {r.learning_rate} (warm-up {r.warmup_steps} steps, cosine), weight decay "
                          f"{r.weight_decay}, {r.image_size} px, language model frozen, prompt {r.prompt!r}, "
                          f"{r.num_beams} beams, {r.min_new_tokens}-{r.max_new_tokens} new tokens"}


def _caption_lists(captions: list, name: str) -> list:
    lists = []
    for i, value in enumerate(captions):
        value = [value] if isinstance(value, str) else list(value or [])
        if not value or not all(isinstance(c, str) and c.strip() for c in value):
            raise ValueError(f"{name}[{i}]: expected a caption or a non-empty list of captions, got {captions[i]!r}")
        lists.append(value)
    return lists


def _pairs(images: list, captions: list) -> tuple:
    """One training pair per (image, caption), as LAVIS's COCO annotations list them; images without one dropped."""
    kept = [(image, caption) for image, options in zip(images, captions) if image is not None for caption in options]
    return [image for image, _ in kept], [caption for _, caption in kept]


def compute_caption_utility(predictions: list, references: Optional[list], captions: list, test_images: list,
                            test_captions: list, *, model: str = DEFAULT_BLIP2, revision: Optional[str] = None,
                            recipe: Optional[CaptionRecipe] = None, device: Optional[str] = None,
                            local_files_only: bool = False, seed: int = 0, meteor: bool = True,
                            progress: bool = True) -> dict:
    """BLIP-2 fine-tuned on the safe training images (``predictions``) and on the raw ones (``references``;
    None skips it), each with its ``captions``; both caption the REAL ``test_images``, scored against
    ``test_captions`` with the COCO caption metrics. A safe image that is None (a private row without a
    safe version) is dropped, as the authors drop it.
    """
    from .caption_scores import compute_caption_scores
    from .inputs import as_rgb, check_same_length

    check_same_length(predictions=predictions, references=references, captions=captions)
    check_same_length(test_images=test_images, test_captions=test_captions)
    if not len(test_images):
        raise ValueError("the captioning utility needs a real test split: test_images is empty")
    captions, test_captions = _caption_lists(captions, "captions"), _caption_lists(test_captions, "test_captions")
    safe = [None if v is None else as_rgb(v, f"predictions[{i}] (safe training image)") for i, v in enumerate(predictions)]
    test = [as_rgb(v, f"test_images[{i}]") for i, v in enumerate(test_images)]
    runs = {"safe": safe}
    if references is not None:
        runs["raw"] = [as_rgb(v, f"references[{i}] (raw training image)") for i, v in enumerate(references)]
    result, per_image = {"n_train": len(predictions), "dropped_train": sum(v is None for v in safe), "n_test": len(test)}, {}
    tuner = Blip2CaptionTuner(model, revision, recipe, device, local_files_only, progress)
    for name, images in runs.items():
        train_images, train_captions = _pairs(images, captions)
        if not train_images:
            raise ValueError(f"the {name} training set has no image left to train on")
        predicted = tuner.fit(train_images, train_captions, seed).caption(test)
        scores = compute_caption_scores(predicted, test_captions, meteor=meteor)
        result.update({f"{name}_{key}": value for key, value in scores.items() if isinstance(value, float)})
        per_image[f"{name}_captions"] = predicted
        per_image[f"{name}_cider"] = scores["per_image"]["cider"]
    if "raw" in runs:
        result["cider_ratio"] = result["safe_cider"] / result["raw_cider"] if result["raw_cider"] else None
    result["per_image"] = per_image
    result["models"] = {"captioner": tuner.describe(), "scorer": scores["models"]["scorer"]}
    return result
