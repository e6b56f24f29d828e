# SPDX-License-Identifier: LGPL-2.1-or-later
"""Topology: NUMA nodes, their kinds and tiers, distances, probes.

>>> import tiermm
>>> with tiermm.Topology() as topo:
...     [(n.os_index, n.tier, n.kind.name) for n in topo.nodes]
...     topo.distance(0, 0)
[(0, 0, 'DRAM')]
10.0
"""

import ctypes
import dataclasses
import errno
import threading

from . import _lib
from . import _structs as S
from ._enums import MemKind, Metric, Probe, TierSource, TopoFlag
from ._errors import TiermmError

__all__ = ["Topology", "NodeInfo", "TierInfo", "CpuGroups", "mem_kind_name",
           "tier_source_name", "metric_name"]


def mem_kind_name(kind):
    """tiermm_mem_kind_name(): "dram", "cxl", ..."""
    return _lib.cstr(_lib.lib.tiermm_mem_kind_name(int(kind)))


def tier_source_name(source):
    """tiermm_tier_source_name(): "kernel", "hmat", ..."""
    return _lib.cstr(_lib.lib.tiermm_tier_source_name(int(source)))


def metric_name(metric):
    """tiermm_metric_name(): "slit", "latency", ..."""
    return _lib.cstr(_lib.lib.tiermm_metric_name(int(metric)))


def _enum_or_int(cls, v):
    try:
        return cls(v)
    except ValueError:
        return v


@dataclasses.dataclass(frozen=True)
class NodeInfo:
    """A NUMA node (struct tiermm_node_info, plus its CPU list)."""
    os_index: int       # the kernel's node number
    kind: MemKind
    nr_cpus: int        # 0: memory only
    tier: int           # tiermm tier index, 0 = fastest
    capacity: int       # bytes
    cpus: list          # CPU numbers, ascending

    def __index__(self):
        return self.os_index


@dataclasses.dataclass(frozen=True)
class TierInfo:
    """A tier: its index (0 = fastest) and its nodes."""
    index: int
    nodes: list         # OS node numbers

    def __index__(self):
        return self.index


@dataclasses.dataclass(frozen=True)
class CpuGroups:
    """CPU groups inferred by Probe.CPUGROUPS (struct tiermm_cpugroups_info)."""
    nr_groups: int              # 0: not probed
    validated: bool
    agrees_with_nodes: bool
    partial: bool
    confidence: float
    max_in_group_ns: float
    min_cross_group_ns: float
    pairs_measured: int
    groups: list                # CPU numbers of each group


