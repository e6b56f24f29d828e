# SPDX-License-Identifier: LGPL-2.1-or-later
"""Loading libtiermm and declaring the prototypes of its public calls.

Where the library comes from, in order:

1. ``TIERMM_LIBRARY`` in the environment: that file (or soname) and nothing
   else;
2. ``_config.LIBRARY``, written by CMake next to the package: the build
   tree's ``lib/libtiermm.so.0`` in a build tree, the installed library in
   an installed package (skipped when that file does not exist);
3. the SONAME, ``libtiermm.so.0``, through the dynamic loader's search path.

Every function returning int is declared with an errcheck that turns a
negative return into :class:`TiermmError` carrying the errno and
``tiermm_errmsg()``; pointer-returning calls are checked by their callers.
"""

import ctypes
import errno
import os
from ctypes import (POINTER, c_char_p, c_double, c_int, c_size_t, c_uint,
                    c_uint32, c_uint64, c_ulong, c_void_p)

from . import _structs as S
from ._errors import TiermmError

SONAME = "libtiermm.so.0"

# (name, restype, argtypes). "check": negative int -> TiermmError.
# Every symbol of lib/libtiermm.map is here or in NOT_BOUND (test_api).
_PROTOTYPES = [
    # common.h
    ("tiermm_version", c_uint32, []),
    ("tiermm_version_string", c_char_p, []),
    ("tiermm_strerror", c_char_p, [c_int]),
    ("tiermm_errmsg", c_char_p, []),
    ("tiermm_set_print", "check", [S.tiermm_print_fn, c_int, c_void_p]),
    # caps.h
    ("tiermm_caps_load", "check", [POINTER(S.tiermm_caps_opts), POINTER(c_void_p)]),
    ("tiermm_caps_free", None, [c_void_p]),
    ("tiermm_caps_get", c_void_p, []),
    ("tiermm_caps_state", "check", [c_void_p, c_int]),
    ("tiermm_caps_detail", c_char_p, [c_void_p, c_int]),
    ("tiermm_cap_name", c_char_p, [c_int]),
    ("tiermm_cap_help", c_char_p, [c_int]),
    ("tiermm_caps_nr_nodes", "check", [c_void_p]),
    ("tiermm_caps_node", "check", [c_void_p, c_int, POINTER(S.tiermm_caps_node)]),
    ("tiermm_caps_node_cpus", "check", [c_void_p, c_int, c_char_p, c_size_t]),
    ("tiermm_caps_module", "check", [c_void_p, POINTER(c_uint32), POINTER(c_uint64)]),
    ("tiermm_caps_write_json", "check", [c_void_p, c_void_p]),
    # topo.h
    ("tiermm_topo_load", "check", [POINTER(S.tiermm_topo_opts), POINTER(c_void_p)]),
    ("tiermm_topo_free", None, [c_void_p]),
    ("tiermm_mem_kind_name", c_char_p, [c_int]),
    ("tiermm_topo_nr_nodes", "check", [c_void_p]),
    ("tiermm_topo_node", "check", [c_void_p, c_int, POINTER(S.tiermm_node_info)]),
    ("tiermm_topo_node_index", "check", [c_void_p, c_int]),
    ("tiermm_topo_node_cpus", "check", [c_void_p, c_int, c_char_p, c_size_t]),
    ("tiermm_tier_source_name", c_char_p, [c_int]),
    ("tiermm_topo_nr_tiers", "check", [c_void_p]),
    ("tiermm_topo_tier_nodes", "check", [c_void_p, c_int, c_char_p, c_size_t]),
    ("tiermm_topo_tier_source", "check", [c_void_p, POINTER(c_char_p)]),
    ("tiermm_metric_name", c_char_p, [c_int]),
    ("tiermm_topo_distance", "check", [c_void_p, c_int, c_int, c_int, POINTER(c_double)]),
    ("tiermm_topo_best_target", "check", [c_void_p, c_int, c_int]),
    ("tiermm_topo_cpugroups", "check", [c_void_p, POINTER(S.tiermm_cpugroups_info)]),
    ("tiermm_topo_cpugroup_cpus", "check", [c_void_p, c_int, c_char_p, c_size_t]),
    ("tiermm_topo_origin", c_char_p, [c_void_p]),
    ("tiermm_topo_export_xml", "check", [c_void_p, c_char_p, c_uint]),
    ("tiermm_topo_write_json", "check", [c_void_p, c_void_p]),
    # place.h
    ("tiermm_move", "check",
     [S.c_pid_t, c_void_p, c_size_t, c_int, c_uint, POINTER(S.tiermm_move_result)]),
    ("tiermm_move_tier", "check",
     [c_void_p, S.c_pid_t, c_void_p, c_size_t, c_int, c_uint,
      POINTER(S.tiermm_move_result)]),
    ("tiermm_residency", "check",
     [S.c_pid_t, c_void_p, c_size_t, POINTER(c_uint64), c_uint, POINTER(c_uint64)]),
    ("tiermm_residency_tiers", "check",
     [c_void_p, S.c_pid_t, c_void_p, c_size_t, POINTER(c_uint64), c_uint,
      POINTER(c_uint64)]),
    ("tiermm_alloc_tier", c_void_p, [c_void_p, c_size_t, c_int, c_uint]),
    ("tiermm_free", "check", [c_void_p, c_size_t]),
    ("tiermm_hint", "check", [c_void_p, c_size_t, c_int, c_uint]),
    ("tiermm_hint_name", c_char_p, [c_int]),
    # pt.h
    ("tiermm_pt_level_name", c_char_p, [c_int]),
    ("tiermm_pt_stat", "check",
     [S.c_pid_t, c_uint64, c_uint64, c_uint, POINTER(c_void_p)]),
    ("tiermm_pt_stat_free", None, [c_void_p]),
    ("tiermm_pt_stat_nr_nodes", "check", [c_void_p]),
    ("tiermm_pt_stat_node", "check", [c_void_p, c_int, POINTER(S.tiermm_pt_node)]),
    ("tiermm_pt_stat_summary", "check", [c_void_p, POINTER(S.tiermm_pt_summary)]),
    ("tiermm_pt_stat_replica", "check", [c_void_p, c_int, POINTER(S.tiermm_pt_replica)]),
    ("tiermm_pt_dump", "check", [S.c_pid_t, c_uint64, c_uint64, c_void_p, c_uint]),
    ("tiermm_pt_skip_name", c_char_p, [c_int]),
    ("tiermm_pt_migrate", "check",
     [S.c_pid_t, c_uint64, c_uint64, c_int, c_uint,
      POINTER(S.tiermm_pt_migrate_result)]),
    ("tiermm_ab_scan_open", "check",
     [S.c_pid_t, c_uint64, c_uint64, POINTER(S.tiermm_ab_scan_opts), POINTER(c_void_p)]),
    ("tiermm_ab_scan_next", "check", [c_void_p, POINTER(S.tiermm_ab_batch)]),
    ("tiermm_ab_scan_rewind", "check", [c_void_p]),
    ("tiermm_ab_scan_close", None, [c_void_p]),
    ("tiermm_pt_replicate", "check", [S.c_pid_t, POINTER(c_ulong), c_uint, c_uint]),
    ("tiermm_pt_replication", "check", [S.c_pid_t, POINTER(c_ulong), c_uint]),
    # runtime.h
    ("tiermm_runtime_start", "check",
     [POINTER(S.tiermm_runtime_opts), POINTER(c_void_p)]),
    ("tiermm_runtime_stop", "check", [c_void_p]),
    ("tiermm_runtime_stats", "check", [c_void_p, POINTER(S.tiermm_runtime_stats)]),
    ("tiermm_runtime_set_budget", "check", [c_void_p, c_uint64]),
    ("tiermm_runtime_set_budget_share", "check", [c_void_p, c_double]),
]

