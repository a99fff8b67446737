"""Images with a secret string and a face thumbnail planted in every metadata carrier of their format,
and the tools to look for them again in any bytes: the secret in plain, UTF-16 or deflated form,
and every embedded image (thumbnails, extra frames and pages, hidden APNG frames, appended files).
"""

import io
import struct
import zlib

import numpy as np
from PIL import Image, ImageCms, TiffImagePlugin

from u2s_datasets.samples import sample_images

SECRET = "U2S-PLANTED-SECRET-5e1d"
_SECRET = SECRET.encode()
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "TIFF", "AVIF")
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "TIFF": "tif", "AVIF": "avif"}


# ----------------------------------------------------------------------------- pictures

def face(size: int = 96) -> Image.Image:
    """Grace Hopper's face, cropped: what a thumbnail of a private photo shows."""
    return sample_images()["grace_hopper"].crop((130, 90, 400, 380)).resize((size, size), Image.LANCZOS)


def clean_scene() -> Image.Image:
    """A photo with nothing private in it: its rows pass through."""
    return sample_images()["coffee"].resize((240, 160), Image.LANCZOS)


def private_scene() -> Image.Image:
    """The clean scene with a face pasted in: its rows are edited."""
    scene = clean_scene().copy()
    scene.paste(face(120), (100, 20))
    return scene


