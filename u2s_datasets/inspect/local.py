"""The offline inspector of the ``local`` preset: real detectors, captions from what they found."""

import numpy as np

from ..records import Inspection, Region, ReviewItem
from ..taxonomy import with_parents
from .detectors import CenterFaceDetector, Detection, RegionReader, TextDetector, as_pixels
from .plates import licence_plates, union_box
from .row_pool import RowPool, release_freed_memory

MAX_QUOTED_WORDS = 12


class DetectorInspector:
    """Faces (CenterFace) -> ``people_faces``; readable text (PP-OCR) -> ``text_symbols``, or
    ``licence_plates`` for lines with a plate's shape and characters (``plates.py``).

    On the CPU the rows of a part are looked at side by side, one core and one set of detectors
    each: onnxruntime spreads one 512-px photo over two cores poorly, and two rows at once go
    almost twice as fast. On a GPU one set of detectors stacks the views of every row into shared runs.
    """

    reads_grey = True  # grey images may come as "L" views: the detectors turn what they read to RGB

    def __init__(self, config, rank=None, **shared):
        from ..models.devices import detector_device

        settings = config.inspect
        self.read_text = settings.read_text
        self.done = DONE.get(config.edit.editor)  # the public caption says what the editor does
        device = detector_device(config.model.device, rank)
        make = lambda threads: _Detectors(settings, threads, device)  # noqa: E731
        self.rows = RowPool(make) if device == "cpu" else None
        self.batched = make(0) if device != "cpu" else None

    def inspect(self, images: list, class_labels: list) -> list:
        if self.rows is not None:
            found = self.rows.map(lambda detectors, image: detectors.look([image])[0], images)
        else:
            found = self.batched.look(images)
        return [self._inspection(image, label, faces, lines) for image, label, (faces, lines) in zip(images, class_labels, found)]

    def _inspection(self, image, label, faces, found_lines) -> Inspection:
        groups = licence_plates(found_lines)
        plates = [_plate([found_lines[i] for i in group]) for group in groups]
        on_plates = {i for group in groups for i in group}
        lines = [t for i, t in enumerate(found_lines) if i not in on_plates]
        regions = [Region("people_faces", _int_box(f.box, image.size), f.score, "face") for f in faces]
        regions += [Region("text_symbols", _int_box(t.box, image.size), t.score, t.text) for t in lines]
        regions += [Region("licence_plates", _int_box(p.box, image.size), p.score, p.text) for p in plates]
        categories = with_parents(c for c in ("people_faces", "text_symbols", "licence_plates") if any(r.category == c for r in regions))
        subject = subject_of(label)
        if not regions:
            return Inspection(is_private=False, private_caption=subject, public_caption=subject)
        review = []
        if faces:
            review.append(ReviewItem(_count(len(faces), "face"), "a face can identify a person", "people_faces"))
        if lines:
            review.append(ReviewItem(_count(len(lines), "line") + " of text", "text can name people, places or numbers", "text_symbols"))
        if plates:
            review.append(ReviewItem(_count(len(plates), "licence plate"), "a plate names a vehicle and its owner", "licence_plates"))
        return Inspection(
            is_private=True,
            categories=categories,
            private_caption=_private_caption(subject, faces, lines, plates, self.read_text),
            public_caption=_public_caption(subject, faces, lines, plates, self.done),
            regions=regions,
            review=review,
        )


class _Detectors:
    """One face detector and one text detector, for one thread (CPU) or for every row (GPU)."""

    def __init__(self, settings, threads: int, device: str):
        self.faces = _face_detector(settings, threads, device) if settings.detect_faces else None
        self.text = _text_detector(settings, threads, device) if settings.detect_text else None

    def look(self, images: list) -> list:
        """(faces, lines) per image."""
        pixels = [as_pixels(image) for image in images]
        large = any(isinstance(p, RegionReader) for p in pixels)
        faces = [[] for _ in images]
        if self.faces is not None:
            try:
                faces = self.faces.detect(pixels)
            finally:
                if large:  # a large photo's views leave hundreds of MB held
                    self.faces.release_memory()
                    release_freed_memory()
        lines = self.text.detect(pixels) if self.text is not None else [[] for _ in pixels]
        return list(zip(faces, lines))


