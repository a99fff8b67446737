"""A recall set for the local detectors: strings drawn and faces pasted into the sample photos.

Everything is built offline from what installed packages ship: the photos of
``u2s_datasets.samples``, the DejaVu fonts of matplotlib and the faces of the
sample photos themselves (astronaut, grace_hopper, camera). A seed fixes every
choice, so the benchmark and the tests see the same images.

Strings come as plain text, name tags, licence plates and inverse signs (light on
dark), 10-40 px tall, turned by -90..90 degrees. Faces are cut out of the sample photos
with a feathered ellipse, scaled to a given width and turned in-plane.
"""

import functools
import os
import random
import string
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..samples import sample_images

STYLES = ("plain", "name_tag", "plate", "inverse")
FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSans-Oblique.ttf")
# Photos with nothing private of their own: the pasted faces are then the only faces.
FACE_FREE = ("coffee", "chelsea", "china", "flower")
FACE_SOURCES = ("astronaut", "grace_hopper", "camera")
_NAMES = ("MARGARET", "OKONKWO", "LINDQVIST", "HAYASHI", "FERREIRA", "NOWAKOWSKI", "DUBOIS", "KARLSSON",
          "ABERNATHY", "SANTIAGO", "WOJCIK", "PETROVA", "MCALLISTER", "ODUYA", "VANDERBERG", "CASTELLANO")
_WORDS = ("Pharmacy", "Bakery", "Station", "Harbour", "Library", "Exit Gate", "Museum", "Garage",
          "Platform", "Theatre", "Clinic", "Market", "Ferry", "Office", "Hostel", "Stadium")


@dataclass
class DrawnString:
    text: str
    style: str
    height: int  # font size in pixels
    angle: float  # degrees, counter-clockwise
    quad: np.ndarray  # 4x2 corners of the drawn label in image pixels


@dataclass
class PastedFace:
    identity: str  # the sample photo the face was cut from
    width: int  # face width in pixels (the detector's box width at paste scale)
    angle: float  # in-plane rotation, degrees counter-clockwise
    box: tuple  # the face's axis-aligned box (x0, y0, x1, y1) where it was pasted, unrotated size
    center: tuple = (0.0, 0.0)


@dataclass
class RecallImage:
    name: str
    image: Image.Image
    strings: list = field(default_factory=list)
    faces: list = field(default_factory=list)


def font_path(name: str) -> str:
    import matplotlib

    return os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "fonts", "ttf", name)


def random_string(rng: random.Random, style: str) -> str:
    if style == "plate":
        letters = lambda n: "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(n))  # noqa: E731
        return f"{letters(2)}{rng.randint(10, 99)} {letters(3)}"
    if style == "name_tag":
        return f"{rng.choice(string.ascii_uppercase)}. {rng.choice(_NAMES).title()}"
    return f"{rng.choice(_WORDS)} {rng.randint(10, 999)}"


