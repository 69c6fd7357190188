"""What the clients raise: the server said no, or the live stream was closed on us."""

from __future__ import annotations


class ApiError(Exception):
    """An HTTP problem+json answer (or any non-success status)."""

    def __init__(self, status: int, detail: str, problem_type: str | None = None) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail
        self.problem_type = problem_type


class LiveClosed(Exception):
    """The server closed the WebSocket with a code that retrying will not fix (1008)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"closed by the server ({code}): {reason or 'no reason given'}")
        self.code = code
        self.reason = reason
