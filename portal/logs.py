"""What the server log may hold: no query strings, no one-time links, nothing personal.

uvicorn's access log writes the whole request target. Ours can carry secrets (the enrolment link's
token, a CSRF token in a form's action) and personal data (an e-mail address typed into the DPO's
audit search). The access log keeps the method, the path with those parts masked, and the status.
"""

from __future__ import annotations

import logging
import re

_SECRET_PATHS = re.compile(r"^(/enrol/)[^/?]+")


def redact_target(target: str) -> str:
    path = target.split("?", 1)[0]
    path = _SECRET_PATHS.sub(r"\1…", path)
    return path + ("?…" if "?" in target else "")


class RedactAccessLog(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        # uvicorn.access: (client address, method, request target, HTTP version, status code)
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], redact_target(args[2]), args[3], args[4])
        return True


def install_access_log_redaction() -> None:
    logging.getLogger("uvicorn.access").addFilter(RedactAccessLog())
