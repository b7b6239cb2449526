"""CSV telemetry or requests, streamed by pyarrow's CSV reader in blocks of about `chunk_bytes`;
label columns read as text, metric columns as numbers; a row that does not parse is rejected,
counted and shown (the first 20), never silently dropped."""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Iterator
from typing import Any, Literal

import pyarrow as pa
import pyarrow.csv as pacsv

from gpuledger.errors import ReplayInputError
from gpuledger.replay.chunk import ArrowRows, Chunk
from gpuledger.replay.event_times import batch_time_ms
from gpuledger.replay.forms.base import TextFormReader
from gpuledger.replay.opened import first_line

# Columns read as strings from CSV (label columns: the engine wants strings there, and an
# all-empty column would otherwise be inferred as null-typed).
_CSV_TEXT = {
    "gpu", "gpu_uuid", "UUID", "gpu_index", "hostname", "Hostname", "host", "model_name",
    "modelName", "model", "namespace", "pod", "container", "gpu_instance_id", "GPU_I_ID",
    "field", "name", "service", "request_id", "device", "pci_bus_id",
}  # fmt: skip
_CSV_NUMBER = {
    "value", "gr_engine_active", "gpu_util", "sm_active", "fb_used_mib", "power_w",
    "energy_mj", "latency_ms", "ttft_ms", "status", "tokens_in", "tokens_out",
}  # fmt: skip
_DICT_STRING = pa.dictionary(pa.int32(), pa.string())


class CsvReader(TextFormReader):
    def first_ms(self, head: bytes, compression: str | None) -> int | None:
        lines = head.split(b"\n")
        if len(lines) < 3:
            return None
        with contextlib.suppress(pa.ArrowException, ValueError):
            table = pacsv.read_csv(
                io.BytesIO(b"\n".join(lines[:2])),
                convert_options=self._convert(lines[0]),
            )
            return batch_time_ms(table.combine_chunks().to_batches()[0], largest=False)
        return None

    def _convert(self, header: bytes) -> pacsv.ConvertOptions:
        names = next(csv.reader([header.decode("utf-8", "replace").lstrip("\ufeff")]))
        text = _CSV_TEXT | set(self.spec.text_columns)
        types: dict[str, pa.DataType] = {}
        for n in names:
            if n in text:
                types[n] = _DICT_STRING
            elif n in _CSV_NUMBER or n.startswith("DCGM_FI_"):
                types[n] = pa.float64()
            elif n == "error":
                types[n] = pa.bool_()
        return pacsv.ConvertOptions(
            column_types=types, strings_can_be_null=False, quoted_strings_can_be_null=False
        )

    def chunks(self) -> Iterator[Chunk]:
        path = self.spec.path
        header = first_line(path)
        opened = self.open()

        def invalid(row: Any) -> Literal["skip"]:
            self.rejected_count += 1
            if len(self.rejected_rows) < 20:
                self.rejected_rows.append((row.number, str(row.text)[:200]))
            return "skip"

        try:
            reader = pacsv.open_csv(
                opened.stream,  # type: ignore[arg-type]  # any NativeFile works
                read_options=pacsv.ReadOptions(block_size=max(1 << 16, self.spec.chunk_bytes)),
                parse_options=pacsv.ParseOptions(invalid_row_handler=invalid),
                convert_options=self._convert(header),
            )
        except pa.ArrowException as e:
            raise ReplayInputError(f"{path}: {e}") from e
        rows = 0
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except pa.ArrowException as e:
                raise ReplayInputError(f"{path}: CSV rows after row {rows}: {e}") from e
            end = batch_time_ms(batch)
            yield Chunk(ArrowRows((batch,), self.spec.form, rows), end, batch.num_rows)
            rows += batch.num_rows
