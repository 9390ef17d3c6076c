"""Download Sentinel-1 product archives of an inventory (``surfacemotion:s1download``).

Each product becomes ``<folder>/<id>.zip``, complete or absent: the bytes arrive in
``<folder>/.s1download_partial/<id>.zip.part`` (a hidden folder, never a product name), a
broken or truncated transfer is resumed with an HTTP ``Range`` request from where it stopped
(also by the next run after a cancel or a kill), and the finished archive is checked — size
(when the catalogue gives it), checksum (md5/sha256/sha1 when given, else every member's CRC),
a .SAFE manifest inside — before :func:`core.io.atomic_file` renames it into place. A product
already in the folder that passes the same checks is skipped. A checksum mismatch discards
the bytes. The partial folder is removed once empty.
"""
from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import socket
import urllib.parse
import zipfile
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence

from ..errors import UserInputError, check_canceled
from ..io import atomic_file
from ..io.files import check_free_space
from .http import HttpError, Session

PARTIAL_FOLDER = ".s1download_partial"
CHUNK = 1 << 20
#: Broken transfers resumed within one run before giving up (the next run resumes again).
MAX_RESUMES = 5
_HASHES = {"md5": hashlib.md5, "sha256": hashlib.sha256, "sha1": hashlib.sha1}


@dataclass
class Product:
    """One archive to fetch: product ``id``, ``url``, ``checksum`` ('md5:<hex>' or ''), ``size`` (bytes, 0 = unknown)."""

    id: str
    url: str
    checksum: str = ""
    size: int = 0

    def validate(self) -> None:
        if not self.id or "/" in self.id or "\\" in self.id or self.id.startswith("."):
            raise UserInputError(f"'{self.id}' is not a product id usable as a file name.")
        if urllib.parse.urlsplit(self.url).scheme not in ("http", "https"):
            raise UserInputError(f"Product {self.id} has no http(s) download URL ('{self.url}'): it comes from a "
                                 "local folder or a catalogue without downloads. Select products of a catalogue "
                                 "search.")
        if self.checksum:
            algorithm = self.checksum.split(":", 1)[0]
            if algorithm not in _HASHES:
                raise UserInputError(f"Product {self.id}: unknown checksum '{self.checksum}' (md5:, sha256: or sha1:).")


@dataclass
class DownloadReport:
    """Final archive paths, products fetched / already present, bytes transferred, resumes."""

    paths: List[str] = field(default_factory=list)
    fetched: int = 0
    skipped: int = 0
    bytes: int = 0
    resumes: int = 0


def file_digest(path: str, algorithm: str) -> str:
    digest = _HASHES[algorithm]()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def archive_problem(path: str, product: Product) -> Optional[str]:
    """Why ``path`` is not ``product``'s complete archive, or None."""
    got = os.path.getsize(path)
    if product.size and got != product.size:
        return f"it has {got} of {product.size} bytes"
    if product.checksum:
        algorithm, expected = product.checksum.split(":", 1)
        if file_digest(path, algorithm) != expected.strip().lower():
            return f"its {algorithm.upper()} checksum differs from the catalogue's"
    if not zipfile.is_zipfile(path):
        return "it is not a zip archive"
    with zipfile.ZipFile(path) as archive:
        if not any(name.endswith(".SAFE/manifest.safe") for name in archive.namelist()):
            return "it holds no .SAFE product (no manifest.safe)"
        if not product.checksum and archive.testzip() is not None:
            return "a member fails its CRC check"
    return None


def _part_path(folder: str, product: Product) -> str:
    return os.path.join(folder, PARTIAL_FOLDER, f"{product.id}.zip.part")


def _content_total(response, offset: int) -> Optional[int]:
    """Total size of the resource from Content-Range (206) or Content-Length (200)."""
    content_range = response.headers.get("Content-Range") or ""
    if "/" in content_range and content_range.rsplit("/", 1)[1].strip().isdigit():
        return int(content_range.rsplit("/", 1)[1])
    length = response.headers.get("Content-Length")
    return (int(length) + (offset if response.status == 206 else 0)) if length and length.isdigit() else None


