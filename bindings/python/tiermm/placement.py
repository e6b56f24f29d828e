# SPDX-License-Identifier: LGPL-2.1-or-later
"""Placement: move buffers to a node or a tier, see where they reside,
allocate memory bound to a tier, and hint the tiering engine.

Buffers are anything exposing a writable, C-contiguous buffer: mmap.mmap,
bytearray, memoryview, array.array, numpy arrays, TierMemory. The kernel
places whole pages, so every call works on the pages that hold the buffer's
bytes, including any other data that shares its first and last page (a
small bytearray shares its page with other Python objects; an mmap or a
TierMemory is page aligned and owns its pages).

>>> import mmap, tiermm
>>> buf = mmap.mmap(-1, 1 << 20)
>>> buf[:] = bytes(1 << 20)                 # fault the pages in
>>> r = tiermm.move(buf, node=0)
>>> r.moved + r.already_there == r.pages
True
>>> tiermm.residency(buf).nodes
{0: 256}
"""

import ctypes
import dataclasses
import errno
import mmap

from . import _lib
from . import _structs as S
from ._buffer import PAGE_SIZE, Span, pinned
from ._enums import AllocFlag, Hint, HintFlag, MoveFlag
from ._errors import TiermmError
from .topology import default_topology

__all__ = ["move", "move_range", "MoveResult", "residency", "residency_range",
           "Residency", "hint", "hint_name", "alloc_tier", "TierMemory"]

_MAX_NODES_TRY = 1 << 16


def hint_name(h):
    """Short stable name of a hint ("hot", "pin_fast", ...)."""
    return _lib.name_of(_lib.lib.tiermm_hint_name, h, "a hint")


def _node_number(node):
    # int, NodeInfo (its os_index) or anything with __index__
    return int(getattr(node, "os_index", node))


def _tier_number(tier):
    return int(getattr(tier, "index", tier))


@dataclasses.dataclass(frozen=True)
class MoveResult:
    """What a move did, in base pages of the range (struct tiermm_move_result).

    Every page is counted once: pages = moved + already_there +
    not_present + failed + skipped, and failed = failed_busy + failed_nomem
    + failed_fault + failed_other. not_moved lists the pages that are not on
    a target node by reason. libtiermm reports failures as counts per reason
    plus the first failing page (first_failed, first_error): it does not
    list every page, and neither does this binding.
    """
    pages: int
    moved: int
    already_there: int
    not_present: int        # never written, swapped out, or the zero page
    failed: int
    failed_busy: int        # could not be isolated (EBUSY/EAGAIN), every retry
    failed_nomem: int       # the target node ran out of memory
    failed_fault: int       # unmapped meanwhile, or not movable (EFAULT)
    failed_other: int       # pinned (DMA, io_uring), shared (EACCES), moved away
    skipped: int            # not examined: the call stopped early
    first_failed: int       # address of the first page that failed (0: none)
    first_error: int        # its errno, 0 if no page failed
    retries: int
    huge: int
    syscalls: int
    elapsed_ns: int
    start: int = 0          # the page range the call worked on
    length: int = 0

    @classmethod
    def _from(cls, r, span):
        return cls(r.pages, r.moved, r.already_there, r.not_present, r.failed,
                   r.failed_busy, r.failed_nomem, r.failed_fault, r.failed_other,
                   r.skipped, r.first_failed, r.first_error, r.retries, r.huge,
                   r.syscalls, r.elapsed_ns, span.start if span else 0,
                   span.length if span else 0)

    @property
    def not_moved(self):
        """{reason: pages} of the pages that are not on a target node, by
        reason: "busy", "nomem", "fault", "other" (failed), "not_present"
        and "skipped". Only non-zero reasons appear."""
        d = {"busy": self.failed_busy, "nomem": self.failed_nomem,
             "fault": self.failed_fault, "other": self.failed_other,
             "not_present": self.not_present, "skipped": self.skipped}
        return {k: v for k, v in d.items() if v}

    @property
    def complete(self):
        """True when no present page failed and none was skipped."""
        return not self.failed and not self.skipped

    @property
    def first_failed_page(self):
        """Index (in pages from the range's start) of the first failed page, or None."""
        if not self.first_error:
            return None
        return (self.first_failed - self.start) // PAGE_SIZE

    @property
    def first_error_name(self):
        """errno name of first_error ("EBUSY", ...), or None."""
        if not self.first_error:
            return None
        return errno.errorcode.get(self.first_error, "E%d" % self.first_error)