# Exported symbols this binding deliberately does not wrap, and why. The
# library's libnuma-compatible names (numa_set/get_pgtable_replication_mask)
# are not tiermm_ symbols: they take libnuma's struct bitmask and do what
# pt_replicate(nodes) and pt_replication() do for this process.
NOT_BOUND = {}


def _candidates():
    env = os.environ.get("TIERMM_LIBRARY")
    if env:
        return [env], "TIERMM_LIBRARY"
    out = []
    try:
        from . import _config  # written by CMake; absent in a bare source tree
    except ImportError:
        _config = None
    lib = getattr(_config, "LIBRARY", None)
    if lib and os.path.exists(lib):
        out.append(lib)
    out.append(getattr(_config, "SONAME", None) or SONAME)
    return out, None


def _load():
    names, why = _candidates()
    errors = []
    for name in names:
        try:
            return ctypes.CDLL(name, use_errno=True), name
        except OSError as e:
            errors.append("%s: %s" % (name, e))
    hint = ("TIERMM_LIBRARY is set; nothing else was tried" if why else
            "set TIERMM_LIBRARY to the library's path, or install libtiermm")
    raise ImportError("tiermm: cannot load libtiermm (%s; %s)" % ("; ".join(errors), hint))


lib, path = _load()


def errmsg():
    """tiermm_errmsg(): the message of the last failure in this thread."""
    m = lib.tiermm_errmsg()
    return m.decode("utf-8", "replace") if m else ""