def fetch_part(session: Session, product: Product, part: str, progress: Optional[Callable[[int, int], None]] = None,
               is_canceled=None) -> int:
    """Bring ``part`` to the whole archive, resuming with Range; returns the number of resumes.
    ``progress(done_bytes, total_bytes)`` after every chunk."""
    resumes = 0
    while True:
        offset = os.path.getsize(part) if os.path.exists(part) else 0
        if product.size and offset == product.size:
            return resumes
        if product.size and offset > product.size:
            os.remove(part)
            offset = 0
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            response = session.open(product.url, headers=headers, what=f"download of {product.id}")
        except HttpError as exc:
            if exc.status == 416 and offset:  # the part is not a prefix the server knows: start again
                os.remove(part)
                continue
            raise
        with response:
            if offset and response.status != 206:
                offset = 0  # the server ignored the Range: the whole archive comes again
            total = _content_total(response, offset) or product.size or 0
            if product.size and total and total != product.size:
                raise UserInputError(f"The server sends {total} bytes for {product.id}, the catalogue says "
                                     f"{product.size}; nothing was kept. Try again later.")
            check_free_space(os.path.dirname(os.path.dirname(part)), max(0, total - offset), False,
                             f"{product.id}.zip")
            done = offset
            try:
                with open(part, "ab" if offset else "wb") as handle:
                    while True:
                        check_canceled(is_canceled)
                        chunk = response.read(CHUNK)
                        if not chunk:
                            break
                        handle.write(chunk)
                        done += len(chunk)
                        if progress is not None:
                            progress(done, total)
                complete = not total or done >= total
            except (http.client.IncompleteRead, socket.timeout, TimeoutError, ConnectionError, OSError) as exc:
                if isinstance(exc, OSError) and getattr(exc, "errno", None) in (28, 122):  # ENOSPC, EDQUOT
                    raise
                complete = False
        if complete:
            return resumes
        resumes += 1
        if resumes > MAX_RESUMES:
            raise UserInputError(f"The download of {product.id} broke off {resumes} times ({done} of {total} bytes "
                                 "kept for the next run). Run again to resume it.")


def download_products(session: Session, products: Sequence[Product], folder: str,
                      progress: Optional[Callable[[float], None]] = None, is_canceled=None,
                      log: Optional[Callable[[str], None]] = None) -> DownloadReport:
    """Download every product into ``folder`` (see the module doc); ``progress`` in % over all products."""
    if not products:
        raise UserInputError("No product to download: select features of an s1inventory layer (or untick "
                             "'selected features only').")
    for product in products:
        product.validate()
    report = DownloadReport()
    partial_folder = os.path.join(folder, PARTIAL_FOLDER)
    try:
        for number, product in enumerate(products):
            check_canceled(is_canceled)
            _download_one(session, product, folder, report, number, len(products), progress, is_canceled, log)
    finally:
        with contextlib.suppress(OSError):
            os.rmdir(partial_folder)  # only when empty: parts of an interrupted run stay for the next
    return report


def _download_one(session: Session, product: Product, folder: str, report: DownloadReport, number: int, count: int,
                  progress, is_canceled, log) -> None:
    target = os.path.join(folder, f"{product.id}.zip")
    if os.path.isfile(target) and archive_problem(target, product) is None:
        report.skipped += 1
        report.paths.append(target)
        if log is not None:
            log(f"{product.id}.zip is already complete; skipped")
        return
    part = _part_path(folder, product)
    os.makedirs(os.path.dirname(part), exist_ok=True)
    before = os.path.getsize(part) if os.path.exists(part) else 0

    def step(done: int, total: int) -> None:
        if progress is not None and total:
            progress(100.0 * (number + min(1.0, done / total)) / count)

    report.resumes += fetch_part(session, product, part, step, is_canceled)
    report.bytes += os.path.getsize(part) - before
    _install(part, target, product)
    report.fetched += 1
    report.paths.append(target)
    if log is not None:
        log(f"Downloaded {product.id}.zip ({os.path.getsize(target) / 1e6:.1f} MB"
            + (f", {product.checksum.split(':')[0].upper()} verified)" if product.checksum else ")"))
    if progress is not None:
        progress(100.0 * (number + 1) / count)


def _install(part: str, target: str, product: Product) -> None:
    """Move the finished part into place through the shared writer (verified, then renamed)."""
    problem = archive_problem(part, product)
    if problem is not None:
        os.remove(part)
        raise UserInputError(f"The download of {product.id} is not a good archive ({problem}); it was not kept. "
                             "Run again to download it anew.")

    def verify(tmp: str) -> None:
        late = archive_problem(tmp, product) if product.size and os.path.getsize(tmp) != product.size else None
        if late is not None:
            raise UserInputError(f"{product.id}.zip changed while it was installed ({late}).")

    with atomic_file(target, verify=verify) as tmp:
        os.replace(part, tmp)
