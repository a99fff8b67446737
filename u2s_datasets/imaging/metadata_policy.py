"""What of an input image's metadata the outputs keep: a short allow-list, and what never stays.

``keep_metadata`` (a setting of ``OutputConfig``) names what is kept; everything else is removed
(``metadata.py`` does it at the byte level). The default keeps all three, as every earlier
version did. What can identify a person or show the unedited image is never kept, whatever
is asked: asking for it is an error.
"""

import difflib
from dataclasses import dataclass

KEEPABLE = {
    "icc": "the ICC colour profile, rebuilt with its colour data only (no description, copyright, device or private tags)",
    "dpi": "the pixel density (JPEG JFIF density, PNG pHYs, TIFF resolution)",
    "orientation-baked": "EXIF rotation applied to the pixels (the tag itself is dropped)",
}
DEFAULT_KEEP = ("dpi", "icc", "orientation-baked")
NEVER_KEPT = {
    "gps": "GPS position: where the photo was taken",
    "serials": "camera, lens and body serial numbers: they tie photos to one owner",
    "maker-notes": "maker notes: vendor data, often serial numbers and owner names",
    "thumbnails": "embedded thumbnails and previews: they show the unedited image",
    "xmp": "XMP: free text, names, places and edit history",
    "iptc": "IPTC: captions, bylines, names and places",
    "comments": "comments and text chunks: free text",
    "exif": "EXIF as a whole: it holds GPS, serial numbers, maker notes, names and thumbnails",
    "timestamps": "capture dates and times: when, and with the rest where, a person was",
}
_SAME = {"location": "gps", "serial": "serials", "serial-numbers": "serials", "makernotes": "maker-notes",
         "maker-note": "maker-notes", "makernote": "maker-notes", "thumbnail": "thumbnails", "preview": "thumbnails",
         "comment": "comments", "text": "comments", "date": "timestamps", "datetime": "timestamps", "time": "timestamps"}


def check_keep_metadata(names) -> None:
    """Raise a clear error for anything in ``names`` that is not one of ``KEEPABLE``."""
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"keep_metadata holds names (strings), not {type(name).__name__}: {name!r}")
        if name in KEEPABLE:
            continue
        said = name.strip().lower().replace("_", "-").replace(" ", "-")
        never = _SAME.get(said, said)
        allowed = ", ".join(KEEPABLE)
        if never in NEVER_KEPT:
            raise ValueError(f"keep_metadata: {name!r} is never kept ({NEVER_KEPT[never]}); what can be kept: {allowed}")
        close = difflib.get_close_matches(said, list(KEEPABLE), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"keep_metadata: {name!r} is not something that can be kept; choose from {allowed}.{hint}")


@dataclass(frozen=True)
class MetadataPolicy:
    """The allow-list as flags, for the code that writes images."""

    icc: bool = True
    dpi: bool = True
    bake_orientation: bool = True

    @classmethod
    def of(cls, keep) -> "MetadataPolicy":
        keep = set(DEFAULT_KEEP if keep is None else keep)
        return cls(icc="icc" in keep, dpi="dpi" in keep, bake_orientation="orientation-baked" in keep)


def policy_of(output_config) -> MetadataPolicy:
    return MetadataPolicy.of(getattr(output_config, "keep_metadata", DEFAULT_KEEP))


def policy_record(keep) -> dict:
    """What a card and ``provenance.json`` say about the metadata: kept (with what each means), never kept."""
    keep = DEFAULT_KEEP if keep is None else tuple(keep)
    kept = {name: KEEPABLE[name] for name in KEEPABLE if name in keep}
    orientation = "applied to the pixels" if "orientation-baked" in keep else "not applied: pixels as stored, the tag removed"
    return {"keep_metadata": sorted(kept), "kept": kept, "exif_orientation": orientation, "never_kept": list(NEVER_KEPT)}