def render_label(text: str, style: str, height: int, font_name: str, background_luma: float) -> Image.Image:
    """The string on its label as RGBA, unrotated: tag, plate, dark sign, or bare text."""
    font = ImageFont.truetype(font_path(font_name), height)
    left, top, right, bottom = font.getbbox(text)
    pad = max(3, height // 3)
    width, tall = right - left + 2 * pad, bottom - top + 2 * pad
    label = Image.new("RGBA", (width, tall), (0, 0, 0, 0))
    draw = ImageDraw.Draw(label)
    if style == "name_tag":
        draw.rounded_rectangle((0, 0, width - 1, tall - 1), radius=pad, fill=(250, 250, 245, 255), outline=(30, 60, 140, 255), width=max(1, pad // 3))
        ink = (20, 20, 30, 255)
    elif style == "plate":
        draw.rectangle((0, 0, width - 1, tall - 1), fill=(245, 205, 40, 255), outline=(10, 10, 10, 255), width=max(1, pad // 3))
        ink = (10, 10, 10, 255)
    elif style == "inverse":
        draw.rectangle((0, 0, width - 1, tall - 1), fill=(25, 35, 60, 255))
        ink = (245, 245, 245, 255)
    else:  # plain: the text straight on the photo, in the colour that stands out there
        ink = (15, 15, 15, 255) if background_luma > 120 else (245, 245, 245, 255)
    draw.text((pad - left, pad - top), text, font=font, fill=ink)
    return label


def paste_rotated(canvas: np.ndarray, rgba: np.ndarray, center: tuple, angle: float) -> np.ndarray:
    """Alpha-composite ``rgba`` turned by ``angle`` about its centre onto ``canvas`` at ``center``; returns the 4 corners."""
    h, w = rgba.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float64)
    turned = corners @ matrix[:, :2].T + matrix[:, 2]
    shift = np.array(center) - turned.mean(axis=0)
    matrix[:, 2] += shift
    size = (canvas.shape[1], canvas.shape[0])
    warped = cv2.warpAffine(rgba, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    alpha = warped[..., 3:4].astype(np.float32) / 255.0
    canvas[:] = (canvas * (1 - alpha) + warped[..., :3] * alpha).round().astype(np.uint8)
    return (turned + shift).astype(np.float32)


def _fits(quad: np.ndarray, taken: list, size: tuple, margin: int = 6) -> bool:
    x0, y0 = quad.min(axis=0) - margin
    x1, y1 = quad.max(axis=0) + margin
    if x0 < 0 or y0 < 0 or x1 > size[0] or y1 > size[1]:
        return False
    return all(x1 < a or x0 > c or y1 < b or y0 > d for a, b, c, d in taken)


def draw_strings(image: Image.Image, specs: list, rng: random.Random, name: str = "") -> RecallImage:
    """Draw ``specs`` [(style, height, angle, font)] at free random places; specs that find no room are left out."""
    canvas = np.array(image.convert("RGB"))
    size, taken, drawn = image.size, [], []
    luma = cv2.cvtColor(canvas, cv2.COLOR_RGB2GRAY)
    for style, height, angle, font_name in specs:
        text = random_string(rng, style)
        for _ in range(200):
            cx, cy = rng.uniform(0, size[0]), rng.uniform(0, size[1])
            y, x = int(min(cy, size[1] - 1)), int(min(cx, size[0] - 1))
            local = float(luma[max(0, y - height):y + height, max(0, x - 4 * height):x + 4 * height].mean())
            label = np.asarray(render_label(text, style, height, font_name, local))
            h, w = label.shape[:2]
            matrix = cv2.getRotationMatrix2D((0, 0), angle, 1.0)[:, :2]
            corners = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]]) @ matrix.T + (cx, cy)
            if _fits(corners, taken, size):
                quad = paste_rotated(canvas, label, (cx, cy), angle)
                x0, y0 = quad.min(axis=0)
                x1, y1 = quad.max(axis=0)
                taken.append((x0, y0, x1, y1))
                drawn.append(DrawnString(text, style, height, angle, quad))
                break
    return RecallImage(name, Image.fromarray(canvas), strings=drawn)


def text_set(count: int = 16, per_image: int = 4, seed: int = 0, scale: float = 1.0) -> list:
    """``count`` sample photos with ``per_image`` strings each; styles, heights 10-40 px and angles cycle."""
    rng = random.Random(seed)
    photos = sample_images()
    backgrounds = [n for n in photos if n != "page"]
    heights = (10, 12, 14, 16, 20, 26, 32, 40)
    angles = (0, 8, -15, 30, -45, 60, 90, -90, 20, -70)
    out, k = [], 0
    for i in range(count):
        name = backgrounds[i % len(backgrounds)]
        image = photos[name].convert("RGB")
        if scale != 1.0:
            image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC)
        specs = []
        for _ in range(per_image):
            specs.append((STYLES[k % len(STYLES)], heights[k % len(heights)], angles[k % len(angles)], FONTS[k % len(FONTS)]))
            k += 1
        out.append(draw_strings(image, specs, rng, f"{name}-{i}"))
    return out


@functools.lru_cache(maxsize=1)
def face_cutouts() -> dict:
    """identity -> (RGBA cut-out with a feathered elliptic alpha, face box width inside it)."""
    from ..inspect.detectors import CenterFaceDetector

    detector, out = CenterFaceDetector(max_side=4096), {}
    for name in FACE_SOURCES:
        rgb = np.asarray(sample_images()[name].convert("RGB"))
        face = detector(rgb)[0]
        x0, y0, x1, y1 = face.box
        cx, cy, w, h = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
        half = 0.75 * max(w, h)
        a, b = int(max(0, cx - half)), int(max(0, cy - half))
        c, d = int(min(rgb.shape[1], cx + half)), int(min(rgb.shape[0], cy + half))
        crop = rgb[b:d, a:c]
        alpha = np.zeros(crop.shape[:2], dtype=np.uint8)
        center = (int(cx - a), int(cy - b))
        cv2.ellipse(alpha, center, (int(0.62 * w), int(0.66 * h)), 0, 0, 360, 255, -1)
        alpha = cv2.GaussianBlur(alpha, (0, 0), max(1.0, 0.05 * w))
        out[name] = (np.dstack([crop, alpha]), float(w), (center[0], center[1]))
    return out


def paste_faces(image: Image.Image, specs: list, rng: random.Random, name: str = "") -> RecallImage:
    """Paste faces [(identity, width, angle)] at free random places (spread over the whole photo)."""
    canvas = np.array(image.convert("RGB"))
    size, taken, pasted = image.size, [], []
    for identity, width, angle in specs:
        cutout, face_width, _ = face_cutouts()[identity]
        scale = width / face_width
        small = cv2.resize(cutout, (max(4, round(cutout.shape[1] * scale)), max(4, round(cutout.shape[0] * scale))),
                           interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
        h, w = small.shape[:2]
        for _ in range(200):
            cx, cy = rng.uniform(w, size[0] - w), rng.uniform(h, size[1] - h)
            quad = np.array([[cx - w, cy - h], [cx + w, cy + h]])
            if _fits(quad, taken, size):
                paste_rotated(canvas, small, (cx, cy), angle)
                taken.append((cx - w, cy - h, cx + w, cy + h))
                box = (cx - width / 2, cy - width * 0.6, cx + width / 2, cy + width * 0.6)
                pasted.append(PastedFace(identity, width, angle, box, (cx, cy)))
                break
    return RecallImage(name, Image.fromarray(canvas), faces=pasted)


def face_set(count: int = 4, widths=(16, 24, 32, 48, 64, 80, 120), angles=(0, 20, -45), long_side=(3000, 4000), seed: int = 0) -> list:
    """Large photos (upscaled face-free samples) with pasted faces of every width x angle spread over them."""
    rng = random.Random(seed)
    photos = sample_images()
    specs = [(FACE_SOURCES[i % len(FACE_SOURCES)], w, a) for i, (w, a) in enumerate((w, a) for w in widths for a in angles)]
    out = []
    for i in range(count):
        name = FACE_FREE[i % len(FACE_FREE)]
        base = photos[name].convert("RGB")
        side = long_side[i % len(long_side)]
        scale = side / max(base.size)
        image = base.resize((round(base.width * scale), round(base.height * scale)), Image.BICUBIC)
        mine = specs[i::count] if count > 1 else specs
        out.append(paste_faces(image, mine, rng, f"{name}-{side}px-{i}"))
    return out
