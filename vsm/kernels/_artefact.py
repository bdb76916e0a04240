"""Pattern artefacts: a body behind GLIMMER's ``@pattern_meta@`` header, and a body format.

An artefact reads exactly like the top of the GLIMMER plan it comes from::

    @pattern_meta@
    GLIMMER Pattern:
    {
      "metadata": {
        "timestamp": "2025-06-17 11:17:51",
        "author": "isdood",
        "pattern_version": "1.0.0",
        "color": "#FF69B4"
      },
      "file_info": {
        "path": "./docs/plans/001-phase1-implementation.md",
        "type": "md",
        "hash": "5bc69cb4a4819130a98391a20017cc4d9586f052"
      }
    }
    @pattern_meta@
    <one blank line>
    <body>

Rules:
    1. Lines end in a line feed. The header opens with the marker line and the title line, holds
       one JSON object (written with ``indent=2`` and ASCII escapes; read as any JSON), and
       closes with the marker line, which must start within :data:`MAX_HEADER_BYTES`. One
       blank line separates it from the body.
    2. ``file_info.hash`` is the SHA-1 of the body bytes, lowercase hex. It is an integrity
       check against accidental damage, not a security measure: anyone can recompute it.
       (The seed plan's own hash verifies under this rule: its body is the original file.)
    3. The clock is never read here: the caller supplies the timestamp.
    4. A pattern body (:func:`pattern_body`) is UTF-8 JSON,
       ``{"format": "glimmer-pattern/1", "config": {...}, "vertices": [[x, y], ...]}``; floats
       are written with ``repr``, so vertices round-trip bit-exactly.

Errors, all from :class:`ArtefactError`, which is a :class:`~vsm.errors.VsmError` and a
:class:`ValueError`; each subclass carries a ``reason``::

    ArtefactError
    ├── ArtefactHeaderError    "header"    a marker, the title or the blank line is missing
    ├── ArtefactJSONError      "json"      the header's JSON does not parse
    ├── ArtefactMetadataError  "metadata"  a metadata field is missing, unknown or invalid
    ├── ArtefactHashError      "hash"      the body's SHA-1 is not the one the header claims
    └── ArtefactBodyError      "body"      a pattern body does not describe a pattern
"""

from __future__ import annotations

import datetime
import hashlib
import json
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from vsm.errors import MalformedDataError, VsmError
from vsm.kernels._patterns import Pattern

__all__ = [
    "BODY_FORMAT",
    "MARKER",
    "MAX_HEADER_BYTES",
    "TITLE",
    "ArtefactBodyError",
    "ArtefactError",
    "ArtefactHashError",
    "ArtefactHeaderError",
    "ArtefactJSONError",
    "ArtefactMetadataError",
    "PatternMeta",
    "pattern_body",
    "pattern_from_body",
    "read_artefact",
    "write_artefact",
]

MARKER = b"@pattern_meta@"
"""The line that opens and closes the header."""

TITLE = b"GLIMMER Pattern:"
"""The header's second line."""

MAX_HEADER_BYTES = 64 * 1024
"""The closing marker must start within this many bytes of the artefact's start."""

BODY_FORMAT = "glimmer-pattern/1"
"""The ``format`` tag of a pattern body."""

_SECTIONS = {
    "metadata": ("timestamp", "author", "pattern_version", "color"),
    "file_info": ("path", "type", "hash"),
}
_SECTION_OF = {field: section for section, fields in _SECTIONS.items() for field in fields}


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class ArtefactError(VsmError, ValueError):
    """An artefact cannot be written or read; ``reason`` says which kind of fault."""

    reason: ClassVar[Literal["header", "json", "metadata", "hash", "body"]]


class ArtefactHeaderError(ArtefactError):
    """The header's structure is wrong.

    Attributes:
        line: The 1-based line where the fault is.
        expected: What that line should be.
    """

    reason = "header"

    def __init__(self, line: int, expected: str, got: bytes) -> None:
        self.line = line
        self.expected = expected
        super().__init__(f"artefact header, line {line}: expected {expected}, got {_shown(got)}")


