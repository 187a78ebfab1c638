"""Log lines a caller cannot forge: control characters in every logged message are escaped.

A request path, a header or an event's content reaches the log as it was
sent; a raw ``\\r\\n`` in it would start a new, fake log entry (a forged
timestamp and level included) and a raw NUL or escape sequence would garble
the file or a terminal. ``escape_log_messages`` installs, once per process, a
log record factory that escapes them in the formatted message of every record
of every logger (BentoML's access log, uvicorn's, the project's own), so no
call site has to remember. Tracebacks are formatted by the handler, not part
of the message, and keep their lines.
"""

from __future__ import annotations

import logging
from typing import Any

_CONTROL = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029]
"""C0 and C1 controls, DEL, and Unicode's line and paragraph separators (line breaks to some readers)."""
_ESCAPES = {code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" for code in _CONTROL}


def escape_control(text: str) -> str:
    """``text`` with every control character written as its escape (``\\x0d``, ``\\u2028``): one line."""
    return text.translate(_ESCAPES)


def escape_log_messages() -> bool:
    """Escape control characters in every log record's message from now on; False when already installed."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "escapes_control", False):
        return False

    def escaped_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a broken format: the handler reports it, as it would have
            return record
        escaped = escape_control(message)
        if escaped != message:
            record.msg, record.args = escaped, None
        return record

    escaped_record.escapes_control = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(escaped_record)
    return True