def _move(span, pid, node, tier, strict, shared, topology):
    if (node is None) == (tier is None):
        raise TypeError("tiermm: give exactly one of node= and tier=")
    flags = (MoveFlag.STRICT if strict else 0) | (MoveFlag.SHARED if shared else 0)
    res = S.new(S.tiermm_move_result)
    try:
        if node is not None:
            _lib.lib.tiermm_move(int(pid), span.start, span.length, _node_number(node),
                                 int(flags), ctypes.byref(res))
        else:
            topo = topology if topology is not None else default_topology()
            _lib.lib.tiermm_move_tier(topo.handle, int(pid), span.start, span.length,
                                      _tier_number(tier), int(flags), ctypes.byref(res))
    except TiermmError as e:
        # With strict=True the pages moved until the failure stay moved.
        e.result = MoveResult._from(res, span) if res.pages else None
        raise
    return MoveResult._from(res, span)


def move(buf, node=None, *, tier=None, strict=False, shared=False, topology=None):
    """Move the pages of buf to NUMA node node, or to tier tier.

    node is the kernel's node number (or a NodeInfo); tier an index of
    topology's tiers (0 = fastest; the running machine's topology when
    topology is None): a page already on a node of the tier stays, any other
    goes to the tier's node nearest to where it is. Returns a MoveResult.

    Without strict the call runs to completion and pages that did not move
    are counted in the result (see MoveResult.not_moved). With strict=True
    everything checkable is validated first and the call raises TiermmError
    as soon as a page does not move; the error's .result holds what happened
    until then (pages moved stay moved). shared=True also moves pages mapped
    by other processes (needs CAP_SYS_NICE).
    """
    with pinned(buf) as span:
        return _move(span, 0, node, tier, strict, shared, topology)


def move_range(address, length, node=None, *, tier=None, pid=0, strict=False,
               shared=False, topology=None):
    """move() on [address, address + length) of process pid (0: this one).

    address must be page aligned; length is rounded up to whole pages.
    """
    span = _Range(address, length)
    return _move(span, pid, node, tier, strict, shared, topology)


class _Range(Span):
    __slots__ = ()

    def __init__(self, address, length):  # pylint: disable=super-init-not-called
        self.address = self.start = int(address)
        self.nbytes = self.length = int(length)


@dataclasses.dataclass(frozen=True)
class Residency:
    """Where the pages of a range are (tiermm_residency, tiermm_residency_tiers)."""
    pages: int          # base pages in the range
    not_present: int    # pages with no page of their own (never written, swapped out)
    nodes: dict         # {node: pages} for every node holding some
    tiers: list         # pages per tier, fastest first; None if not asked for

    def on_node(self, node):
        return self.nodes.get(_node_number(node), 0)

    def on_tier(self, tier):
        return self.tiers[_tier_number(tier)]


def _residency(span, pid, topology, tiers):
    nr = 64
    while True:
        counts = (ctypes.c_uint64 * nr)()
        np_ = ctypes.c_uint64()
        top = _lib.lib.tiermm_residency(int(pid), span.start, span.length, counts, nr,
                                        ctypes.byref(np_))
        if top <= nr or nr >= _MAX_NODES_TRY:
            break
        nr = top
    nodes = {i: counts[i] for i in range(min(top, nr)) if counts[i]}
    per_tier = None
    if tiers:
        topo = topology if topology is not None else default_topology()
        nt = topo.nr_tiers
        tcounts = (ctypes.c_uint64 * nt)()
        _lib.lib.tiermm_residency_tiers(topo.handle, int(pid), span.start, span.length,
                                        tcounts, nt, None)
        per_tier = list(tcounts)
    return Residency(span.length // PAGE_SIZE, np_.value, nodes, per_tier)


def residency(buf, topology=None, *, tiers=True):
    """Count the pages of buf per node and per tier of topology.

    Residency.nodes maps node numbers to pages; Residency.tiers lists the
    pages per tier (tiers=False skips that query). Pages that have no page
    of their own are counted in not_present.
    """
    with pinned(buf) as span:
        return _residency(span, 0, topology, tiers)


def residency_range(address, length, *, pid=0, topology=None, tiers=True):
    """residency() of [address, address + length) of process pid."""
    return _residency(_Range(address, length), pid, topology, tiers)


def hint(buf, kind, *, record_only=False):
    """Record a hint for the pages of buf, for the tiering engine.

    kind is a Hint: HOT, COLD, PIN_FAST, PIN_SLOW, NO_MIGRATE, or DEFAULT
    to remove earlier ones. PIN_FAST/PIN_SLOW also move the pages to that
    tier now (best effort) unless record_only. A later hint replaces
    earlier ones where they overlap. Hints apply to whole pages, so a hint
    on a small buffer covers its neighbours on the same pages too.
    """
    kind = Hint(kind)
    flags = HintFlag.RECORD_ONLY if record_only else 0
    with pinned(buf) as span:
        _lib.lib.tiermm_hint(span.start, span.length, int(kind), int(flags))


# ---- tier allocation ------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mremap.restype = ctypes.c_void_p
_libc.mremap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_int,
                         ctypes.c_void_p]
_MREMAP_MAYMOVE = 1
_MREMAP_FIXED = 2
_MAP_FAILED = ctypes.c_void_p(-1).value


