"""Byte-level metadata removal: the coded pixels stay as they are, every other carrier goes.

Each ``strip_*`` function keeps only what defines the pixels and their colour and rebuilds
the few segments that must stay but could carry free data:

- JPEG: APP0 becomes a bare JFIF header (no thumbnail, no JFXX), APP14 only Adobe's fixed
  colour-transform fields, ICC profiles are rebuilt (``clean_icc_profile``); EXIF, XMP,
  IPTC, comments, other APPn and JPGn segments and anything after the end marker are dropped.
- PNG: image, palette (indexed images only), transparency and colour chunks; the iCCP name is
  replaced and its profile rebuilt; text, EXIF, time, private chunks, APNG animation chunks
  (the output is the single default image) and anything after IEND are dropped.
- WebP: VP8/VP8L/ALPH and a VP8X header with only the alpha and ICC flags; the ICC profile is
  rebuilt; EXIF, XMP and unknown chunks are dropped. Animations are refused (re-encoded).
- GIF: the first image with its graphic control block; comments, application blocks
  (loop counts, XMP, ICC) and plain-text blocks are dropped.

A stream that cannot be walked raises ``MetadataError``; callers then re-encode the pixels.
``keep_icc=False`` drops the profile as well; ``keep_dpi=False`` writes JFIF's density as 1:1
without units and drops PNG's pHYs (``metadata_policy.py``: the ``keep_metadata`` setting).

ICC profiles are rebuilt, not dropped, so colours stay right: the header keeps only the fields
that change colour, the tag table only colour-defining tags of colour-defining types, cut to
their exact length, and the description and copyright are written empty. Free-text tags
(desc, cprt, dmnd, dmdd, vued, targ, ciis, ...), named colours and private tags are gone.
"""

import struct
import zlib
from typing import Optional


class MetadataError(ValueError):
    """A stream that cannot be walked safely."""


# ----------------------------------------------------------------------------- ICC

# Tags that define colour; everything else (text, names, measurement notes, private tags) goes.
_ICC_COLOUR_TAGS = {
    b"rXYZ", b"gXYZ", b"bXYZ", b"wtpt", b"bkpt", b"rTRC", b"gTRC", b"bTRC", b"kTRC", b"chad", b"chrm", b"lumi", b"cicp",
    b"A2B0", b"A2B1", b"A2B2", b"B2A0", b"B2A1", b"B2A2", b"D2B0", b"D2B1", b"D2B2", b"D2B3", b"B2D0", b"B2D1", b"B2D2",
    b"B2D3", b"gamt", b"pre0", b"pre1", b"pre2",
}
_ICC_COLOUR_TYPES = {b"XYZ ", b"curv", b"para", b"sf32", b"mft1", b"mft2", b"mAB ", b"mBA ", b"chrm", b"mpet", b"cicp"}
_PARA_PARAMETERS = {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}
MAX_ICC_BYTES = 16 * 2**20


def clean_icc_profile(profile: bytes) -> Optional[bytes]:
    """The profile rebuilt with colour data only; None when it cannot be parsed (then drop it)."""
    if len(profile) < 132 or profile[36:40] != b"acsp" or len(profile) > MAX_ICC_BYTES:
        return None
    (count,) = struct.unpack(">I", profile[128:132])
    if 132 + 12 * count > len(profile):
        return None
    tags, blocks = [], {}
    for i in range(count):
        signature, offset, size = struct.unpack(">4sII", profile[132 + 12 * i : 144 + 12 * i])
        if signature not in _ICC_COLOUR_TAGS or offset + size > len(profile) or size < 8:
            continue
        body = profile[offset : offset + size]
        if body[:4] not in _ICC_COLOUR_TYPES:
            continue
        body = body[: _icc_exact_size(body)]
        tags.append((signature, blocks.setdefault(body, len(blocks))))
    version4 = profile[8] >= 4
    texts = [(b"desc", _icc_empty_text(version4, description=True)), (b"cprt", _icc_empty_text(version4, description=False))]
    bodies = list(blocks) + [body for _, body in texts]
    tags += [(signature, len(blocks) + i) for i, (signature, _) in enumerate(texts)]

    table_end = 132 + 12 * len(tags)
    offsets, position = [], _aligned(table_end)
    for body in bodies:
        offsets.append(position)
        position = _aligned(position + len(body))
    out = bytearray(position)
    out[0:128] = _icc_header(profile, position)
    out[128:132] = struct.pack(">I", len(tags))
    for i, (signature, index) in enumerate(tags):
        out[132 + 12 * i : 144 + 12 * i] = struct.pack(">4sII", signature, offsets[index], len(bodies[index]))
    for offset, body in zip(offsets, bodies):
        out[offset : offset + len(body)] = body
    return bytes(out)


