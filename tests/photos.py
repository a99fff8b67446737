"""Real photos that ship inside installed packages (scikit-image, matplotlib)."""


import numpy as np
import skimage.data

from u2s_datasets.samples import sample_images


def grace_hopper() -> np.ndarray:
    return np.asarray(sample_images()["grace_hopper"])


def astronaut() -> np.ndarray:
    return skimage.data.astronaut()


def page() -> np.ndarray:
    return np.stack([skimage.data.page()] * 3, axis=-1)


def coffee() -> np.ndarray:
    return skimage.data.coffee()


def chelsea() -> np.ndarray:
    return skimage.data.chelsea()


def blurred(rgb: np.ndarray, sigma: float) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(rgb, (0, 0), sigma)


def text_painted_over(rgb: np.ndarray) -> np.ndarray:
    """The page with every line the OCR finds painted over in the paper's colour (until none is left)."""
    from u2s_datasets.inspect.detectors import TextDetector

    detector, painted = TextDetector(), rgb.copy()
    for _ in range(3):
        lines = detector(painted)
        for line in lines:
            x0, y0, x1, y1 = (int(v) for v in line.box)
            painted[max(0, y0 - 4):y1 + 4, max(0, x0 - 4):x1 + 4] = 200
        if not lines:
            break
    return painted
