# SPDX-License-Identifier: LGPL-2.1-or-later
"""ctypes mirrors of every public struct of <tiermm.h>, field for field.

Class names are the C struct names. tests/test_layout.py compares each with
the C compiler's offsetof()/sizeof() (a program generated from the headers
at build time), so a header change that is not mirrored here fails the
tests. The ``sz`` member of each struct is set to ``ctypes.sizeof()`` of
the mirror by :func:`new`.
"""

import ctypes
from ctypes import (POINTER, Structure, c_char, c_char_p, c_double, c_int,
                    c_size_t, c_uint, c_uint16, c_uint64, c_void_p)

c_pid_t = c_int

PT_LEVEL_COUNT = 4  # TIERMM_PT_LEVEL__COUNT
PT_SKIP_COUNT = 8  # TIERMM_PT_SKIP__COUNT

# typedef void (*tiermm_print_fn)(enum tiermm_log_level, const char *, void *)
tiermm_print_fn = ctypes.CFUNCTYPE(None, c_int, c_char_p, c_void_p)
# typedef void (*tiermm_progress_fn)(const char *what, int done, int total, void *ctx)
tiermm_progress_fn = ctypes.CFUNCTYPE(None, c_char_p, c_int, c_int, c_void_p)


# ---- caps.h ---------------------------------------------------------------

class tiermm_caps_opts(Structure):
    _fields_ = [
        ("sz", c_size_t),
        ("fsroot", c_char_p),
        ("flags", c_uint),
    ]


class tiermm_caps_node(Structure):
    _fields_ = [
        ("sz", c_size_t),
        ("os_index", c_int),
        ("nr_cpus", c_int),
        ("has_memory", c_int),
        ("memory_tier", c_int),
        ("tier_rank", c_int),
        ("pad0", c_int),
        ("mem_total", c_uint64),
        ("read_latency_ns", ctypes.c_uint32),
        ("write_latency_ns", ctypes.c_uint32),
        ("read_bandwidth_mbps", ctypes.c_uint32),
        ("write_bandwidth_mbps", ctypes.c_uint32),
    ]


# ---- topo.h ---------------------------------------------------------------

class tiermm_topo_opts(Structure):
    _fields_ = [
        ("sz", c_size_t),
        ("fsroot", c_char_p),
        ("xml_path", c_char_p),
        ("probes", c_uint),
        ("budget_s", c_double),
        ("progress", tiermm_progress_fn),
        ("progress_ctx", c_void_p),
        ("tiers", c_char_p),
        ("flags", c_uint),
    ]


class tiermm_node_info(Structure):
    _fields_ = [
        ("sz", c_size_t),
        ("os_index", c_int),
        ("kind", c_int),
        ("nr_cpus", c_int),
        ("tier", c_int),
        ("capacity", c_uint64),
    ]


class tiermm_cpugroups_info(Structure):
    _fields_ = [
        ("sz", c_size_t),
        ("nr_groups", c_int),
        ("validated", c_int),
        ("agrees_with_nodes", c_int),
        ("partial", c_int),
        ("confidence", c_double),
        ("max_in_group_ns", c_double),
        ("min_cross_group_ns", c_double),
        ("pairs_measured", c_uint64),
    ]


# ---- place.h --------------------------------------------------------------

class tiermm_move_result(Structure):
    _fields_ = [
        ("sz", c_size_t),
        ("pages", c_uint64),
        ("moved", c_uint64),
        ("already_there", c_uint64),
        ("not_present", c_uint64),
        ("failed", c_uint64),
        ("failed_busy", c_uint64),
        ("failed_nomem", c_uint64),
        ("failed_fault", c_uint64),
        ("failed_other", c_uint64),
        ("skipped", c_uint64),
        ("first_failed", c_uint64),
        ("first_error", c_int),
        ("retries", c_uint),
        ("huge", c_uint64),
        ("syscalls", c_uint64),
        ("elapsed_ns", c_uint64),
    ]


# ---- runtime.h ------------------------------------------------------------

class tiermm_runtime_opts(Structure):
    _fields_ = [
        ("sz", c_size_t),
        ("pid", c_pid_t),
        ("backend", c_char_p),
        ("budget_bytes", c_uint64),
        ("budget_share", c_double),
        ("epoch_ms", c_uint),
        ("rate_limit_mib_s", c_double),
        ("cpu_quota", c_double),
        ("fast_tier", c_int),
        ("slow_tier", c_int),
        ("topo", c_void_p),
        ("flags", c_uint),
        ("backoff_max", c_uint),
    ]


