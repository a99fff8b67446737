"""Media kept on request goes out as bytes, never as a path of this machine.

A dataset built from file paths (``Image()`` cast over a column of paths, never saved) holds
only ``{"bytes": None, "path": "/home/..."}``: written to parquet as it is, the published dataset
would name the files of this machine and hold no image. The files are read into the rows, as
``Dataset.push_to_hub`` does (``embed_table_storage``), and their names dropped: a file name can
name a person or a place, and the bytes are the whole image.
"""

import pyarrow as pa
import pyarrow.compute as pc

from .errors import PublishError

_MEDIA_FIELDS = {"bytes", "path"}  # the storage of Image, Audio, Video and Pdf values


def media_columns(features, skip=()) -> list:
    """The columns whose values are (or nest) media files, other than ``skip``."""
    from datasets.features.features import require_storage_embed

    return [name for name, feature in features.items() if name not in skip and require_storage_embed(feature)]


def embed_media(ds, columns, split: str):
    """``ds`` with the files of ``columns`` read into their bytes and their paths dropped, at any depth."""
    from datasets.table import embed_array_storage

    features = ds.features

    def embedded(table: pa.Table) -> pa.Table:
        arrays = [_without_paths(embed_array_storage(table[name], features[name]).combine_chunks()) if name in columns
                  else table[name] for name in table.column_names]
        return pa.Table.from_arrays(arrays, schema=table.schema)

    formatting = ds.format["type"]
    try:
        ds = ds.with_format("arrow").map(embedded, batched=True, batch_size=32, keep_in_memory=True,
                                         desc=f"Embedding the files of kept columns ({split})")
    except (OSError, ValueError) as e:
        raise PublishError(f"Split {split!r}: a file of the kept column(s) {', '.join(columns)} cannot be read ({e})") from None
    return ds.with_format(formatting)


def _without_paths(array: pa.Array) -> pa.Array:
    kind = array.type
    if pa.types.is_struct(kind):
        names = [field.name for field in kind]
        if set(names) == _MEDIA_FIELDS:
            children = [pa.nulls(len(array), pa.string()) if name == "path" else array.field(name) for name in names]
        else:
            children = [_without_paths(array.field(name)) for name in names]
        return pa.StructArray.from_arrays(children, fields=list(kind), mask=array.is_null())
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        builder = pa.LargeListArray if pa.types.is_large_list(kind) else pa.ListArray
        start, stop = array.offsets[0].as_py(), array.offsets[-1].as_py()
        offsets = pc.subtract(array.offsets, pa.scalar(start, array.offsets.type))  # a slice's own offsets, from 0
        return builder.from_arrays(offsets, _without_paths(array.values.slice(start, stop - start)), mask=array.is_null())
    if pa.types.is_fixed_size_list(kind):
        size = kind.list_size
        values = array.values.slice(array.offset * size, len(array) * size)
        return pa.FixedSizeListArray.from_arrays(_without_paths(values), size, mask=array.is_null())
    return array