def _icc_header(profile: bytes, size: int) -> bytes:
    """Size, version, class, colour spaces, signature, flags, attributes, intent, illuminant; the rest zero."""
    header = bytearray(128)
    header[0:4] = struct.pack(">I", size)
    header[8:24] = profile[8:24]  # version, device class, colour space, connection space
    header[36:40] = b"acsp"
    header[44:48] = struct.pack(">I", struct.unpack(">I", profile[44:48])[0] & 0x3)
    header[56:64] = struct.pack(">Q", struct.unpack(">Q", profile[56:64])[0] & 0xF)
    header[64:68] = struct.pack(">I", struct.unpack(">I", profile[64:68])[0] & 0x3)
    header[68:80] = profile[68:80]  # PCS illuminant
    return bytes(header)


def _icc_exact_size(body: bytes) -> int:
    """The length a tag's data needs, so no free bytes ride along after it."""
    kind = body[:4]
    if kind == b"XYZ ":
        return 8 + (len(body) - 8) // 12 * 12
    if kind == b"curv" and len(body) >= 12:
        return min(len(body), 12 + 2 * struct.unpack(">I", body[8:12])[0])
    if kind == b"para" and len(body) >= 12:
        return min(len(body), 12 + 4 * _PARA_PARAMETERS.get(struct.unpack(">H", body[8:10])[0], 0))
    if kind == b"sf32":
        return 8 + (len(body) - 8) // 4 * 4
    return len(body)


def _icc_empty_text(version4: bool, description: bool) -> bytes:
    if version4:
        return b"mluc" + bytes(4) + struct.pack(">II", 0, 12)  # no records
    if description:  # textDescriptionType: empty ASCII, Unicode and ScriptCode strings
        return b"desc" + bytes(4) + struct.pack(">I", 1) + b"\x00" + bytes(4 + 4 + 2 + 1 + 67)
    return b"text" + bytes(4) + b"\x00"


