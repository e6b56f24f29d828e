# SPDX-License-Identifier: LGPL-2.1-or-later
"""Feature probes: what the running kernel (or a captured machine) offers.

>>> import tiermm
>>> c = tiermm.caps()
>>> c.state(tiermm.Cap.MOVE_PAGES)
<CapState.PRESENT: 1>
>>> [f.name for f in c if f.state is tiermm.CapState.PRESENT]
['numa', 'move_pages', ...]
"""

import ctypes
import dataclasses
import threading

from . import _lib
from . import _structs as S
from ._enums import Cap, CapState

__all__ = ["Caps", "CapInfo", "CapsNode", "caps", "cap_name", "cap_help"]


def cap_name(cap):
    """Short stable name of a feature ("move_pages", ...) (tiermm_cap_name)."""
    return _lib.name_of(_lib.lib.tiermm_cap_name, cap, "a feature")


def cap_help(cap):
    """What is lost without the feature (tiermm_cap_help)."""
    return _lib.name_of(_lib.lib.tiermm_cap_help, cap, "a feature")


@dataclasses.dataclass(frozen=True)
class CapInfo:
    """One probed feature."""
    cap: Cap
    name: str
    state: CapState
    detail: str
    help: str

    @property
    def present(self):
        return self.state is CapState.PRESENT


@dataclasses.dataclass(frozen=True)
class CapsNode:
    """Per-node facts from the probes (struct tiermm_caps_node)."""
    os_index: int
    nr_cpus: int
    has_memory: bool
    memory_tier: int        # kernel memory tier id, -1 if unknown
    tier_rank: int          # 0 = fastest kernel tier, -1 if unknown
    mem_total: int          # bytes
    read_latency_ns: int    # HMAT access0, 0 if not reported
    write_latency_ns: int
    read_bandwidth_mbps: int
    write_bandwidth_mbps: int
    cpus: str               # the kernel's list format, "0-3,8"


class Caps(_lib.Closing):
    """A set of probe results (struct tiermm_caps).

    ``Caps()`` probes the running machine now (``Caps(fsroot=DIR)`` a
    captured one: DIR holds sys/ and proc/) and is freed by close() or at
    the end of a ``with`` block. :func:`caps` gives the process-wide probes
    the library caches (``tiermm_caps_get()``), which are never freed.
    """

    def __init__(self, fsroot=None, *, _handle=None):
        self._h = None
        self._owned = _handle is None
        if _handle is not None:
            self._h = _handle
            return
        self._fsroot = _lib.encode(fsroot, "fsroot")
        opts = S.new(S.tiermm_caps_opts, fsroot=self._fsroot)
        h = ctypes.c_void_p()
        _lib.lib.tiermm_caps_load(ctypes.byref(opts), ctypes.byref(h))
        self._h = h.value

    def _handle(self):
        if self._h is None:
            raise ValueError("tiermm: the Caps object is closed")
        return self._h

    def close(self):
        """Free the probes (a no-op for the shared ones from caps())."""
        if self._owned and self._h is not None:
            _lib.lib.tiermm_caps_free(self._h)
        self._h = None

    def state(self, cap):
        """CapState of a feature (tiermm_caps_state)."""
        return CapState(_lib.lib.tiermm_caps_state(self._handle(), int(cap)))

    def present(self, cap):
        """True when the feature was probed and is available."""
        return self.state(cap) is CapState.PRESENT

    def detail(self, cap):
        """What the probe found, in one line (tiermm_caps_detail)."""
        d = _lib.lib.tiermm_caps_detail(self._handle(), int(cap))
        if d is None:
            raise ValueError("tiermm: %r is not a feature" % (cap,))
        return _lib.cstr(d)

    def info(self, cap):
        """Everything about one feature as a CapInfo."""
        cap = Cap(cap)
        return CapInfo(cap, cap_name(cap), self.state(cap), self.detail(cap), cap_help(cap))

    def __iter__(self):
        """CapInfo of every feature, in enum order."""
        return iter([self.info(c) for c in Cap])

    @property
    def nodes(self):
        """The NUMA nodes the probes found, as CapsNode (ascending number)."""
        h = self._handle()
        out = []
        for i in range(_lib.lib.tiermm_caps_nr_nodes(h)):
            n = S.new(S.tiermm_caps_node)
            _lib.lib.tiermm_caps_node(h, i, ctypes.byref(n))
            cpus = _lib.list_call(_lib.lib.tiermm_caps_node_cpus, h, i, what="cpus")
            out.append(CapsNode(n.os_index, n.nr_cpus, bool(n.has_memory), n.memory_tier,
                                n.tier_rank, n.mem_total, n.read_latency_ns,
                                n.write_latency_ns, n.read_bandwidth_mbps,
                                n.write_bandwidth_mbps, cpus))
        return out

    def module(self):
        """(api_version, feature bits) of tiermm.ko (tiermm_caps_module).

        Raises TiermmError (ENODEV) when the module is not loaded or not
        usable; its message says why.
        """
        api = ctypes.c_uint32()
        feat = ctypes.c_uint64()
        _lib.lib.tiermm_caps_module(self._handle(), ctypes.byref(api), ctypes.byref(feat))
        return api.value, feat.value

    def to_json(self):
        """Every probe as one JSON object, as text (tiermm_caps_write_json)."""
        h = self._handle()
        return _lib.capture_file(lambda f: _lib.lib.tiermm_caps_write_json(h, f))

    def as_dict(self):
        """{feature name: CapInfo}."""
        return {i.name: i for i in self}

    def __repr__(self):
        if self._h is None:
            return "<tiermm.Caps closed>"
        on = [i.name for i in self if i.present]
        return "<tiermm.Caps present: %s>" % ", ".join(on)


_shared = None
_shared_lock = threading.Lock()


def caps(fsroot=None):
    """The probes of the running machine, made once per process and cached
    by the library (tiermm_caps_get(); honours TIERMM_FSROOT). With fsroot,
    a new Caps of that captured machine (close it when done)."""
    global _shared
    if fsroot is not None:
        return Caps(fsroot)
    with _shared_lock:
        if _shared is None:
            h = _lib.lib.tiermm_caps_get()
            if not h:
                raise _lib.error(ctypes.get_errno() or 12, "tiermm_caps_get")
            _shared = Caps(_handle=h)
        return _shared
