"""One reader per input form of replay, behind one small interface (`FormReader`): JSON lines,
exposition text, CSV, and columnar files (Parquet read in Rust, Arrow IPC). `reader_for` picks
the reader of a detected format."""

from __future__ import annotations

from gpuledger.replay.forms.base import FormReader, InputSpec
from gpuledger.replay.forms.columnar import ColumnarReader
from gpuledger.replay.forms.csv_rows import CsvReader
from gpuledger.replay.forms.exposition import ExpositionReader
from gpuledger.replay.forms.json_lines import JsonLinesReader

__all__ = ["FormReader", "InputSpec", "reader_for"]


def reader_for(format: str, spec: InputSpec) -> FormReader:
    """The reader of `format` (one of `gpuledger.replay.detect.FORMATS`) for `spec`'s file."""
    if format == "exposition":
        return ExpositionReader(spec)
    if format == "csv":
        return CsvReader(spec)
    if format in ("parquet", "arrow"):
        return ColumnarReader(spec)
    return JsonLinesReader(spec, format)
