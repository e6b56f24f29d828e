# SPDX-License-Identifier: LGPL-2.1-or-later
"""Page tables: statistics, dumps, migration (vMitosis-style) and the
accessed-bit scanner. Every call needs tiermm.ko (API version 2); without
it they raise TiermmError with errno ENODEV and a message saying how to
load it.

Ranges are (start, length) of the target's address space, multiples of
4096; start=0, length=0 means the whole process. pid 0 is this process.
For a buffer of this process, address_range(buf) gives its page range.

Page-table *replication* (issue 7) needs a kernel built with tiermm's
patch series, not the module: pt_replicate(nodes, pid) and
pt_replication(pid) raise TiermmError with errno ENOTSUP on any other
kernel (caps().state(Cap.PT_REPLICATION) tells beforehand). pt_stat()
lists the replicas (PtStats.replicas: where each one's tables are).
"""

import ctypes
import dataclasses

from . import _lib
from . import _structs as S
from ._enums import NODE_AUTO, AbScanFlag, PtDumpFormat, PtLevel, PtLevels, PtSkip

__all__ = ["pt_stat", "PtStats", "PtNode", "PtSummary", "PtReplica", "pt_dump", "pt_migrate",
           "PtMigrateResult", "AbScanner", "AbBatch", "pt_level_name", "pt_skip_name",
           "pt_replicate", "pt_replication"]


def pt_level_name(level):
    """"pte", "pmd", "pud", "pgd"."""
    return _lib.name_of(_lib.lib.tiermm_pt_level_name, level, "a page-table level")


def pt_skip_name(reason):
    """"already", "no-data", "nomem", "huge", "busy"."""
    return _lib.name_of(_lib.lib.tiermm_pt_skip_name, reason, "a skip reason")


def _per_level(arr):
    """uint64_t[TIERMM_PT_LEVEL__COUNT] -> {PtLevel: n}."""
    return {PtLevel(i): arr[i] for i in range(len(arr))}


@dataclasses.dataclass(frozen=True)
class PtNode:
    """One node's share of the range (struct tiermm_pt_node)."""
    node: int
    online: bool
    tables: dict        # {PtLevel: page-table pages on this node}
    leaf_entries: int
    data_pages: int     # 4 KiB units
    leaf_local: float   # the vMitosis metric, 0..1
    data_share: float   # 0..1


@dataclasses.dataclass(frozen=True)
class PtSummary:
    """Totals of the range (struct tiermm_pt_summary)."""
    pid: int
    whole: bool
    start: int
    length: int
    tables: dict            # {PtLevel: n}, all nodes
    tables_local: dict
    tables_remote: dict
    tables_empty: dict
    leaf_huge: dict         # {PtLevel.PMD: 2 MiB leaves, PtLevel.PUD: 1 GiB leaves}
    leaf_entries: int
    data_pages: int
    data_node: int          # -1: none
    leaf_node: int          # -1: none
    replicas: int = 0       # replicas of the page tables; -1: tiermm.ko cannot see them
    replica_groups: bool = False  # the kernel replicates per CPU group, not per node
    replica_remote: int = 0  # replica tables not local


@dataclasses.dataclass(frozen=True)
class PtReplica:
    """One replica of the page tables (struct tiermm_pt_replica)."""
    slot: int           # its node, or with group its CPU group
    group: bool
    tables: dict        # {PtLevel: page-table pages of its tree}
    local: dict         # {PtLevel: of those, on its node (a group: its CPUs' nodes)}


@dataclasses.dataclass(frozen=True)
class PtStats:
    """tiermm_pt_stat(): per node (every node slot), totals, replicas."""
    nodes: list         # PtNode for node 0 .. nr_nodes - 1
    summary: PtSummary
    replicas: list = dataclasses.field(default_factory=list)  # PtReplica, by slot

    def node(self, n):
        return self.nodes[n]


