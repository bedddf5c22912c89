"""Fetching the book's real data sets: download, SHA-1 check and a safe extraction.

The book's ``VOCtrainval_11-May-2012.tar`` (Pascal VOC 2012, d2l 14.9, 2 GB) and
``banana-detection.zip`` (d2l 14.6) are fetched only when someone asks (``python -m
vision_core fetch``, :func:`download_voc`, :func:`download_bananas`), never as a side effect of
reading data; ``VISION_LAB_OFFLINE=1`` forbids it. A broken download resumes on the next try
(:func:`vision_core.weights.download_file`). Offline,
:func:`~vision_core.data.voc_synthetic.generate_voc_synthetic` and
:func:`~vision_core.data.bananas.generate_bananas` write stand-ins in the same layouts. Every
member of an archive is checked before anything is extracted: no absolute path, no ``..``, no
link pointing outside, no device or FIFO.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

from .._checks import check_int
from ..progress import Progress
from ..weights import download_file, file_digest, offline
from ._synth import PathLike, ProgressCallback
from .voc import _has_layout

__all__ = ["VOC_URL", "VOC_SHA1", "VOC_ARCHIVE", "VOCDownloadError", "download_voc", "download_voc_records",
           "BANANAS_URL", "BANANAS_SHA1", "BananasDownloadError", "download_bananas", "download_bananas_records"]

VOC_URL = "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar"
VOC_SHA1 = "4e443f8a2eca6b1dac8a6c57641b67dd40621a49"  # the book's DATA_HUB entry for this file
VOC_ARCHIVE = "VOCtrainval_11-May-2012.tar"
_VOC_ARCHIVE_BYTES = 1_999_639_040  # the progress total when the server sends no Content-Length


BANANAS_URL = "http://d2l-data.s3-accelerate.amazonaws.com/banana-detection.zip"
BANANAS_SHA1 = "5de26c8fce5ccdea9f91267273464dc968d20d72"  # the book's DATA_HUB entry "banana-detection"
BANANAS_ARCHIVE = "banana-detection.zip"
BANANAS_FOLDER = "banana-detection"


class VOCDownloadError(ValueError):
    """The VOC archive cannot be fetched or used: offline, a network error, a wrong checksum, an unsafe archive."""


class BananasDownloadError(ValueError):
    """The book's banana archive cannot be fetched or used: offline, a network error, a wrong checksum, an
    unsafe or unexpected archive."""


def _check_name(name: str, error: type[Exception] = VOCDownloadError) -> tuple[str, ...]:
    """The parts of an archive member's name; refused when absolute or climbing out with ``..``."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if not name or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts:
        raise error(f"unsafe archive: member {name!r} is an absolute path or climbs out with '..'")
    return parts


def _check_member(member: tarfile.TarInfo) -> None:
    """Refuse a member that could write outside the extraction folder."""
    name = member.name
    parts = _check_name(name)
    if member.issym() or member.islnk():
        target = member.linkname.replace("\\", "/")
        # A symlink's target is relative to its own folder, a hard link's to the archive's root.
        base = PurePosixPath(*parts[:-1]) if member.issym() else PurePosixPath()
        depth = 0
        for part in (base / target).parts if not target.startswith("/") else ("..",):
            depth += -1 if part == ".." else (0 if part == "." else 1)
            if depth < 0:
                raise VOCDownloadError(f"unsafe archive: link {name!r} -> {member.linkname!r} points outside it")
    elif not (member.isfile() or member.isdir()):
        raise VOCDownloadError(f"unsafe archive: member {name!r} is a device, FIFO or other special file")


