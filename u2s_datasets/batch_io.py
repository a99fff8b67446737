"""What a batch holds and what goes back to ``datasets``.

``Dataset.map`` hands a batched function its Arrow data (``LazyBatch.pa_table``) and accepts a
``pyarrow.Table`` in return. Reading the images from Arrow means datasets never decodes them,
so every row's bytes are the input's own (decoded column or not), and the input columns go
back as the same Arrow arrays, byte for byte. Returning a table typed by the output features
means no batch's contents (say, no private row in the first batch) can change the schema.
"""

from typing import Optional

import numpy as np
import pyarrow as pa
from datasets import ClassLabel, Features
from datasets.formatting.formatting import LazyRow

from . import columns as C


def arrow_of(batch) -> Optional[pa.Table]:
    """The batch's own Arrow table when datasets gave one (``Dataset.map``, arrow-formatted data)."""
    if isinstance(batch, pa.Table):
        return batch
    table = getattr(batch, "pa_table", None)
    return table if isinstance(table, pa.Table) else None


def features_of(table: Optional[pa.Table]) -> Optional[Features]:
    if table is None:
        return None
    try:
        return Features.from_arrow_schema(table.schema)
    except Exception:  # a schema datasets cannot read back: types are then taken as they are
        return None


def image_values(batch, table: Optional[pa.Table], column: str) -> list:
    """The image column's values, as encoded ``{"bytes", "path"}`` where Arrow holds them."""
    if isinstance(batch, LazyRow):
        raise TypeError("Unsafe2Safe works on batches: call ds.map(u2s, batched=True)")
    if table is not None and _is_image_storage(table.schema.field(column).type):
        return table.column(column).to_pylist()
    values = batch[column]
    if isinstance(values, np.ndarray) and values.dtype != object and values.ndim == 4:
        return list(values)  # a numpy-formatted batch of same-size images
    if not isinstance(values, (list, tuple)) and not (isinstance(values, np.ndarray) and values.dtype == object):
        raise TypeError(
            f"Unsafe2Safe works on batches: column {column!r} holds one {type(values).__name__}, not a list; "
            "call ds.map(u2s, batched=True)"
        )
    return list(values)


def _is_image_storage(arrow_type) -> bool:
    return pa.types.is_struct(arrow_type) and {f.name for f in arrow_type} == {"bytes", "path"}


def class_names_from(features: Optional[Features], column: Optional[str]):
    """The names of a ClassLabel column, or None."""
    feature = features.get(column) if features is not None and column else None
    return tuple(feature.names) if isinstance(feature, ClassLabel) else None


def single_class_label_column(features: Optional[Features]) -> Optional[str]:
    """The dataset's ClassLabel column when it has exactly one."""
    names = [name for name, feature in (features or {}).items() if isinstance(feature, ClassLabel)]
    return names[0] if len(names) == 1 else None


def output_table(table: pa.Table, kept: list, columns: dict) -> pa.Table:
    """The input's Arrow columns for the kept rows, then the added columns, typed by the output features."""
    if len(kept) != table.num_rows:
        table = table.take(pa.array(kept, type=pa.int64()))
    table = table.drop_columns([name for name in C.OUTPUT_FEATURES if name in table.column_names])
    added = pa.Table.from_pydict(C.OUTPUT_FEATURES.encode_batch(columns), schema=C.OUTPUT_FEATURES.arrow_schema)
    input_features = features_of(table)
    if input_features is None:
        return pa.Table.from_arrays(table.columns + added.columns, names=table.column_names + added.column_names)
    schema = C.output_features(input_features).arrow_schema
    return pa.Table.from_arrays(table.columns + added.columns, schema=schema)
