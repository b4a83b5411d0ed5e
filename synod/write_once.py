"""The essay's ``WriteOnce`` interface and its local, thread-safe reference implementation."""

from __future__ import annotations

import threading
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")


class WriteOnce(Protocol[T]):
    """A write-once variable: the first ``try_initialize`` wins, everyone reads that value."""

    def try_initialize(self, value: T) -> None:
        """Try to initialize to ``value``; a no-op if the variable is already initialized."""
        ...

    def final_value(self, timeout: float | None = None) -> T:
        """Return the value once initialized, waiting up to ``timeout`` (None: for ever)."""
        ...


class LocalWriteOnce(Generic[T]):
    """The essay's ``MultithreadedWriteOnce``: a lock around the single-threaded version.

    Agreement, validity and termination hold trivially; there is nothing to
    fault-tolerate, because there is only one machine.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._initialized = threading.Event()
        self._value: T | None = None

    def try_initialize(self, value: T) -> None:
        """Install ``value`` if nobody has yet; otherwise do nothing."""
        with self._lock:
            if not self._initialized.is_set():
                self._value = value
                self._initialized.set()

    def final_value(self, timeout: float | None = None) -> T:
        """Block until initialized (at most ``timeout`` seconds) and return the value; TimeoutError if not."""
        if not self._initialized.wait(timeout):
            raise TimeoutError("the write-once variable was not initialized in time")
        return self._value  # type: ignore[return-value]

    @property
    def is_initialized(self) -> bool:
        """True once some ``try_initialize`` call won."""
        return self._initialized.is_set()
