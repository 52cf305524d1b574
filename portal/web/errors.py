"""HTTP problems: raised anywhere in a handler, turned into a response at one boundary (app.py).

API callers get ``{"error": {"code": ..., "message": ...}}``; people get a page in plain English that
says what to do next. Messages never confirm that something the caller may not see exists.
"""

from __future__ import annotations


class HttpProblem(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    @classmethod
    def not_found(cls) -> HttpProblem:
        return cls(
            404,
            "not_found",
            "There is nothing here. Check the address or reference, or go back to your home page.",
        )

    @classmethod
    def bad_request(cls, code: str, message: str) -> HttpProblem:
        return cls(400, code, message)
