# SPDX-License-Identifier: LGPL-2.1-or-later
"""The enums and flag sets of <tiermm.h> as IntEnum / IntFlag.

Member names are the C names without their prefix (TIERMM_CAP_MOVE_PAGES is
Cap.MOVE_PAGES). C_NAMES maps each class to the C enum it mirrors and the
prefix of its constants; tests/test_layout.py checks every value against
the compiled headers and that no C constant is missing here.
"""

import enum

__all__ = [
    "Cap", "CapState", "LogLevel", "Probe", "TopoFlag", "MemKind", "TierSource",
    "Metric", "MoveFlag", "AllocFlag", "Hint", "HintFlag", "RuntimeFlag",
    "RuntimeState", "PtLevel", "PtLevels", "PtSkip", "PtDumpFormat", "AbScanFlag",
    "NODE_AUTO", "RUNTIME_BACKOFF_MAX",
]

#: tiermm_pt_migrate(): each table to the node of the data it maps.
NODE_AUTO = -1

#: Runtime(backoff_max=...) takes at most this (TIERMM_RUNTIME_BACKOFF_MAX).
RUNTIME_BACKOFF_MAX = 1024


class Cap(enum.IntEnum):
    """A feature tiermm probes for (enum tiermm_cap)."""
    NUMA = 0
    MOVE_PAGES = 1
    MEMORY_TIERS = 2
    HMAT = 3
    MPOL_PREFERRED_MANY = 4
    WEIGHTED_INTERLEAVE = 5
    DAMON_VADDR = 6
    PERF_MEM_SAMPLING = 7
    MODULE = 8
    PT_REPLICATION = 9


class CapState(enum.IntEnum):
    """Outcome of a probe (enum tiermm_cap_state)."""
    ABSENT = 0
    PRESENT = 1
    UNKNOWN = 2


class LogLevel(enum.IntEnum):
    """enum tiermm_log_level."""
    ERROR = 0
    WARN = 1
    INFO = 2
    DEBUG = 3


class Probe(enum.IntFlag):
    """Measured micro-probes of Topology() (enum tiermm_probe)."""
    LATENCY = 1 << 0
    BANDWIDTH = 1 << 1
    CPUGROUPS = 1 << 2
    ALL = 7


class TopoFlag(enum.IntFlag):
    """enum tiermm_topo_flag."""
    CHECK_MACHINE = 1 << 0


class MemKind(enum.IntEnum):
    """Memory kind of a node (enum tiermm_mem_kind)."""
    UNKNOWN = 0
    DRAM = 1
    HBM = 2
    NVM = 3
    CXL = 4
    GPU = 5


class TierSource(enum.IntEnum):
    """Where a tier ranking came from (enum tiermm_tier_source)."""
    USER = 0
    KERNEL = 1
    HMAT = 2
    KIND = 3
    MEASURED = 4
    NONE = 5


class Metric(enum.IntEnum):
    """A per (initiator, target) metric (enum tiermm_metric)."""
    SLIT = 0
    FW_READ_LATENCY = 1
    FW_WRITE_LATENCY = 2
    FW_READ_BANDWIDTH = 3
    FW_WRITE_BANDWIDTH = 4
    LATENCY = 5
    READ_BANDWIDTH = 6
    WRITE_BANDWIDTH = 7


class MoveFlag(enum.IntFlag):
    """Flags of tiermm_move() (enum tiermm_move_flag)."""
    STRICT = 1 << 0
    SHARED = 1 << 1


class AllocFlag(enum.IntFlag):
    """Flags of tiermm_alloc_tier() (enum tiermm_alloc_flag)."""
    PREFERRED = 1 << 0
    POPULATE = 1 << 1


class Hint(enum.IntEnum):
    """What a range is, for the tiering engine (enum tiermm_hint)."""
    DEFAULT = 0
    HOT = 1
    COLD = 2
    PIN_FAST = 3
    PIN_SLOW = 4
    NO_MIGRATE = 5


class HintFlag(enum.IntFlag):
    """Flags of tiermm_hint() (enum tiermm_hint_flag)."""
    RECORD_ONLY = 1 << 0


class RuntimeFlag(enum.IntFlag):
    """enum tiermm_runtime_flag."""
    NO_RATE_LIMIT = 1 << 0
    NO_CPU_QUOTA = 1 << 1


class RuntimeState(enum.IntEnum):
    """enum tiermm_runtime_state."""
    RUNNING = 0
    EXITED = 1
    FAILED = 2


class PtLevel(enum.IntEnum):
    """A page-table level (enum tiermm_pt_level)."""
    PTE = 0
    PMD = 1
    PUD = 2
    PGD = 3


class PtLevels(enum.IntFlag):
    """Levels argument of pt_migrate() (TIERMM_PT_LEVELS_*)."""
    PTE = 1 << 0
    PMD = 1 << 1
    PUD = 1 << 2
    ALL = 7


class PtSkip(enum.IntEnum):
    """Why a page table was not moved (enum tiermm_pt_skip)."""
    ALREADY = 0
    NO_DATA = 1
    NOMEM = 2
    HUGE = 3
    BUSY = 4


class PtDumpFormat(enum.IntFlag):
    """Format of pt_dump() (enum tiermm_pt_dump_format)."""
    TEXT = 0
    JSON = 1 << 0
    ENTRIES = 1 << 1


class AbScanFlag(enum.IntFlag):
    """Flags of the accessed-bit scanner (enum tiermm_ab_scan_flag)."""
    FLUSH = 1 << 0
    COUNTS = 1 << 1


# class -> (C enum name or "#define", prefix of its C constants). For
# "#define" the constants are macros named prefix + member.
C_NAMES = {
    Cap: ("tiermm_cap", "TIERMM_CAP_"),
    CapState: ("tiermm_cap_state", "TIERMM_CAP_"),
    LogLevel: ("tiermm_log_level", "TIERMM_LOG_"),
    Probe: ("tiermm_probe", "TIERMM_PROBE_"),
    TopoFlag: ("tiermm_topo_flag", "TIERMM_TOPO_"),
    MemKind: ("tiermm_mem_kind", "TIERMM_KIND_"),
    TierSource: ("tiermm_tier_source", "TIERMM_TIERS_"),
    Metric: ("tiermm_metric", "TIERMM_METRIC_"),
    MoveFlag: ("tiermm_move_flag", "TIERMM_MOVE_"),
    AllocFlag: ("tiermm_alloc_flag", "TIERMM_ALLOC_"),
    Hint: ("tiermm_hint", "TIERMM_HINT_"),
    HintFlag: ("tiermm_hint_flag", "TIERMM_HINT_"),
    RuntimeFlag: ("tiermm_runtime_flag", "TIERMM_RUNTIME_"),
    RuntimeState: ("tiermm_runtime_state", "TIERMM_RUNTIME_"),
    PtLevel: ("tiermm_pt_level", "TIERMM_PT_LEVEL_"),
    PtLevels: ("#define", "TIERMM_PT_LEVELS_"),
    PtSkip: ("tiermm_pt_skip", "TIERMM_PT_SKIP_"),
    PtDumpFormat: ("tiermm_pt_dump_format", "TIERMM_PT_DUMP_"),
    AbScanFlag: ("tiermm_ab_scan_flag", "TIERMM_AB_SCAN_"),
}
# Plain module constants that mirror a C macro.
C_DEFINES = {"NODE_AUTO": "TIERMM_NODE_AUTO",
             "RUNTIME_BACKOFF_MAX": "TIERMM_RUNTIME_BACKOFF_MAX"}
