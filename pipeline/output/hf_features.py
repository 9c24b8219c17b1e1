"""Hugging Face `datasets` feature metadata for the Parquet rows, so that data tools open masks as images.

`datasets` reads a Parquet file's features from the schema metadata key b"huggingface"
({"info": {"features": {column: feature}}}) and uses a declared feature only where its Arrow type
is the column's own. An Image feature is stored as struct {bytes: binary, path: string}; a plain
binary column declared as Image is ignored and loads as bytes. Image columns are therefore real
struct columns, and every other column gets the feature its Arrow type maps to (older `datasets`
versions take the metadata only when it covers the whole schema).
"""
from __future__ import annotations

import json

import pyarrow as pa

IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])

# Arrow types -> `datasets` Value dtypes, for the types the row schema uses.
_VALUE_DTYPES = {
    pa.string(): "string", pa.binary(): "binary", pa.bool_(): "bool",
    pa.int8(): "int8", pa.int16(): "int16", pa.int32(): "int32", pa.int64(): "int64",
    pa.uint8(): "uint8", pa.uint16(): "uint16", pa.uint32(): "uint32", pa.uint64(): "uint64",
    pa.float16(): "float16", pa.float32(): "float32", pa.float64(): "float64",
}


def image_value(png: bytes | None, name: str) -> dict | None:
    """A cell of an Image column: the encoded PNG and a file name that tells its format."""
    return None if png is None else {"bytes": png, "path": name}


def _feature(arrow_type: pa.DataType) -> dict:
    if arrow_type in _VALUE_DTYPES:
        return {"dtype": _VALUE_DTYPES[arrow_type], "_type": "Value"}
    if pa.types.is_list(arrow_type):
        # "Sequence" is what every `datasets` version reads (newer ones turn it into List).
        return {"feature": _feature(arrow_type.value_type), "_type": "Sequence"}
    if pa.types.is_struct(arrow_type):
        return {arrow_type.field(i).name: _feature(arrow_type.field(i).type) for i in range(arrow_type.num_fields)}
    raise TypeError(f"no Hugging Face feature for Arrow type {arrow_type}")


def with_image_features(schema: pa.Schema, image_columns: tuple[str, ...]) -> pa.Schema:
    """`schema` carrying b"huggingface" features: `image_columns` as Image, the rest by type."""
    features = {}
    for field in schema:
        if field.name in image_columns:
            if field.type != IMAGE_TYPE:
                raise TypeError(f"image column {field.name!r} must be {IMAGE_TYPE}, not {field.type}")
            features[field.name] = {"_type": "Image"}
        else:
            features[field.name] = _feature(field.type)
    return schema.with_metadata({b"huggingface": json.dumps({"info": {"features": features}}).encode("utf-8")})
