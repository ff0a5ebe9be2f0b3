"""One way to retry: capped exponential backoff with jitter, a stop event, a log line and
a report for each retry. Every reconnect or retry loop of the long-running components
(the AMQP bridge's reconnects and appends, the bus's publishes, the projection's
follower) goes through :class:`RetryPolicy`, which drives tenacity.

- The n-th retry waits ``min(cap, initial * multiplier ** (n - 1))``, times a random
  factor in ``[1 - jitter, 1]``: never longer than ``cap``, never a busy loop
  (``initial > 0``).
- The wait ends at once when the policy's ``stop`` event is set: the call raises
  :class:`RetryStopped` (a clean SIGTERM during a backoff). A component that must keep
  serving something while it waits (the bridge serves its AMQP connection) passes its
  own ``sleep``.
- Each retry calls ``on_retry`` with a :class:`RetryEvent` (the metrics count them:
  :class:`eventmodel.metrics.RetryMetrics`) and is logged (at ``log_level``, WARNING by
  default): the first three of a run, then at most one line per ``log_interval``
  seconds, so a long outage does not flood the log.
- ``give_up_on`` errors are never retried (a configuration the server refuses);
  ``stop_after`` gives up after that many seconds and raises the last error.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import attrs
import tenacity

from eventmodel.errors import Error

T = TypeVar("T")

_log = logging.getLogger(__name__)

__all__ = ["RetryEvent", "RetryPolicy", "RetryStopped", "both_hooks"]


class RetryStopped(Error):
    """The stop event was set while a call was being retried."""

    def __init__(self, component: str, last_error: BaseException | None) -> None:
        super().__init__(f"{component}: stopped while retrying" + (f" ({last_error})" if last_error else ""))
        self.component = component
        self.last_error = last_error


@attrs.frozen(slots=True)
class RetryEvent:
    """One retry about to happen: what failed, the how-many-th retry, the wait before it."""

    component: str
    attempt: int  # 1 for the first retry of a call
    delay: float  # seconds until the next attempt
    error: BaseException
    elapsed: float  # seconds since the call's first attempt


def both_hooks(
    first: Callable[[RetryEvent], None] | None, second: Callable[[RetryEvent], None] | None,
) -> Callable[[RetryEvent], None] | None:
    """One ``on_retry`` hook calling ``first`` then ``second`` (either may be None)."""
    if first is None or second is None:
        return first if second is None else second

    def both(event: RetryEvent) -> None:
        first(event)
        second(event)

    return both


def _positive(_self: object, attribute: attrs.Attribute, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be positive, not {value!r}")


@attrs.frozen
class RetryPolicy:
    """How a component retries. Immutable: :meth:`evolve` makes a variant."""

    #: who retries, for logs and the ``component`` label of the metrics (e.g. ``bridge.connect``)
    component: str
    #: the first wait (seconds)
    initial: float = attrs.field(default=0.5, validator=_positive)
    #: no wait is longer than this (seconds)
    cap: float = attrs.field(default=10.0, validator=_positive)
    #: each retry waits this many times longer than the one before (up to ``cap``)
    multiplier: float = attrs.field(default=2.0, validator=attrs.validators.ge(1.0))
    #: the wait is scaled by a random factor in [1 - jitter, 1]
    jitter: float = attrs.field(default=0.2, validator=[attrs.validators.ge(0.0), attrs.validators.lt(1.0)])
    #: give up (raising the last error) once this many seconds passed; None: never
    stop_after: float | None = None
    #: set it to end a wait at once (the call raises RetryStopped)
    stop: threading.Event | None = attrs.field(default=None, eq=False)
    #: called once per retry, before the wait
    on_retry: Callable[[RetryEvent], None] | None = attrs.field(default=None, eq=False)
    #: errors that are not retried (raised as they are)
    give_up_on: tuple[type[BaseException], ...] = ()
    #: after the first three retries of a call, at most one log line per this many seconds
    log_interval: float = 60.0
    logger: logging.Logger = attrs.field(default=_log, eq=False)
    #: the level of the retry log lines
    log_level: int = logging.WARNING
    #: the clock for log throttling and ``RetryEvent.elapsed`` (a fake one in tests;
    #: ``stop_after`` is measured by tenacity on the real monotonic clock)
    clock: Callable[[], float] = attrs.field(default=time.monotonic, eq=False)
    #: the random factor's source (a seeded Random in tests; None: the random module's)
    rng: random.Random | None = attrs.field(default=None, eq=False)

    def __attrs_post_init__(self) -> None:
        if self.cap < self.initial:
            raise ValueError(f"cap ({self.cap}) must not be below initial ({self.initial})")

    def evolve(self, **changes: object) -> RetryPolicy:
        return attrs.evolve(self, **changes)

    def also_on_retry(self, hook: Callable[[RetryEvent], None] | None) -> RetryPolicy:
        """The same policy, calling ``hook`` after its own ``on_retry``."""
        return self if hook is None else self.evolve(on_retry=both_hooks(self.on_retry, hook))

    # -- the schedule ------------------------------------------------------
    def delay(self, attempt: int) -> float:
        """The wait before retry number ``attempt`` (1-based), jitter applied."""
        exponent = max(attempt - 1, 0)
        if exponent * math.log(self.multiplier) >= math.log(self.cap / self.initial):
            base = self.cap  # grown past the cap (and no float overflow for huge attempts)
        else:
            base = self.initial * self.multiplier**exponent
        uniform = self.rng.uniform if self.rng is not None else random.uniform
        return base * uniform(1.0 - self.jitter, 1.0)

    # -- waiting -----------------------------------------------------------
    def wait(self, seconds: float) -> bool:
        """Wait ``seconds`` or until stopped; True when stopped."""
        if self.stop is None:
            time.sleep(max(seconds, 0.0))
            return False
        return self.stop.wait(max(seconds, 0.0))

    @property
    def stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    # -- calling -----------------------------------------------------------
    def call(
        self,
        fn: Callable[[], T],
        *,
        what: str = "",
        first_error: BaseException | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> T:
        """``fn()`` until it returns, retrying on any ``Exception`` not in ``give_up_on``.

        ``first_error``: ``fn`` already failed once with it (a lost connection): report it
        and wait as for a first retry before calling. ``sleep(seconds)`` replaces the
        stop-aware wait (it may raise to end the retries). Raises :class:`RetryStopped`
        when stopped during a wait, the last error after ``stop_after`` seconds.
        """
        started, clock_started = time.monotonic(), self.clock()
        if first_error is None:
            # the first attempt runs without tenacity: a call that succeeds (the common
            # case, once per batch in the bridge) costs one function call
            try:
                return fn()
            except Exception as exc:  # noqa: BLE001 - classified just below
                if not self._retryable(exc):
                    raise
                first_error = exc
        elif not self._retryable(first_error):
            raise first_error
        known: list[BaseException] = [first_error]

        def attempt() -> T:  # tenacity's first attempt is the failure already seen
            if known:
                raise known.pop()
            return fn()

        run = _Run(self, what or self.component, clock_started)
        stop_after = self.stop_after
        retrying = tenacity.Retrying(
            sleep=lambda seconds: run.sleep(sleep, seconds, run.last_error),
            stop=(tenacity.stop_never if stop_after is None
                  else lambda _state: time.monotonic() - started >= stop_after),
            wait=lambda state: self.delay(state.attempt_number),
            retry=tenacity.retry_if_exception(self._retryable),
            before_sleep=run.before_sleep,
            reraise=True,
        )
        return retrying(attempt)

    def _retryable(self, exc: BaseException) -> bool:
        return isinstance(exc, Exception) and not isinstance(exc, (RetryStopped, *self.give_up_on))


class _Run:
    """The state of one :meth:`RetryPolicy.call`: log throttling, the last error."""

    def __init__(self, policy: RetryPolicy, what: str, started: float) -> None:
        self.policy = policy
        self.what = what
        self.started = started
        self.last_logged = float("-inf")
        self.last_error: BaseException | None = None

    def before_sleep(self, state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        if error is not None:
            self.report(state.attempt_number, delay, error)

    def report(self, attempt: int, delay: float, error: BaseException) -> None:
        policy = self.policy
        self.last_error = error
        now = policy.clock()
        if attempt <= 3 or now - self.last_logged >= policy.log_interval:
            self.last_logged = now
            policy.logger.log(
                policy.log_level, "%s failed (%s: %s); retry %d in %.2fs", self.what, type(error).__name__, error, attempt, delay,
            )
        if policy.on_retry is not None:
            try:
                policy.on_retry(RetryEvent(policy.component, attempt, delay, error, now - self.started))
            except Exception:  # noqa: BLE001 - a reporting bug must not stop the retries
                policy.logger.exception("retry hook of %s failed", policy.component)

    def sleep(self, custom: Callable[[float], None] | None, seconds: float, error: BaseException | None) -> None:
        if custom is not None:
            custom(seconds)
        elif self.policy.wait(seconds):
            raise RetryStopped(self.policy.component, error)