def _encoded(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def face_jpeg() -> bytes:
    return _encoded(face(), "JPEG", quality=90)


# ----------------------------------------------------------------------------- carrier payloads

def exif_with_thumbnail() -> bytes:
    """A little-endian EXIF block: the secret in ImageDescription, Artist and an EXIF sub-IFD's
    UserComment, and a JPEG face in IFD1 (the EXIF thumbnail)."""
    thumbnail, text = face_jpeg(), _SECRET + b"\x00"
    comment = b"ASCII\x00\x00\x00" + _SECRET
    # layout: header | IFD0 (4 entries) | EXIF IFD (1) | IFD1 (3) | data
    ifd0_at, exif_at = 8, 8 + 2 + 4 * 12 + 4
    ifd1_at = exif_at + 2 + 12 + 4
    data_at = ifd1_at + 2 + 3 * 12 + 4
    description_at, artist_at = data_at, data_at + len(text)
    comment_at = artist_at + len(text)
    thumbnail_at = comment_at + len(comment)

    def ifd(entries, next_ifd):
        return struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + struct.pack("<I", next_ifd)

    out = b"II*\x00" + struct.pack("<I", ifd0_at)
    out += ifd([(0x010E, 2, len(text), description_at), (0x0112, 3, 1, 1), (0x013B, 2, len(text), artist_at),
                (0x8769, 4, 1, exif_at)], ifd1_at)
    out += ifd([(0x9286, 7, len(comment), comment_at)], 0)
    out += ifd([(0x0103, 3, 1, 6), (0x0201, 4, 1, thumbnail_at), (0x0202, 4, 1, len(thumbnail))], 0)
    return out + text + text + comment + thumbnail


def xmp_packet() -> bytes:
    return (b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
            b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
            b'xmlns:dc="http://purl.org/dc/elements/1.1/" dc:description="' + _SECRET + b'"/></rdf:RDF></x:xmpmeta>'
            b'<?xpacket end="w"?>')


def iptc_record() -> bytes:
    """IPTC caption (2:120) and byline (2:80) datasets."""
    return b"".join(b"\x1c\x02" + bytes([tag]) + struct.pack(">H", len(_SECRET)) + _SECRET for tag in (120, 80))


def photoshop_resources() -> bytes:
    """Photoshop image resources: IPTC (0x0404) and a JPEG thumbnail (0x040C)."""
    def resource(kind, body):
        return b"8BIM" + struct.pack(">H", kind) + b"\x00\x00" + struct.pack(">I", len(body)) + body + b"\x00" * (len(body) & 1)

    thumbnail_header = struct.pack(">IIIIIIHH", 1, 96, 96, 288, 288 * 96, len(face_jpeg()), 24, 1)
    return resource(0x0404, iptc_record()) + resource(0x040C, thumbnail_header + face_jpeg())


def icc_with_text() -> bytes:
    """A working sRGB profile whose description, copyright, device names and a private tag hold
    the secret, with more of it in unused header bytes and after the last tag."""
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    (count,) = struct.unpack(">I", profile[128:132])
    tags = []
    for i in range(count):
        signature, offset, size = struct.unpack(">4sII", profile[132 + 12 * i: 144 + 12 * i])
        if signature not in (b"desc", b"cprt", b"dmnd", b"dmdd"):
            tags.append((signature, profile[offset: offset + size]))
    text = b"text" + bytes(4) + _SECRET + b"\x00"
    description = b"desc" + bytes(4) + struct.pack(">I", len(_SECRET) + 1) + _SECRET + b"\x00" + bytes(4 + 4 + 3 + 67)
    tags += [(b"desc", description), (b"cprt", text), (b"dmnd", text), (b"dmdd", text), (b"zz01", text)]
    table_end = 132 + 12 * len(tags)
    body, entries, position = b"", [], table_end
    for signature, data in tags:
        data += b"\x00" * (-len(data) % 4)
        entries.append(struct.pack(">4sII", signature, position, len(data)))
        body += data
        position += len(data)
    body += _SECRET  # unreferenced bytes at the end
    header = bytearray(profile[:128])
    header[0:4] = struct.pack(">I", table_end + len(body))
    header[100:100 + 16] = _SECRET[:16]  # reserved bytes
    header[84:100] = bytes(16)  # profile id: no longer valid
    header[8] = 2  # v2, so the text tags are of the version's own types
    return bytes(header) + struct.pack(">I", len(tags)) + b"".join(entries) + body


# ----------------------------------------------------------------------------- per format

def _segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def planted_jpeg(image: Image.Image) -> bytes:
    """JFIF and JFXX thumbnails, EXIF (+ IFD1 thumbnail), XMP, Photoshop/IPTC (+ thumbnail),
    ICC text, COM, Adobe APP14 with junk, other APPn, and a face JPEG after EOI."""
    plain = _encoded(image, "JPEG", quality=92)
    assert plain[:4] == b"\xff\xd8\xff\xe0"
    (app0_length,) = struct.unpack(">H", plain[4:6])
    rest = plain[4 + app0_length:]  # the coded image after Pillow's own JFIF header
    small = np.asarray(face(48).convert("RGB"))
    jfif = b"JFIF\x00\x01\x02\x01\x00\x48\x00\x48" + bytes([48, 48]) + small.tobytes()
    jfxx = b"JFXX\x00\x10" + face_jpeg()
    icc = icc_with_text()
    segments = [
        _segment(0xE0, jfif), _segment(0xE0, jfxx),
        _segment(0xE1, b"Exif\x00\x00" + exif_with_thumbnail()),
        _segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + xmp_packet()),
        _segment(0xED, b"Photoshop 3.0\x00" + photoshop_resources()),
        _segment(0xE2, b"ICC_PROFILE\x00\x01\x01" + icc),
        _segment(0xFE, _SECRET),
        _segment(0xEE, b"Adobe\x00\x64\x80\x00\x00\x00\x01" + _SECRET),
        _segment(0xEB, b"JP\x00\x00" + face_jpeg()),
        _segment(0xEF, _SECRET),
    ]
    return b"\xff\xd8" + b"".join(segments) + rest + _SECRET + face_jpeg()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def planted_png(image: Image.Image) -> bytes:
    """Text chunks, eXIf, tIME, a palette in a truecolour image, iCCP text, private chunks, an APNG
    whose second (face) frame is hidden by a frame count of 1, and a face JPEG after IEND."""
    animated = io.BytesIO()
    image.convert("RGB").save(animated, format="PNG", save_all=True, append_images=[face(image.height).resize(image.size)],
                              duration=100, default_image=False)
    data = animated.getvalue()
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if kind == b"acTL":
            body = struct.pack(">II", 1, 0)  # Pillow now counts one frame; the face frame stays in the file
        chunks.append((kind, body))
        pos += 12 + length
    palette = (_SECRET + b"\x00" * 3)[: len(_SECRET) // 3 * 3 + 3]
    extra = [
        (b"PLTE", palette),
        (b"iCCP", _SECRET[:40] + b"\x00\x00" + zlib.compress(icc_with_text())),
        (b"tEXt", b"Comment\x00" + _SECRET),
        (b"zTXt", b"Author\x00\x00" + zlib.compress(_SECRET)),
        (b"iTXt", b"Description\x00\x00\x00\x00\x00" + _SECRET),
        (b"iTXt", b"XML:com.adobe.xmp\x00\x01\x00\x00\x00" + zlib.compress(xmp_packet())),
        (b"eXIf", exif_with_thumbnail()),
        (b"tIME", b"\x07\xea\x01\x02\x03\x04\x05"),
        (b"prVt", _SECRET + face_jpeg()),
    ]
    head, tail = chunks[:1], chunks[1:]
    body = b"".join(_png_chunk(k, b) for k, b in head + extra + tail)
    return b"\x89PNG\r\n\x1a\n" + body + _SECRET + face_jpeg()


def planted_webp(image: Image.Image) -> bytes:
    """EXIF (+ thumbnail), XMP, ICC text, an unknown chunk with a face, and bytes after the RIFF."""
    data = _encoded(image, "WEBP", quality=90, exif=b"Exif\x00\x00" + exif_with_thumbnail(), xmp=xmp_packet(),
                    icc_profile=icc_with_text())
    extra = b"ZZZZ" + struct.pack("<I", len(face_jpeg())) + face_jpeg() + b"\x00" * (len(face_jpeg()) & 1)
    body = data[8:] + extra
    return b"RIFF" + struct.pack("<I", len(body)) + body + _SECRET + face_jpeg()


def planted_gif(image: Image.Image) -> bytes:
    """A comment, XMP and ICC application blocks, a plain-text block, a second frame with a face,
    and a face JPEG after the trailer."""
    data = _encoded(image.convert("RGB"), "GIF", save_all=True, append_images=[face(image.height).resize(image.size)],
                    comment=_SECRET, loop=0, duration=100)
    xmp = b"\x21\xff\x0bXMP DataXMP" + _sub_blocks(xmp_packet())
    icc = b"\x21\xff\x0bICCRGBG1012" + _sub_blocks(icc_with_text())
    text = b"\x21\x01\x0c" + bytes(12) + _sub_blocks(_SECRET)
    flags = data[10]
    first_block = 13 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)  # after the global colour table
    assert data.endswith(b"\x3b")
    return data[:first_block] + xmp + icc + text + data[first_block:] + _SECRET + face_jpeg()