def _extract(archive: Path, root: Path) -> Iterator[Progress]:
    """Extract VOC2012 from ``archive`` into ``root/VOCdevkit/VOC2012``, checking every member first."""
    tmp = root / f".voc-extract-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(member)
            total = len(members)
            for k, member in enumerate(members, start=1):
                # filter="data" is a second guard (Python >= 3.11.4): it also drops odd permissions.
                if hasattr(tarfile, "data_filter"):
                    tar.extract(member, tmp, filter="data")
                else:  # pragma: no cover - older Pythons; the members were checked above
                    tar.extract(member, tmp)
                if k % 500 == 0 or k == total:
                    yield Progress(k, total, message=f"extracting {k}/{total} files")
        extracted = tmp / "VOCdevkit" / "VOC2012"
        if not (extracted / "ImageSets" / "Segmentation").is_dir():
            raise VOCDownloadError(f"{archive.name} has no VOCdevkit/VOC2012/ImageSets/Segmentation folder")
        target = root / "VOCdevkit" / "VOC2012"
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(extracted, target)
        except OSError:
            raise VOCDownloadError(f"{target} exists but is incomplete: delete it and try again") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def download_voc_records(root: PathLike, *, url: str = VOC_URL, keep_archive: bool = False,
                         chunk_size: int = 1 << 20) -> Iterator[Progress]:
    """Download, verify and extract VOC 2012 into ``root/VOCdevkit/VOC2012``, as a long job.

    Steps, each skipped when its result is already there: an extracted copy is used as is; an
    archive ``root/VOCtrainval_11-May-2012.tar`` (say, copied in by hand) is checked and
    extracted without the network; otherwise the archive is streamed from ``url`` into a
    temporary file (refused before any connection when ``VISION_LAB_OFFLINE`` is set), its
    SHA-1 compared with :data:`VOC_SHA1`, and every member checked (no absolute paths, no
    ``..``, no link pointing outside, no special file) before anything is extracted.

    Yields:
        Progress: per downloaded chunk (``step``/``total`` in bytes), then per 500 extracted
        files (``step``/``total`` in files); the last record has ``done=True`` and the
        VOC2012 folder in its message.

    Raises:
        VOCDownloadError (a ValueError): offline, network failure, checksum mismatch, unsafe
            or unexpected archive.
    """
    check_int(chunk_size, "chunk_size", 1)
    root = Path(root)
    target = root / "VOCdevkit" / "VOC2012"
    if _has_layout(target):
        yield Progress(1, 1, message=f"VOC 2012 already in {target}", done=True)
        return
    archive = root / VOC_ARCHIVE
    expected = VOC_SHA1  # read at call time, so a test can swap it
    if archive.is_file():
        if file_digest(archive, "sha1") != expected:
            raise VOCDownloadError(
                f"{archive} does not match the expected SHA-1 {expected}: delete it and download again")
        yield from _extract(archive, root)
    else:
        if offline():
            raise VOCDownloadError(
                "VISION_LAB_OFFLINE is set, so VOC 2012 is not downloaded: unset it, or put "
                f"{VOC_ARCHIVE} in {root} yourself; generate_voc_synthetic() is the offline alternative")
        yield from download_file(url, archive, label="VOC 2012", check=_sha1_check(url, expected, "VOC 2012 archive"),
                                 expected_bytes=_VOC_ARCHIVE_BYTES, chunk_size=chunk_size, error=VOCDownloadError)
        try:
            yield from _extract(archive, root)
        finally:
            if not keep_archive:
                archive.unlink(missing_ok=True)
    yield Progress(1, 1, message=f"VOC 2012 ready in {target}", done=True)


def _sha1_check(url: str, expected: str, what: str,
                error: type[Exception] = VOCDownloadError) -> Callable[[Path], None]:
    """A ``download_file`` check: the finished file's SHA-1 must be ``expected``."""

    def check(path: Path) -> None:
        got = file_digest(path, "sha1")
        if got != expected:
            raise error(f"downloaded file from {url} has SHA-1 {got}, expected {expected}: "
                                   f"the download is corrupt or not the {what}")

    return check


def download_voc(root: PathLike, progress: ProgressCallback = None, *, url: str = VOC_URL,
                 keep_archive: bool = False) -> Path:
    """Run :func:`download_voc_records` to the end; returns the ``VOC2012`` folder.

    Args:
        root (str or PathLike): folder for ``VOCdevkit/VOC2012`` (and the archive, if kept).
        progress (callable, optional): ``progress(done, total)`` per record: bytes while
            downloading, then files while extracting.
        url (str): where to fetch the archive from.
        keep_archive (bool): keep the verified ``.tar`` in ``root`` after extracting.
    """
    for record in download_voc_records(root, url=url, keep_archive=keep_archive):
        if progress is not None:
            progress(record.step, record.total)
    return Path(root) / "VOCdevkit" / "VOC2012"


