"""Reading the data sets the audits run on: Parquet or CSV, columnar, with clear errors.

Polars reads the file (multi-threaded, columnar: millions of rows fit comfortably) and
hands the audits a pandas frame, which is what scikit-learn, fairlearn and shap take.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import polars as pl


class DataFileError(ValueError):
    """A data set that cannot be used: missing, unreadable, or lacking a needed column."""


def read_table(path: str | Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Read a Parquet or CSV file; ``columns`` must all be present when given."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"data file {path} does not exist")
    try:
        if path.suffix.lower() in {".parquet", ".pq"}:
            frame = pl.read_parquet(path)
        elif path.suffix.lower() in {".csv", ".txt"}:
            frame = pl.read_csv(path, infer_schema_length=10_000)
        else:
            raise DataFileError(f"data file {path}: expected .parquet or .csv, got {path.suffix!r}")
    except (pl.exceptions.PolarsError, OSError) as error:
        raise DataFileError(f"data file {path} cannot be read: {error}") from error
    if columns is not None:
        require_columns(frame.columns, columns, str(path))
        frame = frame.select(list(dict.fromkeys(columns)))
    return frame.to_pandas()


def require_columns(present: Sequence[str], needed: Sequence[str], source: str) -> None:
    missing = [c for c in needed if c not in present]
    if missing:
        raise DataFileError(f"{source} lacks column(s) {missing}; it has {list(present)}")
