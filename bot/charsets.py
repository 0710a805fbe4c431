"""Which charset a fetched page is in (``Response.encoding``, used by ``Response.text``).

Pages lie about their charset as often as they omit it; this module owns the
order in which the evidence is believed (see ``detect_encoding``).
"""

from __future__ import annotations

import codecs
import re

__all__ = ["detect_encoding"]

_META = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_.:-]+)""", re.IGNORECASE | re.DOTALL
)
_SINGLE_BYTE = frozenset({"ascii", "latin-1", "iso8859-1", "cp1252"})


def _codec(name: str | None) -> str | None:
    """Python's name for charset ``name``, or None if there is no such codec."""
    if not name:
        return None
    try:
        found = codecs.lookup(name.strip().strip("\"'")).name
    except LookupError:
        return None
    # As browsers do (WHATWG): these labels mean windows-1252.
    return "cp1252" if found in _SINGLE_BYTE else found


def _decodes(data: bytes, codec: str) -> bool:
    """Whether ``data`` is valid in ``codec`` (a cut multibyte character at the end is)."""
    try:
        codecs.getincrementaldecoder(codec)("strict").decode(data, final=False)
    except (UnicodeDecodeError, LookupError):
        return False
    return True


def detect_encoding(content_type: str, body: bytes) -> str:
    """The charset to decode ``body`` with.

    In order: a byte-order mark, the Content-Type header's charset, an HTML
    ``<meta>`` charset, UTF-8, then charset_normalizer's guess. A declared charset
    the bytes are not valid in is passed over, and a page declared windows-1252
    (or latin-1, ascii) whose bytes are valid non-ASCII UTF-8 is read as UTF-8:
    servers that default their header to latin-1 serve UTF-8 pages every day.
    """
    for bom, codec in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                       (codecs.BOM_UTF16_BE, "utf-16")):  # fmt: skip
        if body.startswith(bom):
            return codec
    head = body[:65536]
    utf8 = _decodes(head, "utf-8")
    declared = re.search(r"charset\s*=\s*([^;\s]+)", content_type, re.IGNORECASE)
    meta = _META.search(head[:4096])
    for name in (declared[1] if declared else None, meta[1].decode() if meta else None):
        found = _codec(name)
        if found is None:
            continue
        codec = found
        if codec == "cp1252" and utf8 and not head.isascii():
            return "utf-8"
        if _decodes(head, codec):
            return codec
    if utf8:
        return "utf-8"
    from charset_normalizer import from_bytes

    best = from_bytes(head).best()
    return _codec(best.encoding if best else None) or "cp1252"
