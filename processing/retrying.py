"""Backoff for transient failures: the database or storage briefly unavailable. Permanent
errors (an undecodable chunk, a missing object) are not retried: they fail the session."""

from __future__ import annotations

import logging

from sqlalchemy.exc import InterfaceError, OperationalError
from tenacity import (
    before_sleep_log,
    retry,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
)

from storage import StorageError

log = logging.getLogger(__name__)


def is_transient(exc: BaseException) -> bool:
    """Worth trying again later: a lost database connection or a transient storage error."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, StorageError) and exc.transient


database_retry = retry(
    retry=retry_if_exception(lambda e: isinstance(e, OperationalError | InterfaceError)),
    wait=wait_exponential(multiplier=0.5, max=15),
    stop=stop_after_delay(120),
    before_sleep=before_sleep_log(log, logging.WARNING),
    reraise=True,
)

storage_retry = retry(
    retry=retry_if_exception(lambda e: isinstance(e, StorageError) and e.transient),
    wait=wait_exponential(multiplier=0.5, max=10),
    stop=stop_after_attempt(5),
    before_sleep=before_sleep_log(log, logging.WARNING),
    reraise=True,
)