def pt_stat(pid=0, start=0, length=0):
    """Count the page-table pages mapping the range, per node and level."""
    h = ctypes.c_void_p()
    _lib.lib.tiermm_pt_stat(int(pid), int(start), int(length), 0, ctypes.byref(h))
    try:
        nodes = []
        for i in range(_lib.lib.tiermm_pt_stat_nr_nodes(h)):
            n = S.new(S.tiermm_pt_node)
            _lib.lib.tiermm_pt_stat_node(h, i, ctypes.byref(n))
            nodes.append(PtNode(n.node, bool(n.online), _per_level(n.tables),
                                n.leaf_entries, n.data_pages, n.leaf_local, n.data_share))
        s = S.new(S.tiermm_pt_summary)
        _lib.lib.tiermm_pt_stat_summary(h, ctypes.byref(s))
        summary = PtSummary(s.pid, bool(s.whole), s.start, s.len, _per_level(s.tables),
                            _per_level(s.tables_local), _per_level(s.tables_remote),
                            _per_level(s.tables_empty), _per_level(s.leaf_huge),
                            s.leaf_entries, s.data_pages, s.data_node, s.leaf_node,
                            s.replicas, bool(s.replica_groups), s.replica_remote)
        replicas = []
        for i in range(max(0, s.replicas)):
            r = S.new(S.tiermm_pt_replica)
            _lib.lib.tiermm_pt_stat_replica(h, i, ctypes.byref(r))
            replicas.append(PtReplica(r.slot, bool(r.group), _per_level(r.tables),
                                      _per_level(r.local)))
    finally:
        _lib.lib.tiermm_pt_stat_free(h)
    return PtStats(nodes, summary, replicas)


_LONG_BITS = 8 * ctypes.sizeof(ctypes.c_ulong)