class Topology:
    """A loaded topology (struct tiermm_topo *): tiermm_topo_load().

    Topology()                               the running machine, no probes
    Topology(probes=Probe.LATENCY)           also measure (budget_s seconds)
    Topology(xml="cache.xml")                a tiermm/hwloc XML cache
    Topology(fsroot=DIR)                     a captured machine
    Topology(tiers="0-1;2")                  rank the tiers by hand

    progress, if given, is called as progress(what, done, total) while
    probes run. Use it as a context manager, or call close(); a Topology
    that a running Runtime uses cannot be closed.
    """

    def __init__(self, *, fsroot=None, xml=None, probes=0, budget_s=0.0,
                 progress=None, tiers=None, check_machine=False):
        self._h = None
        self._users = 0
        self._lock = threading.Lock()
        keep = []
        cb = None
        if progress is not None:
            if not callable(progress):
                raise TypeError("progress must be callable")

            def _progress(what, done, total, ctx):
                progress(_lib.cstr(what), done, total)
            cb = S.tiermm_progress_fn(_progress)
        opts = S.new(S.tiermm_topo_opts,
                     fsroot=_lib.encode(fsroot, "fsroot"),
                     xml_path=_lib.encode(xml, "xml"),
                     probes=int(Probe(probes)),
                     budget_s=float(budget_s),
                     tiers=_lib.encode(tiers, "tiers"),
                     flags=int(TopoFlag.CHECK_MACHINE if check_machine else 0))
        if cb is not None:
            opts.progress = cb
            keep.append(cb)
        h = ctypes.c_void_p()
        _lib.lib.tiermm_topo_load(ctypes.byref(opts), ctypes.byref(h))
        self._h = h.value
        del keep

    # ---- life ------------------------------------------------------------

    @property
    def handle(self):
        """The struct tiermm_topo * as an int (for other ctypes code)."""
        if self._h is None:
            raise ValueError("tiermm: the Topology is closed")
        return self._h

    @property
    def closed(self):
        return self._h is None

    def _use(self):
        with self._lock:
            h = self.handle
            self._users += 1
            return h

    def _unuse(self):
        with self._lock:
            self._users -= 1

    def close(self):
        """Free the topology (tiermm_topo_free). Idempotent."""
        with self._lock:
            if self._users:
                raise RuntimeError("tiermm: the Topology is used by %d running Runtime%s; "
                                   "stop them first" % (self._users,
                                                        "" if self._users == 1 else "s"))
            h, self._h = self._h, None
        if h is not None:
            _lib.lib.tiermm_topo_free(h)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            if self._h is not None and not self._users:
                _lib.lib.tiermm_topo_free(self._h)
                self._h = None
        except Exception:  # interpreter shutdown
            pass

    def __repr__(self):
        if self._h is None:
            return "<tiermm.Topology closed>"
        return "<tiermm.Topology %s: %d nodes, tiers %s>" % (
            self.origin, self.nr_nodes, ";".join(
                ",".join(map(str, t.nodes)) for t in self.tiers))

    # ---- nodes -----------------------------------------------------------

    @property
    def nr_nodes(self):
        return _lib.lib.tiermm_topo_nr_nodes(self.handle)

    def node(self, idx):
        """The idx-th node (ascending OS index) as NodeInfo."""
        h = self.handle
        n = S.new(S.tiermm_node_info)
        _lib.lib.tiermm_topo_node(h, int(idx), ctypes.byref(n))
        cpus = _lib.list_call(_lib.lib.tiermm_topo_node_cpus, h, int(idx), what="cpus")
        return NodeInfo(n.os_index, _enum_or_int(MemKind, n.kind), n.nr_cpus, n.tier,
                        n.capacity, _lib.parse_list(cpus))

    @property
    def nodes(self):
        """Every node as NodeInfo, ascending OS index."""
        return [self.node(i) for i in range(self.nr_nodes)]

    def node_index(self, os_index):
        """Index in .nodes of the node numbered os_index (ENOENT if none)."""
        return _lib.lib.tiermm_topo_node_index(self.handle, int(os_index))

    def node_by_os_index(self, os_index):
        """NodeInfo of node os_index."""
        return self.node(self.node_index(os_index))

    # ---- tiers -----------------------------------------------------------

    @property
    def nr_tiers(self):
        return _lib.lib.tiermm_topo_nr_tiers(self.handle)

    def tier_nodes(self, tier):
        """OS numbers of the nodes of tier (0 = fastest)."""
        s = _lib.list_call(_lib.lib.tiermm_topo_tier_nodes, self.handle, int(tier),
                           what="nodes")
        return _lib.parse_list(s)

    @property
    def tiers(self):
        """Every tier as TierInfo, fastest first."""
        return [TierInfo(t, self.tier_nodes(t)) for t in range(self.nr_tiers)]

    @property
    def tier_source(self):
        """Where the ranking came from (TierSource)."""
        return _enum_or_int(TierSource, _lib.lib.tiermm_topo_tier_source(self.handle, None))

    @property
    def tier_conflicts(self):
        """The other sources that rank differently ("" when all agree)."""
        c = ctypes.c_char_p()
        _lib.lib.tiermm_topo_tier_source(self.handle, ctypes.byref(c))
        return _lib.cstr(c.value) or ""

    # ---- distances -------------------------------------------------------

    def distance(self, initiator, target, metric=Metric.SLIT):
        """Metric from the CPUs of node initiator to the memory of node target.

        SLIT distance by default. Raises TiermmError: ENODATA when the
        value is not known (e.g. no HMAT, not measured), ENOENT when a node
        does not exist (or the initiator has no CPUs, for non-SLIT metrics).
        """
        v = ctypes.c_double()
        _lib.lib.tiermm_topo_distance(self.handle, int(initiator), int(target),
                                      int(metric), ctypes.byref(v))
        return v.value

    def distances(self, metric=Metric.SLIT):
        """{(initiator, target): value} for every pair that has a value."""
        out = {}
        nodes = [n.os_index for n in self.nodes]
        for a in nodes:
            for b in nodes:
                try:
                    out[(a, b)] = self.distance(a, b, metric)
                except TiermmError as e:
                    if e.errno not in (errno.ENODATA, errno.ENOENT):
                        raise
        return out

    def best_target(self, initiator, metric=Metric.SLIT):
        """OS index of the node best for initiator by metric (lowest latency
        or distance, highest bandwidth); TiermmError ENODATA if unknown."""
        return _lib.lib.tiermm_topo_best_target(self.handle, int(initiator), int(metric))

    # ---- CPU groups, provenance, export ----------------------------------

    def cpugroups(self):
        """CpuGroups from Probe.CPUGROUPS (nr_groups 0 if not probed)."""
        h = self.handle
        info = S.new(S.tiermm_cpugroups_info)
        _lib.lib.tiermm_topo_cpugroups(h, ctypes.byref(info))
        groups = [_lib.parse_list(_lib.list_call(_lib.lib.tiermm_topo_cpugroup_cpus, h, g,
                                                 what="cpus"))
                  for g in range(info.nr_groups)]
        return CpuGroups(info.nr_groups, bool(info.validated), bool(info.agrees_with_nodes),
                         bool(info.partial), info.confidence, info.max_in_group_ns,
                         info.min_cross_group_ns, info.pairs_measured, groups)

    @property
    def origin(self):
        """"live", "fsroot DIR" or "xml FILE (measured on HOST at TIME)"."""
        return _lib.cstr(_lib.lib.tiermm_topo_origin(self.handle))

    def export_xml(self, path):
        """Save as hwloc XML with tiermm's measurements (tiermm_topo_export_xml)."""
        _lib.lib.tiermm_topo_export_xml(self.handle, _lib.encode(path, "path"), 0)

    def to_json(self):
        """Everything as one JSON object, as text (tiermm_topo_write_json)."""
        h = self.handle
        return _lib.capture_file(lambda f: _lib.lib.tiermm_topo_write_json(h, f))


_default = None
_default_lock = threading.Lock()


def default_topology():
    """The running machine's topology, loaded once and kept for the process.

    What move(..., tier=), residency(), alloc_tier() and Runtime use when
    they are given no topology.
    """
    global _default
    with _default_lock:
        if _default is None or _default.closed:
            _default = Topology()
            # Never closed by its users: they did not open it.
            _default._users += 1
        return _default