def _aligned(position: int) -> int:
    return -(-position // 4) * 4


# ----------------------------------------------------------------------------- JPEG

_ICC_JPEG = b"ICC_PROFILE\x00"
_ICC_CHUNK = 65519  # the largest profile piece an APP2 segment holds


def strip_jpeg_metadata(data: bytes, keep_icc: bool = True, keep_dpi: bool = True) -> bytes:
    """The JPEG stream with only its coding segments, a bare JFIF header, Adobe's colour
    transform and a rebuilt ICC profile, wherever the metadata stood (before the frame or
    between progressive scans); nothing after the end marker."""
    if data[:2] != b"\xff\xd8":
        raise MetadataError("not a JPEG stream")
    out, pos, icc, icc_slot, seen = [data[:2]], 2, [], None, set()
    while pos + 2 <= len(data):
        if data[pos] != 0xFF:
            raise MetadataError("malformed JPEG marker")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:  # end of image: nothing after it is kept
            out.append(data[pos : pos + 2])
            if icc_slot is not None:
                out[icc_slot] = _icc_segments(icc)
            return b"".join(out)
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            out.append(data[pos : pos + 2])
            pos += 2
            continue
        if pos + 4 > len(data):
            break
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        end = pos + 2 + length
        if length < 2 or end > len(data):
            raise MetadataError("JPEG segment runs past the end of the stream")
        payload = data[pos + 4 : end]
        if marker == 0xE0 and "jfif" not in seen and payload[:5] == b"JFIF\x00" and len(payload) >= 14:
            seen.add("jfif")
            out.append(_bare_jfif(payload, keep_dpi))
        elif marker == 0xEE and "adobe" not in seen and payload[:5] == b"Adobe" and len(payload) >= 12:
            seen.add("adobe")
            out.append(b"\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00" + payload[11:12])
        elif marker == 0xE2 and payload[:12] == _ICC_JPEG and len(payload) >= 14 and keep_icc:
            icc.append((payload[12], payload[14:]))
            if icc_slot is None:
                icc_slot = len(out)
                out.append(b"")
        elif not (0xE0 <= marker <= 0xEF or marker == 0xFE or 0xF0 <= marker <= 0xFD):
            out.append(data[pos:end])  # frame, tables, scans: the coded image
        pos = end
        if marker == 0xDA:  # start of scan: entropy-coded data runs to the next real marker
            scan_end = _scan_end(data, pos)
            out.append(data[pos:scan_end])
            pos = scan_end
    raise MetadataError("JPEG stream ended before its end marker")


def _bare_jfif(payload: bytes, keep_dpi: bool = True) -> bytes:
    """JFIF 1.01 with the source's density (else 1:1 without units) and no thumbnail."""
    density = payload[7:12] if keep_dpi else b"\x00\x00\x01\x00\x01"
    body = b"JFIF\x00\x01\x01" + density + b"\x00\x00"
    return b"\xff\xe0" + struct.pack(">H", len(body) + 2) + body


def _icc_segments(pieces) -> bytes:
    profile = clean_icc_profile(b"".join(piece for _, piece in sorted(pieces, key=lambda p: p[0])))
    if profile is None:
        return b""
    chunks = [profile[i : i + _ICC_CHUNK] for i in range(0, len(profile), _ICC_CHUNK)]
    return b"".join(
        b"\xff\xe2" + struct.pack(">H", 2 + len(_ICC_JPEG) + 2 + len(chunk)) + _ICC_JPEG + bytes([i + 1, len(chunks)]) + chunk
        for i, chunk in enumerate(chunks)
    )


def _scan_end(data: bytes, pos: int) -> int:
    """Where the entropy-coded data starting at ``pos`` ends: the next 0xFF that is neither
    a stuffed byte (FF00) nor a restart marker (FFD0-FFD7)."""
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= len(data):
            return len(data)
        following = data[pos + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7 or following == 0xFF:
            pos += 1 if following == 0xFF else 2
            continue
        return pos


# ----------------------------------------------------------------------------- PNG

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_KEEP = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"sBIT", b"pHYs", b"cICP"}
_PNG_ANIMATION = {b"acTL", b"fcTL", b"fdAT"}


def png_chunks(data: bytes):
    """(kind, body) of each chunk up to IEND."""
    if data[:8] != _PNG_SIGNATURE:
        raise MetadataError("not a PNG stream")
    pos = 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if pos + 12 + length > len(data):
            raise MetadataError(f"PNG chunk {kind!r} runs past the end of the stream")
        yield kind, data[pos + 8 : pos + 8 + length]
        if kind == b"IEND":
            return
        pos += 12 + length
    raise MetadataError("PNG stream ended before IEND")


def is_animated_png(data: bytes) -> bool:
    return any(kind in _PNG_ANIMATION for kind, _ in png_chunks(data))


def strip_png_metadata(data: bytes, keep_icc: bool = True, keep_dpi: bool = True) -> bytes:
    """Only the chunks that define the (single, default) image and its colour."""
    out, indexed = [_PNG_SIGNATURE], False
    for kind, body in png_chunks(data):
        if kind == b"IHDR":
            indexed = len(body) >= 10 and body[9] == 3
        if (kind == b"iCCP" and not keep_icc) or (kind == b"pHYs" and not keep_dpi):
            continue
        if kind == b"iCCP":
            body = _clean_iccp(body)
            if body is None:
                continue
        elif kind not in _PNG_KEEP or (kind == b"PLTE" and not indexed):
            continue
        out.append(_png_chunk(kind, body))
    return b"".join(out)


def _clean_iccp(body: bytes) -> Optional[bytes]:
    name_end = body.find(b"\x00")
    if name_end < 0 or name_end + 2 > len(body) or body[name_end + 1] != 0:
        return None
    try:
        inflater = zlib.decompressobj()
        profile = inflater.decompress(body[name_end + 2 :], MAX_ICC_BYTES + 1)
    except zlib.error:
        return None
    profile = clean_icc_profile(profile)
    return None if profile is None else b"ICC profile\x00\x00" + zlib.compress(profile)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


# ----------------------------------------------------------------------------- WebP

_VP8X_ALPHA, _VP8X_ICC = 0x10, 0x20


def strip_webp_metadata(data: bytes, keep_icc: bool = True, keep_dpi: bool = True) -> bytes:
    """A still WebP with its coded image, alpha and a rebuilt ICC profile only."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise MetadataError("not a WebP stream")
    chunks, pos, end = [], 12, min(len(data), 8 + struct.unpack("<I", data[4:8])[0])
    while pos + 8 <= end:
        kind, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        if pos + 8 + size > end:
            raise MetadataError(f"WebP chunk {kind!r} runs past the end of the stream")
        chunks.append((kind, data[pos + 8 : pos + 8 + size]))
        pos += 8 + size + (size & 1)
    kinds = [kind for kind, _ in chunks]
    if b"ANIM" in kinds or b"ANMF" in kinds:
        raise MetadataError("animated WebP")
    if sum(kind in (b"VP8 ", b"VP8L") for kind in kinds) != 1:
        raise MetadataError("WebP without exactly one coded image")
    kept, icc = [], None
    for kind, body in chunks:
        if kind == b"ICCP" and keep_icc:
            icc = clean_icc_profile(body)
        elif kind in (b"VP8 ", b"VP8L", b"ALPH"):
            kept.append((kind, body))
    if b"VP8X" in kinds:
        header = dict(chunks)[b"VP8X"]
        if len(header) < 10:
            raise MetadataError("short VP8X header")
        flags = (_VP8X_ALPHA if b"ALPH" in kinds or header[0] & _VP8X_ALPHA else 0) | (_VP8X_ICC if icc else 0)
        front = [(b"VP8X", bytes([flags, 0, 0, 0]) + header[4:10])] + ([(b"ICCP", icc)] if icc else [])
        kept = front + kept
    body = b"WEBP" + b"".join(kind + struct.pack("<I", len(chunk)) + chunk + b"\x00" * (len(chunk) & 1) for kind, chunk in kept)
    return b"RIFF" + struct.pack("<I", len(body)) + body


# ----------------------------------------------------------------------------- GIF

def strip_gif_metadata(data: bytes, keep_icc: bool = True, keep_dpi: bool = True) -> bytes:
    """The first image of a GIF with its graphic control block; no comments, application or text blocks."""
    if data[:6] not in (b"GIF87a", b"GIF89a") or len(data) < 13:
        raise MetadataError("not a GIF stream")
    pos = 13 + _colour_table_size(data[10])
    out, control = [data[:pos]], b""
    while pos < len(data):
        introducer = data[pos]
        if introducer == 0x3B:
            break
        if introducer == 0x21:
            label, blocks_end = data[pos + 1], _sub_blocks_end(data, pos + 2)
            if label == 0xF9 and blocks_end - pos >= 7:  # only the fixed fields: disposal, delay, transparency
                control = b"\x21\xf9\x04" + data[pos + 3 : pos + 7] + b"\x00"
            pos = blocks_end
        elif introducer == 0x2C:
            descriptor_end = pos + 10 + _colour_table_size(data[pos + 9]) if pos + 10 <= len(data) else len(data) + 1
            image_end = _sub_blocks_end(data, descriptor_end + 1)
            out += [control, data[pos:image_end], b"\x3b"]
            return b"".join(out)
        else:
            raise MetadataError("malformed GIF block")
    raise MetadataError("GIF without an image")


def _colour_table_size(flags: int) -> int:
    return 3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0


def _sub_blocks_end(data: bytes, pos: int) -> int:
    while True:
        if pos >= len(data):
            raise MetadataError("GIF block runs past the end of the stream")
        size = data[pos]
        pos += 1 + size
        if size == 0:
            return pos
