"""How much the local preset leaves readable: drawn strings and pasted faces, judged by independent readers.

    python benchmarks/bench_recall.py --text-images 24 --face-images 4

The recall set (``u2s_datasets.testing_data``): the sample photos with strings drawn on them
(plain, name tags, licence plates, inverse signs; 10-40 px; -90..90 degrees; DejaVu fonts)
and large photos (3000-4000 px, face-free samples scaled up) with faces cut from the
sample photos pasted at 16-120 px wide, upright and turned.

Judges (``u2s_datasets.testing_readers``), none of them the preset's own settings:
  strings  RapidOCR with its default settings; a string is readable when rapidfuzz's
           partial_ratio of its letters and digits against everything read is >= 80
  faces    CenterFace (threshold 0.2) on a crop around each pasted face, turned upright and
           zoomed to ~100 px, then dlib's identity embedding; re-identified when the distance
           to the original face is < 0.6

Each configuration runs ``Unsafe2Safe(**settings)`` through ``ds.map`` (JPEG in, JPEG out);
"earlier" is the single scaled-down pass of earlier versions (every new setting off);
"turned16" also looks for turned faces down to 16 px (face_turned_min_size=16).
images/s counts decode, detection, blur and encode over the recall images.
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
}


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
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated, of {', '.join(CONFIGS)}")
    args = parser.parse_args()
    from u2s_datasets.testing_data import face_set, text_set
    from u2s_datasets.testing_readers import READABLE_RATIO, FaceJudge, StringReader

    datasets.disable_progress_bars()
    configs = {n: CONFIGS[n] for n in args.configs.split(",")}
    texts, faces = text_set(args.text_images), face_set(args.face_images)
    reader, judge = StringReader(), FaceJudge()
    text_before = judge_strings(reader, texts, [np.asarray(t.image) for t in texts])
    face_before = judge_faces(judge, faces, [np.asarray(f.image) for f in faces])
    text_after, face_after, speed = {}, {}, {}
    for name, settings in configs.items():
        rgbs, text_seconds = anonymise([t.image for t in texts], settings)
        text_after[name] = judge_strings(reader, texts, rgbs)
        rgbs, face_seconds = anonymise([f.image for f in faces], settings)
        face_after[name] = judge_faces(judge, faces, rgbs)
        speed[name] = (len(texts) / text_seconds, len(faces) / face_seconds)
    print(f"{os.cpu_count()} cores; strings readable when RapidOCR (defaults) matches with partial_ratio >= {READABLE_RATIO}; "
          "faces re-identified by CenterFace@0.2 + dlib < 0.6")
    sizes = sorted({f.image.size for f in faces})
    print(f"text set: {len(texts)} sample photos (384-640 px), {text_before['all'][1]} strings; "
          f"face set: {len(faces)} photos {sizes}, {face_before['all'][1]} faces")
    table("strings readable (input, then after each configuration)", text_before, text_after)
    table("faces re-identified (input, then after each configuration)", face_before, face_after)
    print(f"\n{'configuration':<12} {'strings readable':>17} {'faces re-identified':>20} {'text set images/s':>18} {'face set images/s':>18}")
    for name in configs:
        read, total = text_after[name]["all"]
        reid, faces_total = face_after[name]["all"]
        print(f"{name:<12} {f'{100 * read / total:.1f}%':>17} {f'{reid}/{faces_total}':>20} {speed[name][0]:>18.2f} {speed[name][1]:>18.3f}")
    (read, total), (reid, faces_total) = text_before["all"], face_before["all"]
    print(f"{'input':<12} {f'{100 * read / total:.1f}%':>17} {f'{reid}/{faces_total}':>20}")


if __name__ == "__main__":
    main()