def _sub_blocks(data: bytes) -> bytes:
    return b"".join(bytes([len(data[i:i + 255])]) + data[i:i + 255] for i in range(0, len(data), 255)) + b"\x00"


def planted_tiff(image: Image.Image) -> bytes:
    """Description, artist, copyright, XMP, IPTC, Photoshop, ICC text and EXIF tags, a second page
    with a face, and bytes after the last page."""
    info = TiffImagePlugin.ImageFileDirectory_v2()
    for tag in (269, 270, 285, 305, 315, 316, 33432):  # document, description, page, software, artist, host, copyright
        info[tag] = SECRET
    info[700] = xmp_packet()
    info[33723] = iptc_record()
    info[34377] = photoshop_resources()
    info[34675] = icc_with_text()
    exif = Image.Exif()
    exif[0x010E] = SECRET
    data = _encoded(image.convert("RGB"), "TIFF", tiffinfo=info, exif=exif, save_all=True,
                    append_images=[face(image.height).resize(image.size)], compression="tiff_adobe_deflate")
    return data + _SECRET + face_jpeg()


def planted_avif(image: Image.Image) -> bytes:
    """EXIF (+ thumbnail), XMP and ICC text, and bytes after the last box."""
    data = _encoded(image.convert("RGB"), "AVIF", quality=90, exif=b"Exif\x00\x00" + exif_with_thumbnail(),
                    xmp=xmp_packet(), icc_profile=icc_with_text())
    return data + _SECRET + face_jpeg()


