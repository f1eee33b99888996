"""Connectors: where work items come from and where results go (xlsx and csv files).

Each kind of file is one module: `xlsx` (python-calamine to read, openpyxl to write) and `csv`
(the standard library). What the sources share, matching headers and typing cells, is in
`rows`; what the sinks share is in `values`; what both need of the disk is in `files`.
Importing this package registers nothing: the runner calls `register_all()`.
"""

from __future__ import annotations


def register_all() -> None:
    """Register the 'xlsx' and 'csv' sources and sinks with the core's registry."""
    from connectors.csv import CsvSink, CsvSource
    from connectors.xlsx import XlsxSink, XlsxSource
    from tasks.plugins import register_sink, register_source

    register_source("xlsx", XlsxSource)
    register_source("csv", CsvSource)
    register_sink("xlsx", XlsxSink)
    register_sink("csv", CsvSink)