def strerror(err):
    """tiermm_strerror(): the generic text of an error code."""
    m = lib.tiermm_strerror(int(err))
    return m.decode("utf-8", "replace") if m else os.strerror(abs(int(err)))


def error(err, function=None, message=None):
    """A TiermmError for errno err, with the thread's tiermm_errmsg()."""
    err = abs(int(err)) or 5  # EIO if a caller ever passes 0
    if message is None:
        message = errmsg()
    return TiermmError(err, message, function, strerror(err))


def _check(result, func, args):
    if result < 0:
        raise error(-result, func.__name__)
    return result


def _declare():
    for name, restype, argtypes in _PROTOTYPES:
        f = getattr(lib, name)  # AttributeError: the library is older than the binding
        f.argtypes = argtypes
        if restype == "check":
            f.restype = c_int
            f.errcheck = _check
        else:
            f.restype = restype


_declare()

# The C library of the process, for open_memstream(3) (the *_write_json and
# dump calls write to a FILE *).
_libc = ctypes.CDLL(None, use_errno=True)
_libc.open_memstream.restype = c_void_p
_libc.open_memstream.argtypes = [POINTER(ctypes.c_void_p), POINTER(c_size_t)]
_libc.fclose.restype = c_int
_libc.fclose.argtypes = [c_void_p]
_libc.free.restype = None
_libc.free.argtypes = [c_void_p]


def capture_file(call):
    """Run call(FILE *) on an open_memstream() and return what it wrote."""
    buf = ctypes.c_void_p()
    size = c_size_t()
    f = _libc.open_memstream(ctypes.byref(buf), ctypes.byref(size))
    if not f:
        err = ctypes.get_errno()
        raise OSError(err, "open_memstream: " + os.strerror(err))
    try:
        call(f)
    finally:
        _libc.fclose(f)
        data = ctypes.string_at(buf.value, size.value) if buf.value else b""
        _libc.free(buf)
    return data.decode("utf-8", "replace")


def cstr(p):
    """A C string returned by the library as str (None stays None)."""
    return p.decode("utf-8", "replace") if p is not None else None


def name_of(fn, value, what):
    """The library's name for value through fn (tiermm_*_name()); ValueError if none."""
    n = fn(int(value))
    if n is None:
        raise ValueError("tiermm: %r is not %s" % (value, what))
    return cstr(n)


class Closing:
    """with-statement and garbage collection for a class with close()."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass


def encode(s, what):
    """str/bytes/os.PathLike -> bytes for a const char * argument (None stays None)."""
    if s is None:
        return None
    s = os.fspath(s)
    if isinstance(s, str):
        s = s.encode()
    if not isinstance(s, bytes):
        raise TypeError("%s must be str, bytes or a path, not %s" % (what, type(s).__name__))
    if b"\0" in s:
        raise ValueError("%s contains a NUL byte" % what)
    return s


def list_call(fn, *args, what):
    """Call fn(*args, buf, len) for a list string, growing buf on ERANGE."""
    size = 256
    while True:
        buf = ctypes.create_string_buffer(size)
        try:
            n = fn(*args, buf, size)
        except TiermmError as e:
            if e.errno == errno.ERANGE and size < (1 << 20):
                size *= 4
                continue
            raise
        return buf.raw[:n].decode("utf-8", "replace")


def parse_list(s):
    """'0-3,8' -> [0, 1, 2, 3, 8] (the kernel's list format)."""
    out = []
    for part in s.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-", 1)
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out
