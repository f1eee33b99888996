"""What every connector needs of the disk: finding an input file, telling what a file really is,
refusing one that Excel has open, and replacing a results file atomically.

Messages here are for the administrator at the command line, so they are in English and say what
to do next.
"""

from __future__ import annotations

import difflib
import os
import secrets
import struct
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

from tasks.errors import ConnectorError, DataError

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_CFB_MAGIC = bytes.fromhex("D0CF11E0A1B11AE1")
_CFB_END_OF_CHAIN = 0xFFFFFFFA  # sector numbers from here up are markers, not sectors
_ODS_MIMETYPE = b"application/vnd.oasis.opendocument.spreadsheet"


def closest(word: str, choices: list[str]) -> str | None:
    """The choice most like `word` (ignoring case), or None when none is close."""
    lowered = {choice.casefold(): choice for choice in choices}
    close = difflib.get_close_matches(word.casefold(), list(lowered), n=1, cutoff=0.6)
    return lowered[close[0]] if close else None


def did_you_mean(word: str, choices: list[str]) -> str:
    """' (did you mean 'x'?)' for the choice closest to `word`, or '' when none is close."""
    match = closest(word, choices)
    return f" (did you mean {match!r}?)" if match is not None else ""


def require_file(path: Path, suffixes: tuple[str, ...]) -> None:
    """Raise DataError unless `path` is an existing file; name the files of that kind next to it."""
    if path.is_file():
        return
    if path.exists():
        raise DataError(f"{path} is a folder, not a file; give the path of the file itself")
    folder = path.parent
    if not folder.is_dir():
        raise DataError(f"file not found: {path} (the folder {folder} does not exist either)")
    candidates = sorted(
        entry.name
        for entry in folder.iterdir()
        if entry.suffix.lower() in suffixes and entry.is_file() and not entry.name.startswith("~$")
    )
    kinds = "/".join(suffixes)
    if not candidates:
        raise DataError(f"file not found: {path} (the folder {folder} holds no {kinds} files)")
    listed = ", ".join(candidates[:10]) + (", ..." if len(candidates) > 10 else "")
    raise DataError(
        f"file not found: {path}{did_you_mean(path.name, candidates)}; "
        f"{kinds} files in {folder}: {listed}"
    )


def excel_lock_file(path: Path) -> Path | None:
    """The `~$name` owner file Excel keeps next to a file it has open, if there is one."""
    for name in (f"~${path.name}", f"~${path.name[2:]}"):
        lock = path.with_name(name)
        if lock.is_file():
            return lock
    return None


def require_closed_in_excel(path: Path) -> None:
    """Raise DataError when Excel has `path` open: klerk would miss the changes not yet saved."""
    lock = excel_lock_file(path)
    if lock is None:
        return
    raise DataError(
        f"{path} is open in Excel (lock file {lock.name} found): save it, close it in Excel and "
        "start again, so that no unsaved change is missed; if Excel is not running, the lock "
        "file was left behind by a crash: delete it"
    )


def read_head(path: Path, size: int = 4096) -> bytes:
    """The first `size` bytes of a file; an unreadable file is a ConnectorError."""
    try:
        with path.open("rb") as handle:
            return handle.read(size)
    except OSError as exc:
        raise ConnectorError(f"cannot read {path}: {exc.strerror or exc}") from exc


def workbook_problem(path: Path, head: bytes) -> str | None:
    """Why `path` is not an Excel workbook (.xlsx) although it is named like one, or None if it is.

    Looks at the content, not the name: what Excel or a system export really wrote.
    """
    if not head:
        return "is empty (0 bytes); open the original in Excel and save it again as .xlsx"
    if head.startswith(_ZIP_MAGIC):
        return _zip_problem(path)
    if head.startswith(_CFB_MAGIC):
        streams = _cfb_stream_names(path)
        if {"EncryptionInfo", "EncryptedPackage"} & streams:
            return (
                "is protected with a password (encrypted); open it in Excel, remove the password "
                "(File > Info > Protect Workbook > Encrypt with Password) and save it without one"
            )
        if {"Workbook", "Book"} & streams:
            return (
                "is an old Excel 97-2003 workbook (.xls), not an .xlsx; open it in Excel and "
                "save it as 'Excel Workbook (*.xlsx)'"
            )
        if "WordDocument" in streams:
            return "is a Word 97-2003 document, not a workbook"
        return "is an old-format Office file (OLE2), not an .xlsx workbook"
    what, advice = describe_text_or_binary(head)
    return f"is {what}, not an Excel workbook (.xlsx)" + (f"; {advice}" if advice else "")