class ArtefactJSONError(ArtefactError):
    """The JSON between the markers does not parse."""

    reason = "json"


class ArtefactMetadataError(ArtefactError):
    """A metadata field is missing, unknown or invalid.

    Attributes:
        field: Its dotted path in the header, e.g. ``"metadata.color"``.
        value: The offending value.
    """

    reason = "metadata"

    def __init__(self, field: str, problem: str, value: object) -> None:
        self.field = field
        self.value = value
        super().__init__(f"artefact metadata field {field!r}: {problem} (got {_shown(value)})")


class ArtefactHashError(ArtefactError):
    """The body's SHA-1 differs from the header's claim.

    Attributes:
        meta: The header, which parsed and validated; ``meta.hash`` is the claim.
        expected: The hash the header claims.
        actual: The hash of the body as read.
    """

    reason = "hash"

    def __init__(self, meta: PatternMeta, actual: str) -> None:
        self.meta = meta
        self.expected = meta.hash
        self.actual = actual
        super().__init__(f"artefact body hash mismatch: header says {meta.hash}, body is {actual}")


class ArtefactBodyError(ArtefactError):
    """A pattern body does not describe a pattern."""

    reason = "body"


class PatternMeta(BaseModel):
    """The header's fields, flattened: ``metadata.*`` and ``file_info.*``."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    timestamp: str = Field(
        pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$",
        description="YYYY-MM-DD HH:MM:SS, supplied by the caller",
    )
    author: str = Field(min_length=1, max_length=256)
    pattern_version: str = Field(pattern=r"^[0-9]+\.[0-9]+\.[0-9]+(?:[-+][0-9A-Za-z.+-]+)?$")
    color: str = Field(pattern=r"^#[0-9A-Fa-f]{6}$", description="#RRGGBB")
    path: str = Field(min_length=1, max_length=4096)
    type: str = Field(min_length=1, max_length=64, description="the body's file type, e.g. md")
    hash: str = Field(pattern=r"^[0-9a-f]{40}$", description="SHA-1 of the body, lowercase hex")

    @field_validator("timestamp")
    @classmethod
    def _real_time(cls, value: str) -> str:
        datetime.datetime.strptime(value, "%Y-%m-%d %H:%M:%S")  # a label only: no zone
        return value

    def to_header(self) -> dict[str, dict[str, str]]:
        """The header's JSON object: ``{"metadata": {...}, "file_info": {...}}``."""
        fields = self.model_dump()
        return {name: {k: fields[k] for k in keys} for name, keys in _SECTIONS.items()}

    @classmethod
    def from_header(cls, header: object) -> PatternMeta:
        """Validate a header's JSON object.

        Raises:
            ArtefactMetadataError: a section or field is missing, unknown or invalid.
        """
        if not isinstance(header, dict):
            raise ArtefactMetadataError("<root>", "expected a JSON object", header)
        for section in header:
            if section not in _SECTIONS:
                raise ArtefactMetadataError(section, "unknown section", header[section])
        flat: dict[str, Any] = {}
        for section, keys in _SECTIONS.items():
            if section not in header:
                raise ArtefactMetadataError(section, "missing", header)
            part = header[section]
            if not isinstance(part, dict):
                raise ArtefactMetadataError(section, "expected a JSON object", part)
            for key in part:
                if key not in keys:
                    raise ArtefactMetadataError(f"{section}.{key}", "unknown field", part[key])
            for key in keys:
                if key not in part:
                    raise ArtefactMetadataError(f"{section}.{key}", "missing", part)
            flat.update(part)
        return _validated(flat)


