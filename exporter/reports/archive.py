"""Unpacking a report file (gzip, zip or plain) without trusting its sizes.

A report is untrusted input from anyone who can send mail: a few kilobytes of gzip can
expand to gigabytes. So the input is refused by its own size first, then decompressed as a
stream that stops one byte past the limit (the limit is the smaller of the absolute cap and
`max_ratio` times the input size, never below RATIO_FLOOR_BYTES), and a zip member's
declared size is checked before a byte of it is read. Nothing here touches a file system:
zip member names are never used as paths.
"""

from __future__ import annotations

import enum
import io
import zipfile
import zlib
from dataclasses import dataclass

from .common import RejectReason, ReportRejected

# Small files compress badly: the ratio limit applies only to what exceeds this.
RATIO_FLOOR_BYTES = 1 << 20
_CHUNK = 64 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGIC = b"PK\x03\x04"


class Packing(enum.StrEnum):
    GZIP = "gzip"
    ZIP = "zip"
    PLAIN = "plain"


@dataclass(frozen=True)
class UnpackLimits:
    max_compressed_bytes: int       # the file as received
    max_decompressed_bytes: int     # what it unpacks to
    max_ratio: float                # decompressed / compressed

    def output_limit(self, input_size: int) -> int:
        return min(self.max_decompressed_bytes, max(RATIO_FLOOR_BYTES, int(self.max_ratio * input_size)))


def packing_of(data: bytes) -> Packing:
    """Told by the content's magic bytes, not by a file name or content type a sender chose."""
    if data.startswith(_GZIP_MAGIC):
        return Packing.GZIP
    if data.startswith(_ZIP_MAGIC):
        return Packing.ZIP
    return Packing.PLAIN


def unpack(data: bytes, limits: UnpackLimits) -> bytes:
    """The report file's content; ReportRejected (too_large, bad_archive) otherwise."""
    if len(data) > limits.max_compressed_bytes:
        raise ReportRejected(RejectReason.TOO_LARGE,
                             f"{len(data)} bytes, more than the limit of {limits.max_compressed_bytes}")
    packing = packing_of(data)
    if packing is Packing.GZIP:
        return gunzip(data, limits.output_limit(len(data)))
    if packing is Packing.ZIP:
        return unzip(data, limits.output_limit(len(data)))
    return data


def _too_large(limit: int) -> ReportRejected:
    return ReportRejected(RejectReason.TOO_LARGE, f"decompresses to more than {limit} bytes")


def gunzip(data: bytes, limit: int) -> bytes:
    """Every member of a gzip stream, decompressed up to `limit` bytes."""
    out = bytearray()
    pending = data
    try:
        while pending:
            decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            chunk = pending
            while chunk and not decompressor.eof:
                out += decompressor.decompress(chunk, limit + 1 - len(out))
                if len(out) > limit:
                    raise _too_large(limit)
                chunk = decompressor.unconsumed_tail
            if not decompressor.eof:
                raise ReportRejected(RejectReason.BAD_ARCHIVE, "gzip stream is truncated")
            pending = decompressor.unused_data
            if pending and not pending.startswith(_GZIP_MAGIC):
                raise ReportRejected(RejectReason.BAD_ARCHIVE, "bytes after the end of the gzip stream")
    except zlib.error as exc:
        raise ReportRejected(RejectReason.BAD_ARCHIVE, f"not valid gzip: {exc}") from None
    return bytes(out)


def unzip(data: bytes, limit: int) -> bytes:
    """The one file of a zip archive (reports carry exactly one), read up to `limit` bytes."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            files = [info for info in archive.infolist() if not info.is_dir()]
            if len(files) != 1:
                raise ReportRejected(RejectReason.BAD_ARCHIVE, f"zip holds {len(files)} files, not one")
            info = files[0]
            if info.file_size > limit:    # declared: refused before reading anything
                raise _too_large(limit)
            with archive.open(info) as member:
                out = bytearray()
                while chunk := member.read(min(_CHUNK, limit + 1 - len(out))):
                    out += chunk
                    if len(out) > limit:     # the declared size lied
                        raise _too_large(limit)
                return bytes(out)
    except ReportRejected:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError) as exc:
        # RuntimeError: an encrypted member; NotImplementedError: an unknown compression method
        raise ReportRejected(RejectReason.BAD_ARCHIVE, f"not a readable zip: {exc}") from None