def pt_replicate(nodes, pid=0):
    """Replicate the page tables of pid (0: this process) on nodes, an
    iterable of node numbers; None or an empty one ends replication. The
    set is inherited by fork and kept across exec. Needs tiermm's kernel
    patches (else TiermmError ENOTSUP); another pid needs the right to
    ptrace-attach to it."""
    nodes = sorted({int(n) for n in nodes}) if nodes is not None else []
    if nodes and nodes[0] < 0:
        raise ValueError("node numbers are 0 or more, got %d" % nodes[0])
    maxnode = nodes[-1] + 1 if nodes else 0
    words = (ctypes.c_ulong * max(1, -(-maxnode // _LONG_BITS)))()
    for n in nodes:
        words[n // _LONG_BITS] |= 1 << (n % _LONG_BITS)
    _lib.lib.tiermm_pt_replicate(int(pid), words, maxnode, 0)


def pt_replication(pid=0):
    """The nodes holding a replica of pid's page tables now, as a frozenset
    (empty: not replicated)."""
    maxnode = 1024
    words = (ctypes.c_ulong * (maxnode // _LONG_BITS))()
    _lib.lib.tiermm_pt_replication(int(pid), words, maxnode)
    return frozenset(n for n in range(maxnode)
                     if words[n // _LONG_BITS] >> (n % _LONG_BITS) & 1)


def pt_dump(pid=0, start=0, length=0, *, json=False, entries=False):
    """Every page-table page mapping the range, as text (or one JSON object
    with json=True); entries=True adds the raw non-zero entries."""
    fmt = (PtDumpFormat.JSON if json else 0) | (PtDumpFormat.ENTRIES if entries else 0)
    return _lib.capture_file(
        lambda f: _lib.lib.tiermm_pt_dump(int(pid), int(start), int(length), f, int(fmt)))


@dataclasses.dataclass(frozen=True)
class PtMigrateResult:
    """What pt_migrate() did (struct tiermm_pt_migrate_result)."""
    tables_moved: int   # the call's return value
    moved: dict         # {PtLevel: tables moved}
    skipped: dict       # {PtSkip (or int for reserved slots): tables not moved}, non-zero only
    start: int
    length: int


def pt_migrate(node, pid=0, start=0, length=0, levels=PtLevels.ALL):
    """Move the page-table pages of the given levels mapping the range to
    node, or with node="auto" (NODE_AUTO) each to the node holding most of
    what it maps. The PGD never moves. Returns a PtMigrateResult."""
    if isinstance(node, str):
        if node != "auto":
            raise ValueError("tiermm: node must be a node number or 'auto', not %r" % node)
        node = NODE_AUTO
    node = int(getattr(node, "os_index", node))
    r = S.new(S.tiermm_pt_migrate_result)
    n = _lib.lib.tiermm_pt_migrate(int(pid), int(start), int(length), node,
                                   int(PtLevels(levels)), ctypes.byref(r))
    skipped = {}
    for i in range(len(r.skipped)):
        if r.skipped[i]:
            try:
                skipped[PtSkip(i)] = r.skipped[i]
            except ValueError:
                skipped[i] = r.skipped[i]
    return PtMigrateResult(n, _per_level(r.moved), skipped, r.start, r.len)


@dataclasses.dataclass(frozen=True)
class AbBatch:
    """One batch of the accessed-bit scanner (struct tiermm_ab_batch), copied.

    Without counts: bitmap holds the C bitmap's 64-bit words in native byte
    order, bit i = (addr - base) // 4096 (bit i % 64 of word i // 64) set
    for each page found accessed; with counts: counts[j] is the
    number of accessed 4 KiB pages in the j-th 2 MiB region from base. Only
    [start, end) is meaningful.
    """
    base: int
    start: int
    end: int
    scanned: int
    accessed: int
    nr: int
    bitmap: bytes       # None with counts
    counts: list        # None without counts

    def accessed_pages(self):
        """Addresses of the pages found accessed in [start, end) (bitmap mode)."""
        if self.bitmap is None:
            raise ValueError("tiermm: a counts batch has no per-page bitmap")
        out = []
        first = (self.start - self.base) // 4096
        last = (self.end - self.base) // 4096
        words = memoryview(self.bitmap).cast("Q")
        for i in range(first, min(last, self.nr)):
            if words[i >> 6] >> (i & 63) & 1:
                out.append(self.base + i * 4096)
        return out


class AbScanner(_lib.Closing):
    """Accessed-bit scanner over a range (tiermm_ab_scan_open).

    next() tests and clears the accessed bits of the next part of the range
    and returns an AbBatch, or None when the pass is complete (the next call
    starts a new pass). Iterating gives the batches of one pass.
    flush=True flushes TLBs after clearing; counts=True gives per-2 MiB
    counts (start 2 MiB aligned); max_pages caps a batch (0: the module's).
    """

    def __init__(self, pid=0, start=0, length=0, *, flush=False, counts=False, max_pages=0):
        self._h = None
        flags = (AbScanFlag.FLUSH if flush else 0) | (AbScanFlag.COUNTS if counts else 0)
        opts = S.new(S.tiermm_ab_scan_opts, flags=int(flags), max_pages=int(max_pages))
        h = ctypes.c_void_p()
        _lib.lib.tiermm_ab_scan_open(int(pid), int(start), int(length), ctypes.byref(opts),
                                     ctypes.byref(h))
        self._h = h.value
        self._counts = bool(counts)

    def _handle(self):
        if self._h is None:
            raise ValueError("tiermm: the AbScanner is closed")
        return self._h

    def next(self):
        b = S.new(S.tiermm_ab_batch)
        if not _lib.lib.tiermm_ab_scan_next(self._handle(), ctypes.byref(b)):
            return None
        bitmap = counts = None
        if b.counts:
            counts = list(b.counts[:b.nr])
        elif b.bitmap:
            words = (b.nr + 63) // 64
            bitmap = ctypes.string_at(b.bitmap, words * 8)
        return AbBatch(b.base, b.start, b.end, b.scanned, b.accessed, b.nr, bitmap, counts)

    def __iter__(self):
        while True:
            b = self.next()
            if b is None:
                return
            yield b

    def rewind(self):
        """Start a new pass at the beginning of the range."""
        _lib.lib.tiermm_ab_scan_rewind(self._handle())

    def close(self):
        h, self._h = self._h, None
        if h is not None:
            _lib.lib.tiermm_ab_scan_close(h)