def _validated(fields: dict[str, Any]) -> PatternMeta:
    try:
        return PatternMeta.model_validate(fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else "<root>"
        where = f"{_SECTION_OF[name]}.{name}" if name in _SECTION_OF else name
        raise ArtefactMetadataError(where, error["msg"], error["input"]) from exc


def _sha1(body: bytes) -> str:
    # Integrity against accidental damage, as GLIMMER defines it; not a security measure.
    return hashlib.sha1(body, usedforsecurity=False).hexdigest()


def write_artefact(
    body: bytes,
    *,
    timestamp: str,
    author: str,
    path: str,
    type: str,
    color: str = "#FF69B4",
    pattern_version: str = "1.0.0",
) -> bytes:
    """Put the ``@pattern_meta@`` header, with the body's SHA-1, in front of ``body``.

    Raises:
        ArtefactMetadataError: a field is invalid (its dotted name is in the message).
    """
    meta = _validated(
        {
            "timestamp": timestamp,
            "author": author,
            "pattern_version": pattern_version,
            "color": color,
            "path": path,
            "type": type,
            "hash": _sha1(body),
        }
    )
    header = json.dumps(meta.to_header(), indent=2).encode()
    return b"\n".join([MARKER, TITLE, header, MARKER, b"", body])


def read_artefact(data: bytes) -> tuple[PatternMeta, bytes]:
    """Split an artefact into its metadata and body, checking the structure and the hash.

    Raises:
        ArtefactHeaderError: a marker, the title or the blank line is missing.
        ArtefactJSONError: the header's JSON does not parse.
        ArtefactMetadataError: a field is missing, unknown or invalid.
        ArtefactHashError: the body's SHA-1 is not the one the header claims.
    """
    first, newline, rest = data.partition(b"\n")
    if first != MARKER or not newline:
        raise ArtefactHeaderError(1, f"the opening marker line {MARKER.decode()!r}", first[:80])
    second, newline, _ = rest.partition(b"\n")
    if second != TITLE or not newline:
        raise ArtefactHeaderError(2, f"the title line {TITLE.decode()!r}", second[:80])
    start = len(MARKER) + len(TITLE) + 2
    close = data.find(b"\n" + MARKER + b"\n", start - 1, MAX_HEADER_BYTES + len(MARKER) + 2)
    if close < 0:
        window = data[:MAX_HEADER_BYTES]
        raise ArtefactHeaderError(
            window.count(b"\n") + 1,
            f"a closing marker line {MARKER.decode()!r} within {MAX_HEADER_BYTES} bytes",
            window[-40:],
        )
    after = close + len(MARKER) + 2
    if data[after : after + 1] != b"\n":
        line = data.count(b"\n", 0, after) + 1
        raise ArtefactHeaderError(line, "a blank line after the closing marker", data[after:][:40])
    try:
        header = json.loads(data[start:close].decode(), object_pairs_hook=_unique)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ArtefactJSONError(f"artefact header JSON does not parse: {exc}") from exc
    meta = PatternMeta.from_header(header)
    body = data[after + 1 :]
    actual = _sha1(body)
    if actual != meta.hash:
        raise ArtefactHashError(meta, actual)
    return meta, body


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Refuse duplicate keys: a header that says two things about one field is ambiguous."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def pattern_body(pattern: Pattern) -> bytes:
    """Serialise a pattern as a body (rule 4), ending in a newline."""
    document = {"format": BODY_FORMAT, **pattern.to_params()}
    return json.dumps(document, allow_nan=False, separators=(",", ":")).encode() + b"\n"


def pattern_from_body(body: bytes) -> Pattern:
    """Rebuild the pattern :func:`pattern_body` wrote, bit-exactly.

    Raises:
        ArtefactBodyError: the body is not a pattern body; the message says why.
    """
    try:
        document = json.loads(body.decode(), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ArtefactBodyError(f"pattern body is not JSON: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != BODY_FORMAT:
        shown = _shown(document.get("format") if isinstance(document, dict) else document)
        raise ArtefactBodyError(f"pattern body must have format {BODY_FORMAT!r}, got {shown}")
    del document["format"]
    try:
        return Pattern.from_params(document)
    except MalformedDataError as exc:
        raise ArtefactBodyError(f"pattern body: {exc}") from exc


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a finite number")