# --- the book's banana archive (d2l 14.6) ------------------------------------------------------

def _extract_bananas(archive: Path, root: Path) -> Iterator[Progress]:
    """Extract ``banana-detection/`` from the zip into ``root``, checking every member's name first."""
    tmp = root / f".bananas-extract-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = zipped.infolist()
            for member in members:
                _check_name(member.filename, BananasDownloadError)
                if (member.external_attr >> 16) & 0o170000 == 0o120000:  # a symbolic link stored by Unix zip
                    raise BananasDownloadError(f"unsafe archive: member {member.filename!r} is a symbolic link")
            for k, member in enumerate(members, start=1):
                zipped.extract(member, tmp)
                if k % 200 == 0 or k == len(members):
                    yield Progress(k, len(members), message=f"extracting {k}/{len(members)} files")
        extracted = tmp / BANANAS_FOLDER
        if not all((extracted / f"bananas_{split}" / "label.csv").is_file() for split in ("train", "val")):
            raise BananasDownloadError(f"{archive.name} has no {BANANAS_FOLDER}/bananas_train and bananas_val "
                                       "folders with a label.csv each")
        os.replace(extracted, root / BANANAS_FOLDER)
    except zipfile.BadZipFile as err:
        raise BananasDownloadError(f"{archive.name} is not a zip archive: {err}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def download_bananas_records(root: PathLike, *, url: str | None = None, chunk_size: int = 1 << 20
                             ) -> Iterator[Progress]:
    """Download, verify and extract the book's banana-detection archive into ``root/banana-detection``.

    The same steps as :func:`download_voc_records`: an extracted copy is used as is; the zip is
    fetched (resuming a broken download; refused before any connection when
    ``VISION_LAB_OFFLINE`` is set), its SHA-1 compared with :data:`BANANAS_SHA1` (the book's), every
    member's name checked, then extracted and deleted. :func:`~vision_core.data.bananas.read_bananas`
    reads the result. Offline, :func:`~vision_core.data.bananas.generate_bananas` draws a stand-in.

    Yields:
        Progress: per downloaded chunk (bytes), then per 200 extracted files; the last record has
        ``done=True`` and the folder in its message.

    Raises:
        BananasDownloadError (a ValueError): offline, network failure, checksum mismatch, unsafe or
            unexpected archive.
    """
    check_int(chunk_size, "chunk_size", 1)
    root = Path(root)
    target = root / BANANAS_FOLDER
    if (target / "bananas_val" / "label.csv").is_file():
        yield Progress(1, 1, message=f"the book's bananas already in {target}", done=True)
        return
    if offline():
        raise BananasDownloadError("VISION_LAB_OFFLINE is set, so the book's banana archive is not downloaded: "
                                   "unset it; generate_bananas() is the offline alternative")
    archive = root / BANANAS_ARCHIVE
    url = url or BANANAS_URL  # read at call time, as the checksum, so a test can swap them
    yield from download_file(url, archive, label="the book's bananas", chunk_size=chunk_size,
                             check=_sha1_check(url, BANANAS_SHA1, "book's banana archive", BananasDownloadError),
                             error=BananasDownloadError)
    try:
        yield from _extract_bananas(archive, root)
    finally:
        archive.unlink(missing_ok=True)
    yield Progress(1, 1, message=f"the book's bananas ready in {target}", done=True)


def download_bananas(root: PathLike, progress: ProgressCallback = None, *, url: str | None = None) -> Path:
    """Run :func:`download_bananas_records` to the end; returns the ``banana-detection`` folder."""
    for record in download_bananas_records(root, url=url):
        if progress is not None:
            progress(record.step, record.total)
    return Path(root) / BANANAS_FOLDER