def _face_detector(settings, threads: int, device: str) -> CenterFaceDetector:
    return CenterFaceDetector(
        settings.face_threshold, settings.detector_max_side, min_face=settings.face_min_size, angles=settings.face_angles,
        proposal_threshold=settings.face_proposal_threshold, tile=settings.detector_tile_size, overlap=settings.detector_tile_overlap,
        turned_min_face=settings.face_turned_min_size, turned_proposal_threshold=settings.face_turned_proposal_threshold,
        small_proposal_threshold=settings.face_small_proposal_threshold,
        threads=threads, device=device, precision=settings.detector_precision,
    )


def _text_detector(settings, threads: int, device: str) -> TextDetector:
    return TextDetector(
        settings.text_threshold, settings.detector_max_side, min_side=settings.text_min_side, inverse=settings.text_inverse,
        orientations=settings.text_orientations, threads=threads, tile=settings.detector_tile_size,
        overlap=settings.detector_tile_overlap, device=device, precision=settings.detector_precision,
    )


def subject_of(label) -> str:
    """What a caption says the image is: ``a photo of a cat``, or ``a photo`` without a class."""
    return f"a photo of {_article(label)}" if label else "a photo"


def _private_caption(subject, faces, lines, plates, quote) -> str:
    parts = []
    if faces:
        parts.append(_count(len(faces), "face"))
    if plates and quote:
        parts.append(f"the licence plate{'s' if len(plates) > 1 else ''} " + ", ".join(f"'{p.text}'" for p in plates))
    elif plates:
        parts.append(_count(len(plates), "licence plate"))
    if lines:
        words = " ".join(t.text for t in lines).split()
        if quote and words:
            quoted = " ".join(words[:MAX_QUOTED_WORDS]) + (" ..." if len(words) > MAX_QUOTED_WORDS else "")
            parts.append(f"the text '{quoted}'")
        else:
            parts.append(_count(len(lines), "line") + " of text")
    return f"{subject} with {' and '.join(parts)}"


# What a classical editor does, said the way a caption says it; generative editors make new content.
DONE = {"blur": "blurred", "pixelate": "pixelated", "fill": "covered", "inpaint": "painted over"}


def _public_caption(subject, faces, lines, plates, done=None) -> str:
    parts = []
    if faces:
        whose = "whose face is" if len(faces) == 1 else "whose faces are"
        parts.append(f"{_count(len(faces), 'person', 'people')} {whose} {done or 'not recognisable'}")
    if plates:
        parts.append(f"{'a' if len(plates) == 1 else len(plates)} {done or 'unreadable'} licence plate{'s' if len(plates) > 1 else ''}")
    if lines:
        parts.append(f"{done} text" if done else "unreadable text")
    return f"{subject} with {' and '.join(parts)}"


def _count(n, singular, plural=None) -> str:
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


def _article(label) -> str:
    label = str(label)
    if label.endswith("s") and not label.endswith(("ss", "us", "is")):
        return label  # a plural class name ("cats"): no article
    return f"an {label}" if label[:1].lower() in "aeiou" else f"a {label}"


def _plate(lines):
    """One plate from its lines: the box around them all, the weakest reading's score, the text in order."""
    return Detection(box=union_box([t.box for t in lines]), score=min(t.score for t in lines), text=" ".join(t.text for t in lines))


def _int_box(box, size) -> tuple:
    width, height = size
    x0, y0, x1, y1 = box
    return (max(0, int(np.floor(x0))), max(0, int(np.floor(y0))), min(width, int(np.ceil(x1))), min(height, int(np.ceil(y1))))