class TierMemory(mmap.mmap):
    """Memory from tiermm_alloc_tier(): an mmap.mmap whose pages come from
    one tier's nodes.

    It is an mmap object in every respect (buffer protocol with format 'B',
    slicing, memoryview, numpy.frombuffer, close(), ``with``), plus
    ``address``, ``tier`` and ``flags``. Its pages are allocated on the
    tier's nodes only (MPOL_BIND), or preferably there with preferred=True.

    Why an mmap: the memory is mapped by tiermm_alloc_tier() and then moved
    (mremap(2), which keeps its memory policy and pages) onto the anonymous
    mapping of a fresh mmap.mmap. Python then tracks every buffer exported
    from it, as for any mmap: close() raises BufferError while a memoryview
    or numpy array still uses it, and no access after close() can reach
    unmapped memory. On close() or when the last reference goes, the hints
    recorded on the range are removed (tiermm_hint(DEFAULT)) and the pages
    unmapped: what tiermm_free() does.
    """

    def __new__(cls, size, tier=0, *, topology=None, preferred=False, populate=False):
        size = int(size)
        if size <= 0:
            raise ValueError("tiermm: alloc_tier size must be positive, not %d" % size)
        tier = _tier_number(tier)
        flags = ((AllocFlag.PREFERRED if preferred else 0) |
                 (AllocFlag.POPULATE if populate else 0))
        topo = topology if topology is not None else default_topology()
        self = super().__new__(cls, -1, size, flags=mmap.MAP_PRIVATE,
                               prot=mmap.PROT_READ | mmap.PROT_WRITE)
        length = (size + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
        arr = (ctypes.c_char * size).from_buffer(self)
        target = ctypes.addressof(arr)
        del arr
        p = _lib.lib.tiermm_alloc_tier(topo.handle, size, tier, int(flags))
        if not p:
            err = ctypes.get_errno()
            mmap.mmap.close(self)
            raise _lib.error(err or errno.ENOMEM, "tiermm_alloc_tier")
        q = _libc.mremap(p, length, length, _MREMAP_MAYMOVE | _MREMAP_FIXED, target)
        if q is None or q == _MAP_FAILED or q != target:
            err = ctypes.get_errno()
            _lib.lib.tiermm_free(p, size)
            mmap.mmap.close(self)
            raise OSError(err, "tiermm: mremap of the tier allocation: " + errno.errorcode.get(
                err, str(err)))
        self._address = target
        self._size = size
        self._length = length
        self._tier = tier
        self._flags = AllocFlag(flags)
        return self

    def __init__(self, *args, **kwargs):  # everything happens in __new__
        pass

    @property
    def address(self):
        """Address of the first byte (page aligned)."""
        return self._address

    @property
    def tier(self):
        return self._tier

    @property
    def flags(self):
        return self._flags

    def _clear_hints(self):
        try:
            _lib.lib.tiermm_hint(self._address, self._length, int(Hint.DEFAULT), 0)
        except TiermmError:
            pass

    def close(self):
        """Remove the range's hints and unmap it, as tiermm_free() does.

        Raises BufferError (and changes nothing) while a buffer exported from
        it is in use, like mmap.close()."""
        if self.closed:
            return
        if _exported(self):
            raise BufferError("tiermm: cannot close TierMemory: exported buffers "
                              "(memoryview, numpy array, ...) still use it")
        self._clear_hints()
        super().close()

    def resize(self, newsize):
        raise OSError(errno.ENOTSUP, "tiermm: a TierMemory cannot be resized "
                      "(allocate a new one with alloc_tier)")

    def __del__(self):
        try:
            if not self.closed:
                self._clear_hints()  # then mmap's dealloc unmaps it
        except Exception:  # interpreter shutdown
            pass

    def __repr__(self):
        state = "closed" if self.closed else "%#x" % self._address
        return "<tiermm.TierMemory %d bytes on tier %d at %s>" % (self._size, self._tier, state)

    def __reduce__(self):
        raise TypeError("tiermm: TierMemory cannot be pickled")


def _exported(obj):
    """True when a memoryview (or anything built on one) uses obj's buffer."""
    import gc  # pylint: disable=import-outside-toplevel
    return any(type(r).__name__ == "managedbuffer" for r in gc.get_referrers(obj))


def alloc_tier(size, tier=0, *, topology=None, preferred=False, populate=False):
    """size bytes of new, zeroed, private memory on tier tier (a TierMemory).

    Pages are allocated on the nodes of the tier only (MPOL_BIND) or, with
    preferred=True, preferably there (MPOL_PREFERRED_MANY; ENOTSUP before
    Linux 5.15). populate=True faults every page in now. topology defaults
    to the running machine's.
    """
    return TierMemory(size, tier, topology=topology, preferred=preferred,
                      populate=populate)
