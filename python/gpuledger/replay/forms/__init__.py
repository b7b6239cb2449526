"""One reader per input form of replay, behind one small interface (`FormReader`): JSON lines,
exposition text, CSV, and columnar files (Parquet read in Rust, Arrow IPC). `reader_for` picks
the reader of a detected format."""

from __future__ import annotations

from gpuledger.replay.forms.base import FormReader, InputSpec

__all__ = ["FormReader", "InputSpec", "reader_for"]


def reader_for(format: str, spec: InputSpec) -> FormReader:
    """The reader of `format` (one of `gpuledger.replay.detect.FORMATS`) for `spec`'s file.
    Each reader's module is imported when its format is first read (CSV's loads pyarrow.csv)."""
    if format == "exposition":
        from gpuledger.replay.forms.exposition import ExpositionReader

        return ExpositionReader(spec)
    if format == "csv":
        from gpuledger.replay.forms.csv_rows import CsvReader

        return CsvReader(spec)
    if format in ("parquet", "arrow"):
        from gpuledger.replay.forms.columnar import ColumnarReader

        return ColumnarReader(spec)
    from gpuledger.replay.forms.json_lines import JsonLinesReader

    return JsonLinesReader(spec, format)
