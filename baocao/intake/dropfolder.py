"""What the drop folder may hand to intake, and how it is read: regular files only, never a link.

The folder is shared: officers copy forms into it, scripts and sync tools write to it, and anyone
who can write there can also leave a symlink (to any file the worker can read) or a FIFO. So:

- an entry is judged by ``lstat`` (the entry itself, never what a link points to): a symlink and
  anything that is not a regular file are refused without being opened;
- the size comes from ``stat`` before a byte is read: a file over the limit is refused unread;
- a file is taken only once it has been left alone for ``drop_settle_seconds`` (neither its
  content, its name nor its metadata changed; a copy still running keeps changing), and names a
  writer uses while it writes (``.name``, ``name.part``, ``name.tmp``, ...) are not looked at until
  renamed (the write-then-rename convention);
- it is opened with ``O_NOFOLLOW`` and checked again on the open descriptor, so a file swapped for
  a link or still growing between the listing and the read is refused or left for the next run.

The time a file counts as received is when it reached the folder: the later of its modification
and status-change times (a copy that keeps an old modification time still counts from its arrival;
the status-change time cannot be set back by the writer).
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from baocao.errors import Changed
from baocao.rules.formatting import number_vi

IN_PROGRESS_SUFFIXES = (".part", ".partial", ".tmp", ".crdownload", ".download", "~")
OWN_FOLDERS = ("done", "failed")  # where collect_folder moves what it has handled


@dataclass(frozen=True)
class Entry:
    """A regular file of the folder as listed: what it must still be when it is read."""

    path: Path
    size: int
    mtime_ns: int
    arrived: datetime  # when it reached the folder (aware, UTC)


@dataclass(frozen=True)
class Refusal:
    """An entry refused without reading it, and why (in Vietnamese, for the operator)."""

    path: Path
    rule: str  # symlink | not_regular_file | file_too_large
    reason_vi: str
    size: int | None = None


@dataclass
class Scan:
    ready: list[Entry] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # still being written (or just arrived): next run


@dataclass(frozen=True)
class ParkedFile:
    """A dropped file moved to ``failed/``: the operator must look at it (fix it and drop it again)."""

    name: str
    moved_to: str  # path relative to the drop folder
    reason_vi: str
    size: int | None = None


def arrival(st: os.stat_result) -> datetime:
    return datetime.fromtimestamp(max(st.st_mtime, st.st_ctime), tz=UTC)


def scan(folder: Path, *, settle_seconds: float, max_bytes: int, now: float | None = None) -> Scan:
    """Sort the folder's entries into files to read, entries to refuse unread, and files to wait for."""
    now = time.time() if now is None else now
    found = Scan()
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        name = entry.name
        if name.startswith(".") or name.endswith(IN_PROGRESS_SUFFIXES):
            continue  # being written under a temporary name
        path = Path(entry.path)
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue  # moved away meanwhile (another collector)
        if stat.S_ISDIR(st.st_mode) and name in OWN_FOLDERS:
            continue
        if stat.S_ISLNK(st.st_mode):
            found.refused.append(Refusal(path, "symlink", "là liên kết (symlink) tới tệp khác, không phải tệp "
                                         "biểu mẫu; hệ thống không đọc liên kết. Đề nghị chép chính tệp biểu mẫu "
                                         "vào thư mục."))
            continue
        if not stat.S_ISREG(st.st_mode):
            found.refused.append(Refusal(path, "not_regular_file", "không phải tệp thông thường (thư mục, thiết bị "
                                         "hoặc đường ống); hệ thống không đọc. Đề nghị chỉ chép tệp biểu mẫu "
                                         "vào thư mục."))
            continue
        if settle_seconds > 0 and now - max(st.st_mtime, st.st_ctime) < settle_seconds:
            found.waiting.append(name)
            continue
        if st.st_size > max_bytes:
            found.refused.append(Refusal(path, "file_too_large", f"có dung lượng {number_vi(st.st_size)} byte, "
                                         f"vượt giới hạn {number_vi(max_bytes)} byte; tệp không được đọc. Đề nghị "
                                         "dùng đúng biểu mẫu .xlsx, không kèm hình ảnh hay dữ liệu khác.",
                                         st.st_size))
            continue
        found.ready.append(Entry(path, st.st_size, st.st_mtime_ns, arrival(st)))
    return found


def read_entry(entry: Entry) -> bytes:
    """The bytes of a listed file, read from a descriptor that cannot be a link's target.

    Raises :class:`Changed` if the file is no longer what was listed (grown, rewritten, replaced by
    something that is not a regular file), ``OSError`` with ``errno.ELOOP`` if a link took its place,
    ``FileNotFoundError`` if it is gone. Never reads more than the listed size plus one byte.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(entry.path, flags)
    try:
        before = os.fstat(fd)
        if (not stat.S_ISREG(before.st_mode) or before.st_size != entry.size
                or before.st_mtime_ns != entry.mtime_ns):
            raise Changed(entry.path.name)
        chunks, left = [], entry.size + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        after = os.fstat(fd)
        if len(data) != entry.size or after.st_size != entry.size or after.st_mtime_ns != entry.mtime_ns:
            raise Changed(entry.path.name)
        return data
    finally:
        os.close(fd)


def is_link_error(exc: OSError) -> bool:
    """``open(O_NOFOLLOW)`` on a symlink: ELOOP on Linux, EMLINK on FreeBSD."""
    return exc.errno in (errno.ELOOP, errno.EMLINK)


def parked_summary(parked: Sequence[ParkedFile], folder: Path) -> str:
    """A Markdown note for the operator (a run artifact, a log line): what this run put in `failed/`,
    why, and how many files wait there in all. Empty when nothing was parked and none wait."""
    failed = folder / "failed"
    waiting = sum(1 for p in failed.iterdir() if not p.name.startswith(".")) if failed.is_dir() else 0
    if not parked and not waiting:
        return ""
    lines = [f"## Tệp trong thư mục nhận tệp chưa được tiếp nhận ({number_vi(len(parked))} tệp mới)", ""]
    if parked:
        lines += ["| Tệp | Chuyển tới | Lý do |", "|---|---|---|"]
        for p in parked:
            cells = (p.name, p.moved_to, p.reason_vi)
            lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
        lines.append("")
    lines.append(f"Thư mục `{failed}` hiện có {number_vi(waiting)} tệp chưa được tiếp nhận. Sau khi sửa, chép lại "
                 "tệp vào thư mục nhận tệp để hệ thống tiếp nhận ở lần thu tiếp theo.")
    return "\n".join(lines)