class tiermm_runtime_stats(Structure):
    _fields_ = [
        ("sz", c_size_t),
        ("state", c_int),
        ("error", c_int),
        ("pid", c_pid_t),
        ("fast_tier", c_int),
        ("slow_tier", c_int),
        ("backend", c_char * 16),
        ("backend_why", c_char * 512),
        ("error_msg", c_char * 256),
        ("epochs", c_uint64),
        ("promoted_pages", c_uint64),
        ("promoted_bytes", c_uint64),
        ("demoted_pages", c_uint64),
        ("demoted_bytes", c_uint64),
        ("moved_bytes", c_uint64),
        ("failed_pages", c_uint64),
        ("failed_busy", c_uint64),
        ("failed_nomem", c_uint64),
        ("failed_fault", c_uint64),
        ("failed_other", c_uint64),
        ("hot_set_bytes", c_uint64),
        ("budget_bytes", c_uint64),
        ("fast_bytes", c_uint64),
        ("resident_bytes", c_uint64),
        ("hinted_bytes", c_uint64),
        ("samples", c_uint64),
        ("samples_lost", c_uint64),
        ("samples_missed", c_uint64),
        ("ranges", c_uint64),
        ("splits", c_uint64),
        ("merges", c_uint64),
        ("rate_limited", c_uint64),
        ("quota_limited", c_uint64),
        ("cpu_sampling_s", c_double),
        ("cpu_classify_s", c_double),
        ("cpu_migrate_s", c_double),
        ("wall_s", c_double),
        ("fast_access_share", c_double),
        ("backoff", c_uint),
        ("backoff_epochs", c_uint64),
        ("scan_window_ms", c_double),
    ]


# ---- pt.h -----------------------------------------------------------------

class tiermm_pt_node(Structure):
    _fields_ = [
        ("sz", c_size_t),
        ("node", c_int),
        ("online", c_int),
        ("tables", c_uint64 * PT_LEVEL_COUNT),
        ("leaf_entries", c_uint64),
        ("data_pages", c_uint64),
        ("leaf_local", c_double),
        ("data_share", c_double),
    ]


class tiermm_pt_summary(Structure):
    _fields_ = [
        ("sz", c_size_t),
        ("pid", c_int),
        ("whole", c_int),
        ("start", c_uint64),
        ("len", c_uint64),
        ("tables", c_uint64 * PT_LEVEL_COUNT),
        ("tables_local", c_uint64 * PT_LEVEL_COUNT),
        ("tables_remote", c_uint64 * PT_LEVEL_COUNT),
        ("tables_empty", c_uint64 * PT_LEVEL_COUNT),
        ("leaf_huge", c_uint64 * PT_LEVEL_COUNT),
        ("leaf_entries", c_uint64),
        ("data_pages", c_uint64),
        ("data_node", c_int),
        ("leaf_node", c_int),
        # Added after 0.2.0: page-table replicas.
        ("replicas", c_int),
        ("replica_groups", c_int),
        ("replica_remote", c_uint64),
    ]


class tiermm_pt_replica(Structure):
    _fields_ = [
        ("sz", c_size_t),
        ("slot", c_int),
        ("group", c_int),
        ("tables", c_uint64 * PT_LEVEL_COUNT),
        ("local", c_uint64 * PT_LEVEL_COUNT),
    ]


class tiermm_pt_migrate_result(Structure):
    _fields_ = [
        ("sz", c_size_t),
        ("moved", c_uint64 * PT_LEVEL_COUNT),
        ("skipped", c_uint64 * PT_SKIP_COUNT),
        ("start", c_uint64),
        ("len", c_uint64),
    ]


class tiermm_ab_scan_opts(Structure):
    _fields_ = [
        ("sz", c_size_t),
        ("flags", c_uint),
        ("max_pages", c_uint64),
    ]


class tiermm_ab_batch(Structure):
    _fields_ = [
        ("sz", c_size_t),
        ("base", c_uint64),
        ("start", c_uint64),
        ("end", c_uint64),
        ("scanned", c_uint64),
        ("accessed", c_uint64),
        ("bitmap", POINTER(c_uint64)),
        ("counts", POINTER(c_uint16)),
        ("nr", c_size_t),
    ]


# Every mirrored struct, by C name (the layout test walks this).
STRUCTS = {cls.__name__: cls for cls in (
    tiermm_caps_opts, tiermm_caps_node,
    tiermm_topo_opts, tiermm_node_info, tiermm_cpugroups_info,
    tiermm_move_result,
    tiermm_runtime_opts, tiermm_runtime_stats,
    tiermm_pt_node, tiermm_pt_summary, tiermm_pt_replica, tiermm_pt_migrate_result,
    tiermm_ab_scan_opts, tiermm_ab_batch,
)}


def new(cls, **fields):
    """A zeroed cls with sz = sizeof(cls) and the given fields set."""
    s = cls()
    s.sz = ctypes.sizeof(cls)
    for k, v in fields.items():
        setattr(s, k, v)
    return s
