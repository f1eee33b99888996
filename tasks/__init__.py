"""The core of klerk: what a task is and how one runs; knows no browser, no spreadsheet library."""

__version__ = "0.1.0"