def describe_text_or_binary(head: bytes) -> tuple[str, str]:
    """What a file that is neither a zip nor an OLE2 file looks like, and what to do about it
    ('' when there is no advice), for a message."""
    lowered = head.lstrip().lower()
    if head.startswith(b"%PDF"):
        return "a PDF document", ""
    if lowered.startswith((b"<!doctype html", b"<html")) or b"<table" in lowered:
        return (
            "an HTML page (some systems export 'Excel' files that are really web pages)",
            "open it in Excel and save it as .xlsx",
        )
    if lowered.startswith(b"<?xml"):
        if b"urn:schemas-microsoft-com:office:spreadsheet" in lowered:
            return "an Excel 2003 XML spreadsheet", "open it in Excel and save it as .xlsx"
        return "an XML file", ""
    if b"\x00" not in head and any(mark in head for mark in (b";", b",", b"\t", b"\n")):
        return (
            "a text (CSV) file",
            "use `kind: csv` in the task definition and name the file .csv, or open it in Excel "
            "and save it as .xlsx",
        )
    return "a file of a kind this tool cannot read", ""


def _zip_problem(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            mimetype = archive.read("mimetype") if "mimetype" in names else b""
    except (zipfile.BadZipFile, OSError):
        return (
            "is damaged (an incomplete zip archive; was the download or copy interrupted?); "
            "open it in Excel and save it again"
        )
    if "xl/workbook.xml" in names:
        return None
    if "xl/workbook.bin" in names:
        return "is an Excel binary workbook (.xlsb); save it in Excel as .xlsx"
    if mimetype.startswith(_ODS_MIMETYPE):
        return "is an OpenDocument spreadsheet (.ods); save it as .xlsx"
    if any(name.startswith("word/") for name in names):
        return "is a Word document, not a workbook"
    if any(name.startswith("ppt/") for name in names):
        return "is a PowerPoint presentation, not a workbook"
    return "is a zip archive without a workbook in it"


def _cfb_stream_names(path: Path) -> set[str]:
    """The names in the directory of an OLE2 compound file (old Office formats, encrypted .xlsx).

    Reads only the header, the first 109 FAT sectors and the directory chain; a damaged file
    yields what could be read.
    """
    names: set[str] = set()
    try:
        with path.open("rb") as handle:
            header = handle.read(512)
            sector_size = 1 << struct.unpack_from("<H", header, 30)[0]
            fat_sector_count, first_directory = struct.unpack_from("<I I", header, 44)
            difat = struct.unpack_from("<109I", header, 76)

            def sector(number: int) -> bytes:
                handle.seek((number + 1) * sector_size)
                return handle.read(sector_size)

            fat: list[int] = []
            for number in difat[: min(fat_sector_count, 109)]:
                data = sector(number)
                fat.extend(struct.unpack(f"<{len(data) // 4}I", data[: len(data) // 4 * 4]))
            current, visited = first_directory, set[int]()
            while current < _CFB_END_OF_CHAIN and current not in visited and len(visited) < 4096:
                visited.add(current)
                data = sector(current)
                for offset in range(0, len(data) - 127, 128):
                    length = struct.unpack_from("<H", data, offset + 64)[0]
                    if 2 <= length <= 64:
                        names.add(data[offset : offset + length - 2].decode("utf-16-le", "replace"))
                current = fat[current] if current < len(fat) else _CFB_END_OF_CHAIN
    except (OSError, struct.error, ValueError):
        pass
    return names


@contextmanager
def atomic_write(path: Path) -> Iterator[BinaryIO]:
    """Write `path` all at once: into a temporary file next to it, then renamed over it.

    The temporary file is flushed and fsynced before the rename, so a crash leaves either the old
    file or the new one, never half of one. On any failure the temporary file is removed and the
    old file is untouched. OSErrors become ConnectorError with what to do.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        # 0o666 minus the umask, like any new file (mkstemp would give 0o600)
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise _write_error(path, exc) from exc
    try:
        with os.fdopen(descriptor, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException as exc:
        with suppress(OSError):
            temporary.unlink()
        if isinstance(exc, OSError):
            raise _write_error(path, exc) from exc
        raise
    _fsync_folder(path.parent)


def _write_error(path: Path, exc: OSError) -> ConnectorError:
    hint = ""
    if isinstance(exc, PermissionError):
        hint = " (is the file open in Excel, or is the folder read-only?)"
    return ConnectorError(f"cannot write {path}: {exc.strerror or exc}{hint}")


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX); where folders cannot be opened this is skipped."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
