# SPDX-License-Identifier: LGPL-2.1-or-later
"""The tiering runtime: the engine in a background thread of this process
(tiermm_runtime_start(3)).

>>> import tiermm
>>> with tiermm.Runtime(backend="scan", budget_share=0.2) as rt:
...     work()
...     print(rt.stats().promoted_bytes)
"""

import ctypes
import dataclasses
import math
import threading

from . import _lib
from . import _structs as S
from ._enums import RuntimeFlag, RuntimeState
from ._errors import TiermmError

__all__ = ["Runtime", "RuntimeStats"]


@dataclasses.dataclass(frozen=True)
class RuntimeStats:
    """A consistent copy of the runtime's counters (struct tiermm_runtime_stats).

    Field meanings are those of tiermm_runtime_stats(3); fast_access_share
    is NaN until the backend observed a pass (and always with perf/damon).
    """
    state: RuntimeState
    error: int              # FAILED: the negative errno
    pid: int
    fast_tier: int
    slow_tier: int
    backend: str
    backend_why: str
    error_msg: str
    epochs: int
    promoted_pages: int
    promoted_bytes: int
    demoted_pages: int
    demoted_bytes: int
    moved_bytes: int
    failed_pages: int
    failed_busy: int
    failed_nomem: int
    failed_fault: int
    failed_other: int
    hot_set_bytes: int
    budget_bytes: int
    fast_bytes: int
    resident_bytes: int
    hinted_bytes: int
    samples: int
    samples_lost: int
    samples_missed: int
    ranges: int
    splits: int
    merges: int
    rate_limited: int
    quota_limited: int
    cpu_sampling_s: float
    cpu_classify_s: float
    cpu_migrate_s: float
    wall_s: float
    fast_access_share: float
    backoff: int            # 1: full pace; N: epochs N times longer (settled)
    backoff_epochs: int
    scan_window_ms: float   # the scan backend's window now; NaN with other backends

    @classmethod
    def _from(cls, s):
        vals = {}
        for f in dataclasses.fields(cls):
            v = getattr(s, f.name)
            if isinstance(v, bytes):
                v = v.decode("utf-8", "replace")
            vals[f.name] = v
        try:
            vals["state"] = RuntimeState(vals["state"])
        except ValueError:
            pass
        return cls(**vals)

    @property
    def running(self):
        return self.state is RuntimeState.RUNNING

    @property
    def cpu_s(self):
        """CPU seconds of all stages together."""
        return self.cpu_sampling_s + self.cpu_classify_s + self.cpu_migrate_s


class Runtime:
    """The tiering engine managing a process's memory (struct tiermm_runtime *).

    Runtime(backend=None, *, pid=0, budget_bytes=0, budget_share=0.0,
            epoch_ms=0, rate_limit_mib_s=0.0, cpu_quota=0.0, fast_tier=0,
            slow_tier=0, topology=None, no_rate_limit=False,
            no_cpu_quota=False, backoff_max=0)

    The arguments are the fields of struct tiermm_runtime_opts (0 means the
    library's default: see tiermm_runtime_start(3)); backend is "auto"
    (None), "perf", "scan" or "damon"; pid 0 is this process. Nothing starts
    until start() or the ``with`` block; stop() (or leaving the block) stops
    it, leaving memory where it is. A Runtime given a Topology keeps it in
    use, and that Topology cannot be closed while the runtime runs.

    start() raises TiermmError when the runtime cannot run, e.g. ENOTSUP
    when the machine has one memory tier or no usable hotness backend (the
    message lists what each backend lacks).
    """

    def __init__(self, backend=None, *, pid=0, budget_bytes=0, budget_share=0.0,
                 epoch_ms=0, rate_limit_mib_s=0.0, cpu_quota=0.0, fast_tier=0,
                 slow_tier=0, topology=None, no_rate_limit=False, no_cpu_quota=False,
                 backoff_max=0):
        self._h = None
        self._lock = threading.Lock()
        self._topology = topology
        self._backend = _lib.encode(backend, "backend")
        flags = ((RuntimeFlag.NO_RATE_LIMIT if no_rate_limit else 0) |
                 (RuntimeFlag.NO_CPU_QUOTA if no_cpu_quota else 0))
        self._opts = S.new(S.tiermm_runtime_opts, pid=int(pid), backend=self._backend,
                           budget_bytes=int(budget_bytes), budget_share=float(budget_share),
                           epoch_ms=int(epoch_ms), rate_limit_mib_s=float(rate_limit_mib_s),
                           cpu_quota=float(cpu_quota), fast_tier=int(fast_tier),
                           slow_tier=int(slow_tier), flags=int(flags),
                           backoff_max=int(backoff_max))

    @property
    def running(self):
        """True between a successful start() and stop() (the engine may have
        stopped on its own meanwhile: see stats().state)."""
        return self._h is not None

    def start(self):
        """Start managing memory (tiermm_runtime_start). Returns self."""
        with self._lock:
            if self._h is not None:
                raise RuntimeError("tiermm: the Runtime is already started")
            topo = self._topology
            if topo is not None:
                self._opts.topo = topo._use()
            h = ctypes.c_void_p()
            try:
                _lib.lib.tiermm_runtime_start(ctypes.byref(self._opts), ctypes.byref(h))
            except BaseException:
                if topo is not None:
                    topo._unuse()
                raise
            self._h = h.value
        return self

    def stop(self):
        """Stop and free the engine (tiermm_runtime_stop); memory stays where
        it is. A no-op when not running."""
        with self._lock:
            h, self._h = self._h, None
            if h is None:
                return
            try:
                _lib.lib.tiermm_runtime_stop(h)
            finally:
                if self._topology is not None:
                    self._topology._unuse()

    def _handle(self):
        h = self._h
        if h is None:
            raise ValueError("tiermm: the Runtime is not running (call start())")
        return h

    def stats(self):
        """RuntimeStats: a consistent copy of the counters; never waits for
        the engine."""
        s = S.new(S.tiermm_runtime_stats)
        _lib.lib.tiermm_runtime_stats(self._handle(), ctypes.byref(s))
        return RuntimeStats._from(s)

    def set_budget(self, nbytes=None, *, share=None):
        """New fast-tier budget from the next epoch on: nbytes bytes, or a
        share (0, 1] of the managed process's resident memory."""
        if (nbytes is None) == (share is None):
            raise TypeError("tiermm: give exactly one of nbytes and share=")
        h = self._handle()
        if share is not None:
            share = float(share)
            if math.isnan(share):
                raise ValueError("tiermm: budget share is NaN")
            _lib.lib.tiermm_runtime_set_budget_share(h, share)
        else:
            nbytes = int(nbytes)
            if nbytes < 0:
                raise ValueError("tiermm: budget must be >= 0 bytes")
            _lib.lib.tiermm_runtime_set_budget(h, nbytes)

    def __enter__(self):
        if self._h is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def __del__(self):
        try:
            self.stop()
        except Exception:  # interpreter shutdown
            pass

    def __repr__(self):
        if self._h is None:
            return "<tiermm.Runtime stopped>"
        try:
            s = self.stats()
            return "<tiermm.Runtime %s backend=%s pid=%d epochs=%d>" % (
                s.state.name.lower() if isinstance(s.state, RuntimeState) else s.state,
                s.backend, s.pid, s.epochs)
        except TiermmError:
            return "<tiermm.Runtime>"