PLANTERS = {"JPEG": planted_jpeg, "PNG": planted_png, "WEBP": planted_webp, "GIF": planted_gif, "TIFF": planted_tiff,
            "AVIF": planted_avif}


def planted(fmt: str, private: bool) -> bytes:
    return PLANTERS[fmt](private_scene() if private else clean_scene())


# ----------------------------------------------------------------------------- finding them again

def secret_found(data: bytes) -> bool:
    """The secret in the bytes: plain, UTF-16, or inside any zlib stream."""
    forms = (_SECRET, SECRET.encode("utf-16-le"), SECRET.encode("utf-16-be"))
    if any(form in data for form in forms):
        return True
    for start in range(len(data) - 1):
        if data[start] == 0x78 and data[start + 1] in (0x01, 0x5E, 0x9C, 0xDA):
            try:
                inflated = zlib.decompressobj().decompress(data[start:], 1 << 24)
            except zlib.error:
                continue
            if any(form in inflated for form in forms):
                return True
    return False


_IMAGE_STARTS = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"RIFF", b"II*\x00", b"MM\x00*")


def embedded_images(data: bytes) -> list:
    """Every image that decodes from these bytes: at any offset where a known format starts,
    every frame or page, the APNG frames a frame count hides, and raw JFIF thumbnails."""
    found = []
    for signature in _IMAGE_STARTS:
        start = data.find(signature)
        while start >= 0:
            found += _frames(data[start:])
            if signature.startswith(b"\x89PNG"):
                found += _frames(_apng_with_all_frames(data[start:]))
            start = data.find(signature, start + 1)
    if data[:4] != b"RIFF":
        found += _frames(data)  # formats with no fixed start, such as AVIF
    found += _jfif_thumbnails(data)
    return found


def _frames(data: bytes) -> list:
    frames = []
    try:
        image = Image.open(io.BytesIO(data))
        for index in range(getattr(image, "n_frames", 1)):
            image.seek(index)
            frames.append(image.convert("RGB"))
    except Exception:
        pass
    return frames


def _apng_with_all_frames(data: bytes) -> bytes:
    """The PNG with its acTL frame count set to the number of fcTL chunks it holds."""
    if b"acTL" not in data:
        return b""
    frames = data.count(b"fcTL")
    at = data.index(b"acTL") - 4
    body = struct.pack(">II", frames, 0)
    return data[:at] + _png_chunk(b"acTL", body) + data[at + 20:]


def _jfif_thumbnails(data: bytes) -> list:
    thumbnails, start = [], data.find(b"JFIF\x00")
    while start >= 0:
        width, height = data[start + 12: start + 14] if start + 14 <= len(data) else (0, 0)
        pixels = data[start + 14: start + 14 + 3 * width * height]
        if width and height and len(pixels) == 3 * width * height:
            thumbnails.append(Image.frombytes("RGB", (width, height), pixels))
        start = data.find(b"JFIF\x00", start + 1)
    return thumbnails


def faces_in(images, detector) -> int:
    """How many of ``images`` show a face to CenterFace (small ones are enlarged first)."""
    count = 0
    for image in images:
        if min(image.size) < 8:
            continue
        factor = max(1.0, 256 / max(image.size))
        if factor > 1:
            image = image.resize((round(image.width * factor), round(image.height * factor)), Image.BICUBIC)
        count += bool(detector(np.asarray(image)))
    return count
