"""Image transforms of MAE's fine-tuning recipe, on PIL images, every draw from a given ``random.Random``.

MAE fine-tunes its classifiers with timm's ``create_transform``: a random resized crop
(scale 0.08-1, ratio 3/4-4/3, bicubic), a horizontal flip and RandAugment
``rand-m9-mstd0.5-inc1``; at test time the shorter side goes to size / 0.875 and the centre
square is kept. timm cannot be imported without torchvision (every release imports it when
the package loads), so the same policy is written here on PIL: ``num_ops`` operations per
image, drawn with replacement from timm's 15 "increasing" ones, each applied with
probability 0.5 at a magnitude drawn from N(magnitude, magnitude_std) and clipped to
[0, 10]. Fill colour and geometry follow timm's ImageNet settings (the mean colour, bicubic,
translations up to 45% of the side).
"""

import math
import random

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

LEVEL_MAX = 10.0


def _signed(value: float, rng: random.Random) -> float:
    return -value if rng.random() > 0.5 else value


def _affine(image, matrix, fill):
    return image.transform(image.size, Image.AFFINE, matrix, resample=Image.BICUBIC, fillcolor=fill)


def _solarize_add(image, add):
    lut = [min(255, i + add) if i < 128 else i for i in range(256)]
    return image.point(lut * 3)


def _enhance(kind):
    # "Increasing" enhancements: 1.0 is no change, the magnitude moves the factor towards 0.1 or 1.9.
    return lambda image, level, rng, fill: kind(image).enhance(max(0.1, 1.0 + _signed(level / LEVEL_MAX * 0.9, rng)))


# name -> (image, level in [0, 10], rng, fill colour) -> image; the severity grows with the level for every one.
OPERATIONS = {
    "AutoContrast": lambda image, level, rng, fill: ImageOps.autocontrast(image),
    "Equalize": lambda image, level, rng, fill: ImageOps.equalize(image),
    "Invert": lambda image, level, rng, fill: ImageOps.invert(image),
    "Rotate": lambda image, level, rng, fill: image.rotate(_signed(level / LEVEL_MAX * 30.0, rng), resample=Image.BICUBIC,
                                                           fillcolor=fill),
    "PosterizeIncreasing": lambda image, level, rng, fill: ImageOps.posterize(image, 4 - int(level / LEVEL_MAX * 4)),
    "SolarizeIncreasing": lambda image, level, rng, fill: ImageOps.solarize(image, 256 - min(256, int(level / LEVEL_MAX * 256))),
    "SolarizeAdd": lambda image, level, rng, fill: _solarize_add(image, min(128, int(level / LEVEL_MAX * 110))),
    "ColorIncreasing": _enhance(ImageEnhance.Color),
    "ContrastIncreasing": _enhance(ImageEnhance.Contrast),
    "BrightnessIncreasing": _enhance(ImageEnhance.Brightness),
    "SharpnessIncreasing": _enhance(ImageEnhance.Sharpness),
    "ShearX": lambda image, level, rng, fill: _affine(image, (1, _signed(level / LEVEL_MAX * 0.3, rng), 0, 0, 1, 0), fill),
    "ShearY": lambda image, level, rng, fill: _affine(image, (1, 0, 0, _signed(level / LEVEL_MAX * 0.3, rng), 1, 0), fill),
    "TranslateXRel": lambda image, level, rng, fill: _affine(
        image, (1, 0, _signed(level / LEVEL_MAX * 0.45, rng) * image.size[0], 0, 1, 0), fill),
    "TranslateYRel": lambda image, level, rng, fill: _affine(
        image, (1, 0, 0, 0, 1, _signed(level / LEVEL_MAX * 0.45, rng) * image.size[1]), fill),
}


class RandAugment:
    """RandAugment(num_ops, magnitude, magnitude_std) with timm's increasing operations; ``probability`` per operation."""

    def __init__(self, num_ops: int = 2, magnitude: float = 9, magnitude_std: float = 0.5, probability: float = 0.5,
                 fill=(128, 128, 128)):
        self.num_ops, self.magnitude, self.magnitude_std = num_ops, magnitude, magnitude_std
        self.probability, self.fill = probability, tuple(fill)

    def __call__(self, image: Image.Image, rng: random.Random) -> Image.Image:
        image = image.convert("RGB")
        names = list(OPERATIONS)
        for name in [rng.choice(names) for _ in range(self.num_ops)]:
            if rng.random() > self.probability:
                continue
            level = rng.gauss(self.magnitude, self.magnitude_std) if self.magnitude_std > 0 else self.magnitude
            image = OPERATIONS[name](image, max(0.0, min(LEVEL_MAX, level)), rng, self.fill)
        return image


def random_resized_crop(image: Image.Image, size: int, rng: random.Random, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)) -> Image.Image:
    """A crop of random area and aspect, resized to ``size`` x ``size`` (bicubic); the centre crop after ten misses."""
    width, height = image.size
    area = width * height
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            left, top = rng.randint(0, width - w), rng.randint(0, height - h)
            return image.resize((size, size), Image.BICUBIC, box=(left, top, left + w, top + h))
    w, h = width, height  # the whole image, cut to the nearest allowed aspect
    if width / height < ratio[0]:
        h = min(height, round(width / ratio[0]))
    elif width / height > ratio[1]:
        w = min(width, round(height * ratio[1]))
    left, top = (width - w) // 2, (height - h) // 2
    return image.resize((size, size), Image.BICUBIC, box=(left, top, left + w, top + h))


def resize_center_crop(image: Image.Image, size: int, crop_fraction: float = 0.875) -> Image.Image:
    """The shorter side to ``size / crop_fraction`` (bicubic), then the centre ``size`` square."""
    width, height = image.size
    short = int(size / crop_fraction)
    scale = short / min(width, height)
    resized = image.resize((max(short, round(width * scale)), max(short, round(height * scale))), Image.BICUBIC)
    left, top = (resized.width - size) // 2, (resized.height - size) // 2
    return resized.crop((left, top, left + size, top + size))


class MAETrainTransform:
    """Random resized crop, horizontal flip (0.5), RandAugment: MAE's training images."""

    def __init__(self, size: int, randaugment: RandAugment):
        self.size, self.randaugment = size, randaugment

    def __call__(self, image: Image.Image, rng: random.Random) -> Image.Image:
        image = random_resized_crop(image.convert("RGB"), self.size, rng)
        if rng.random() < 0.5:
            image = ImageOps.mirror(image)
        return self.randaugment(image, rng)


def normalised(image: Image.Image, mean, std) -> np.ndarray:
    """3 x H x W float32, (pixel / 255 - mean) / std per channel."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return ((array - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)).transpose(2, 0, 1)
