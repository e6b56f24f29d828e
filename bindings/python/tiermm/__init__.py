# SPDX-License-Identifier: LGPL-2.1-or-later
"""tiermm: memory and page-table placement on NUMA and tiered-memory machines.

A ctypes binding over libtiermm's public C API (Python 3.11+, standard
library only). What it covers, by C header:

caps.h     caps(), Caps, Cap, CapState, cap_name(), cap_help()
topo.h     Topology (nodes, tiers, distance(), best_target(), cpugroups(),
           probes, XML/JSON export), NodeInfo, TierInfo, MemKind, Metric
place.h    move(), move_range(), residency(), residency_range(), hint(),
           alloc_tier() -> TierMemory, MoveResult, Residency, Hint
runtime.h  Runtime (start/stop/stats/set_budget, a context manager), RuntimeStats
pt.h       pt_stat(), pt_dump(), pt_migrate(), AbScanner (need tiermm.ko)
common.h   version(), version_info, set_print(), TiermmError

Every failing call raises TiermmError, an OSError whose errno is the
library's error code and whose strerror is tiermm_errmsg(). Buffers are
anything exposing a writable buffer (mmap.mmap, bytearray, memoryview,
numpy arrays); read-only ones are refused with TypeError.

Page-table replication (pt_replicate, pt_replication) needs a kernel
built with tiermm's patch series; on any other kernel it raises
TiermmError with errno ENOTSUP. caps() reports whether the kernel has the
patches (Cap.PT_REPLICATION).

The library is found through TIERMM_LIBRARY, else the path CMake wrote
into tiermm/_config.py (build tree or install), else the soname
libtiermm.so.0.
"""

import threading as _threading

from . import _lib
from ._buffer import PAGE_SIZE, address_range
from ._enums import (NODE_AUTO, RUNTIME_BACKOFF_MAX, AbScanFlag, AllocFlag, Cap,
                     CapState, Hint, HintFlag, LogLevel, MemKind, Metric, MoveFlag, Probe,
                     PtDumpFormat, PtLevel, PtLevels, PtSkip, RuntimeFlag,
                     RuntimeState, TierSource, TopoFlag)
from ._errors import TiermmError
from .caps import CapInfo, Caps, CapsNode, cap_help, cap_name, caps
from .pagetables import (AbBatch, AbScanner, PtMigrateResult, PtNode, PtReplica,
                         PtStats, PtSummary, pt_dump, pt_level_name, pt_migrate,
                         pt_replicate, pt_replication, pt_skip_name, pt_stat)
from .placement import (MoveResult, Residency, TierMemory, alloc_tier, hint,
                        hint_name, move, move_range, residency, residency_range)
from .runtime import Runtime, RuntimeStats
from .topology import (CpuGroups, NodeInfo, TierInfo, Topology, default_topology,
                       mem_kind_name, metric_name, tier_source_name)

__all__ = [
    # errors, library
    "TiermmError", "version", "version_info", "library_path", "set_print", "errmsg",
    "strerror", "PAGE_SIZE", "address_range",
    # enums
    "AbScanFlag", "AllocFlag", "Cap", "CapState", "Hint", "HintFlag", "LogLevel",
    "MemKind", "Metric", "MoveFlag", "Probe", "PtDumpFormat", "PtLevel", "PtLevels",
    "PtSkip", "RuntimeFlag", "RuntimeState", "TierSource", "TopoFlag", "NODE_AUTO",
    "RUNTIME_BACKOFF_MAX",
    # caps
    "caps", "Caps", "CapInfo", "CapsNode", "cap_name", "cap_help",
    # topology
    "Topology", "NodeInfo", "TierInfo", "CpuGroups", "default_topology",
    "mem_kind_name", "metric_name", "tier_source_name",
    # placement
    "move", "move_range", "MoveResult", "residency", "residency_range", "Residency",
    "hint", "hint_name", "alloc_tier", "TierMemory",
    # runtime
    "Runtime", "RuntimeStats",
    # page tables
    "pt_stat", "PtStats", "PtNode", "PtSummary", "PtReplica", "pt_dump", "pt_migrate",
    "PtMigrateResult", "AbScanner", "AbBatch", "pt_level_name", "pt_skip_name",
    "pt_replicate", "pt_replication",
]

#: Path or soname the library was loaded from.
library_path = _lib.path


def version():
    """The library's version string, e.g. "0.2.0" (tiermm_version_string)."""
    return _lib.cstr(_lib.lib.tiermm_version_string())


def _version_info():
    v = _lib.lib.tiermm_version()
    return (v >> 16) & 0xFF, (v >> 8) & 0xFF, v & 0xFF


#: (major, minor, patch) of the loaded library (tiermm_version).
version_info = _version_info()
__version__ = version()

errmsg = _lib.errmsg
strerror = _lib.strerror

_print_lock = _threading.Lock()
_print_cb = None  # the ctypes callback must outlive its installation


def set_print(callback, max_level=LogLevel.WARN):
    """Receive the library's messages: callback(level, message) for every
    message at or below max_level (a LogLevel), from whatever thread logs.
    set_print(None) restores the default (stderr when TIERMM_LOG is set,
    nothing otherwise). Exceptions raised by callback are printed and
    ignored (ctypes cannot propagate them into C)."""
    global _print_cb
    if callback is None:
        with _print_lock:
            _lib.lib.tiermm_set_print(_lib.S.tiermm_print_fn(), int(LogLevel(max_level)), None)
            _print_cb = None
        return
    if not callable(callback):
        raise TypeError("tiermm: set_print needs a callable or None")

    def _cb(level, msg, ctx):
        try:
            level = LogLevel(level)
        except ValueError:
            pass
        callback(level, _lib.cstr(msg))
    cb = _lib.S.tiermm_print_fn(_cb)
    with _print_lock:
        _lib.lib.tiermm_set_print(cb, int(LogLevel(max_level)), None)
        _print_cb = cb
