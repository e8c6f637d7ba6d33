"""Reading user files: one reader for CSV (plain or compressed) and Parquet.

Every way a file can fail to read (missing, a directory, empty, the other format, an unknown
encoding, a malformed row, a truncated archive, random bytes) becomes a
:class:`~uplift.data.contract.DataValidationError` that names ``data.path``, the format and the
fix, before anything is fitted or written. The format follows ``data.source`` and is checked
against the file's first bytes; a CSV's encoding (byte-order mark, else UTF-8) and delimiter
(``csv.Sniffer`` over the first 64 KB) are sniffed unless ``data.encoding`` /
``data.delimiter`` name them. Only empty cells are missing values by default
(``data.na_values``): a region literally called ``NA`` stays a region.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import lzma
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from uplift.data.contract import DataValidationError

#: first bytes of the formats a customer file may come in
MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PAR1", "parquet"),
    (b"\x1f\x8b", "gzip"),
    (b"PK\x03\x04", "zip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)
#: byte-order marks, longest first
BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_OPEN: dict[str | None, Callable[..., Any]] = {
    None: open,
    "gzip": gzip.open,
    "bz2": bz2.open,
    "xz": lzma.open,
}
SNIFF_BYTES = 65536
DELIMITERS = ",;\t|"


def sniff_kind(head: bytes) -> str | None:
    """``parquet``, a compression name, or None (plain text or unknown) from a file's first bytes."""
    return next((kind for magic, kind in MAGIC if head.startswith(magic)), None)


def _describe(kind: str | None) -> str:
    return {None: "text (CSV)", "parquet": "a Parquet file"}.get(kind, f"{kind}-compressed")


def _sample(p: Path, kind: str | None) -> bytes:
    """The first bytes of the (decompressed) text, or b"" when they cannot be read here."""
    opener = _OPEN.get(kind)
    if opener is None:
        return b""
    try:
        with opener(p, "rb") as f:
            return f.read(SNIFF_BYTES)
    except (OSError, EOFError, lzma.LZMAError):
        return b""  # a broken archive: let the reader name the failure


def sniff_encoding(sample: bytes) -> str:
    return next((enc for bom, enc in BOMS if sample.startswith(bom)), "utf-8")


def sniff_delimiter(sample: bytes, encoding: str) -> str:
    text = sample.decode(encoding, errors="replace")
    lines = text.splitlines()
    if len(lines) > 1 and len(sample) >= SNIFF_BYTES:
        text = "\n".join(lines[:-1])  # the last line may be cut in the middle
    try:
        return csv.Sniffer().sniff(text, delimiters=DELIMITERS).delimiter
    except csv.Error:
        return ","


def preflight(path: str | Path | None) -> tuple[Path, str, str | None]:
    """(path, ``data.path=...`` for messages, kind from the first bytes) of a readable file;
    every way it cannot be opened is a named error. Shared by the pandas reader and the
    engines (:mod:`uplift.data.engine`)."""
    if path is None or str(path).strip() in ("", "???"):
        raise DataValidationError(
            "data.path is not set: pass data.path=/path/to/customers.csv (or .csv.gz, .parquet)"
        )
    where = f"data.path={str(path)!r}"
    p = Path(path).expanduser()
    if not p.exists():
        raise DataValidationError(
            f"{where} does not exist (resolved to {p.resolve()}); pass an absolute path "
            "or one relative to where you run `uplift`."
        )
    if p.is_dir():
        raise DataValidationError(
            f"{where} is a directory; point it at the customer file inside it "
            "(.csv, .csv.gz or .parquet)"
        )
    try:
        with open(p, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise DataValidationError(f"{where} cannot be opened: {e.strerror or e}") from None
    if not head:
        raise DataValidationError(
            f"{where} is empty (0 bytes): export the customer rows again, header first"
        )
    return p, where, sniff_kind(head)


def csv_dialect(
    p: Path, kind: str | None, encoding: str | None, delimiter: str | None
) -> tuple[str, str]:
    """(encoding, delimiter) of a CSV: as configured, else sniffed from its first bytes."""
    sample = _sample(p, kind)
    enc = encoding or sniff_encoding(sample)
    return enc, delimiter or (sniff_delimiter(sample, enc) if sample else ",")


def load_customers(
    path: str | Path | None,
    source: str,
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
    na_values: Sequence[str] = ("",),
) -> pd.DataFrame:
    """The customer rows of ``path`` as ``data.source`` says (``csv`` or ``parquet``)."""
    p, where, kind = preflight(path)
    if source == "parquet":
        return _read_parquet(p, where, kind)
    if source == "csv":
        return _read_csv(p, where, kind, encoding, delimiter, na_values)
    raise DataValidationError(
        f"data.source={source!r} cannot be read from a file; use data=csv or data=parquet"
    )


def _read_parquet(p: Path, where: str, kind: str | None) -> pd.DataFrame:
    if kind != "parquet":
        raise DataValidationError(
            f"{where} is not a Parquet file (it is {_describe(kind)}); for a CSV use data=csv, "
            "or point data.path at the .parquet file"
        )
    try:
        frame = pd.read_parquet(p)
    except Exception as e:  # pyarrow raises its own types (ArrowInvalid, OSError, ...)
        raise DataValidationError(
            f"{where} could not be read as Parquet ({type(e).__name__}: {e}); the file may be "
            "truncated or corrupt: write it again"
        ) from None
    return _non_empty(frame, where)


def _read_csv(
    p: Path,
    where: str,
    kind: str | None,
    encoding: str | None,
    delimiter: str | None,
    na_values: Sequence[str],
) -> pd.DataFrame:
    if kind == "parquet":
        raise DataValidationError(
            f"{where} is a Parquet file, but data.source is csv: use data=parquet"
        )
    enc, sep = csv_dialect(p, kind, encoding, delimiter)
    fix_sep = f"data.delimiter (read with {sep!r})"
    try:
        frame = pd.read_csv(
            p,
            sep=sep,
            encoding=enc,
            keep_default_na=False,
            na_values=list(na_values),
            low_memory=False,
        )
    except UnicodeError as e:
        start = getattr(e, "start", None)
        at = f" at byte {start}" if start is not None else ""
        raise DataValidationError(
            f"{where} is not {enc} text{at}: name its encoding, e.g. data.encoding=latin-1 "
            "(or utf-16, cp1252); if it is not a CSV at all, point data.path at the right file"
        ) from None
    except pd.errors.EmptyDataError:
        raise DataValidationError(
            f"{where} has no columns: the file holds no CSV header (export it again)"
        ) from None
    except pd.errors.ParserError as e:
        raise DataValidationError(
            f"{where} is not a well-formed CSV: {str(e).strip()}. Every row needs the header's "
            f"number of fields; check quoting and {fix_sep}"
        ) from None
    except (EOFError, OSError, ValueError, lzma.LZMAError) as e:
        raise DataValidationError(
            f"{where} could not be read as {_describe(kind)} ({type(e).__name__}: {e}); the file "
            "may be truncated or corrupt: export it again"
        ) from None
    return _non_empty(frame, where)


def _non_empty(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    if frame.empty:
        raise DataValidationError(
            f"{where} has a header ({', '.join(map(str, frame.columns[:6]))}) but no rows"
        )
    return frame
