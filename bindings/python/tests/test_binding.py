# SPDX-License-Identifier: LGPL-2.1-or-later
"""The binding on the host (label unit): whatever NUMA layout the machine
has (CI: one node, one tier, no tiermm.ko, no usable hotness backend), plus
captured multi-node machines from tests/fixtures (TIERMM_FIXTURES).

Expectations that depend on the machine are taken from caps() and the
live topology, never assumed, and each such test asserts one definite
outcome for the machine it runs on.
"""

import array
import ctypes
import errno
import gc
import mmap
import os
import pathlib
import pickle
import tempfile
import threading
import unittest

import tiermm
from tiermm import Cap, CapState, Hint, TiermmError

PAGE = mmap.PAGESIZE
FIXTURES = os.environ.get("TIERMM_FIXTURES")


def _filled_mmap(pages, byte=b"\x5a"):
    m = mmap.mmap(-1, pages * PAGE, flags=mmap.MAP_PRIVATE)
    m[:] = byte * (pages * PAGE)
    return m


def _mapped(addr):
    """True when addr is inside a mapping of this process."""
    with open("/proc/self/maps") as f:
        for line in f:
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            if lo <= addr < hi:
                return True
    return False


class Machine:
    """What the live machine offers, from the library's own probes."""
    topo = tiermm.Topology()
    caps = tiermm.caps()
    nodes = [n for n in topo.nodes if n.capacity]
    node0 = nodes[0].os_index
    nr_tiers = topo.nr_tiers
    module = caps.state(Cap.MODULE) is CapState.PRESENT


class TestLibrary(unittest.TestCase):
    def test_loaded_from_build_tree(self):
        want = os.environ.get("TIERMM_EXPECT_LIBRARY")
        if not want:
            self.skipTest("TIERMM_EXPECT_LIBRARY is not set (run through ctest)")
        self.assertEqual(os.path.realpath(tiermm.library_path), os.path.realpath(want))

    def test_version(self):
        src = os.environ.get("TIERMM_SRCDIR")
        v = tiermm.version()
        self.assertRegex(v, r"^\d+\.\d+\.\d+")
        self.assertEqual(".".join(map(str, tiermm.version_info)), v.split("-")[0])
        if src:
            self.assertEqual(v, pathlib.Path(src, "VERSION").read_text().split()[0])

    def test_all_names_exist(self):
        for name in tiermm.__all__:
            self.assertTrue(hasattr(tiermm, name), name)


class TestErrors(unittest.TestCase):
    def test_error_is_oserror_with_errno_and_message(self):
        missing = "/nonexistent/tiermm-cache.xml"
        with self.assertRaises(TiermmError) as cm:
            tiermm.Topology(xml=missing)
        e = cm.exception
        self.assertIsInstance(e, OSError)
        self.assertEqual(e.errno, errno.ENOENT)
        self.assertEqual(e.errno_name, "ENOENT")
        self.assertEqual(e.function, "tiermm_topo_load")
        self.assertIn(missing, e.strerror)           # tiermm_errmsg(), not strerror(3)
        self.assertEqual(e.strerror, e.message)
        self.assertEqual(e.generic, tiermm.strerror(errno.ENOENT))
        self.assertIn("[Errno %d ENOENT]" % errno.ENOENT, str(e))
        self.assertEqual(tiermm.errmsg(), e.message)  # still this thread's last failure

    def test_errmsg_is_per_thread(self):
        with self.assertRaises(TiermmError) as cm:
            tiermm.Topology(xml="/nonexistent/a.xml")
        other = []

        def fail_elsewhere():
            try:
                tiermm.Topology(xml="/nonexistent/b.xml")
            except TiermmError as e:
                other.append(e.message)
        t = threading.Thread(target=fail_elsewhere)
        t.start()
        t.join()
        self.assertIn("b.xml", other[0])
        self.assertIn("a.xml", tiermm.errmsg())
        self.assertIn("a.xml", cm.exception.message)

    def test_einval_from_library(self):
        with self.assertRaises(TiermmError) as cm:
            tiermm.Topology(probes=tiermm.Probe.LATENCY, xml="/nonexistent.xml")
        self.assertEqual(cm.exception.errno, errno.EINVAL)
        self.assertTrue(cm.exception.message)

    def test_pickle(self):
        e = TiermmError(errno.ENODEV, "no module", "tiermm_pt_stat")
        e2 = pickle.loads(pickle.dumps(e))
        self.assertEqual((e2.errno, e2.message, e2.function), (e.errno, e.message, e.function))
        self.assertEqual(str(e2), str(e))

    def test_set_print_receives_failures(self):
        got = []
        tiermm.set_print(lambda level, msg: got.append((level, msg)), tiermm.LogLevel.WARN)
        try:
            with self.assertRaises(TiermmError):
                tiermm.Topology(xml="/nonexistent/logged.xml")
        finally:
            tiermm.set_print(None)
        self.assertTrue(any(lvl is tiermm.LogLevel.WARN and "logged.xml" in m for lvl, m in got),
                        got)
        n = len(got)
        with self.assertRaises(TiermmError):
            tiermm.Topology(xml="/nonexistent/quiet.xml")
        self.assertEqual(len(got), n)
        with self.assertRaises(ValueError):
            tiermm.set_print(print, 7)


class TestCaps(unittest.TestCase):
    def test_every_feature(self):
        c = tiermm.caps()
        self.assertIs(c, tiermm.caps())  # the library's cached probes
        infos = list(c)
        self.assertEqual([i.cap for i in infos], list(Cap))
        for i in infos:
            self.assertIsInstance(i.state, CapState)
            self.assertEqual(i.name, tiermm.cap_name(i.cap))
            self.assertTrue(i.detail)
            self.assertTrue(i.help)
        self.assertEqual(tiermm.cap_name(Cap.MOVE_PAGES), "move_pages")
        self.assertIn("move_pages", c.as_dict())
        with self.assertRaises(ValueError):
            tiermm.cap_name(99)
        with self.assertRaises(TiermmError) as cm:
            c.state(99)
        self.assertEqual(cm.exception.errno, errno.EINVAL)

    def test_numa_and_nodes(self):
        c = tiermm.caps()
        self.assertIs(c.state(Cap.NUMA), CapState.PRESENT)
        nodes = c.nodes
        self.assertEqual([n.os_index for n in nodes], [n.os_index for n in Machine.topo.nodes])
        self.assertTrue(any(n.has_memory and n.mem_total > 0 for n in nodes))
        self.assertTrue(all(isinstance(n.cpus, str) for n in nodes))

    def test_module(self):
        c = tiermm.caps()
        if Machine.module:
            api, feat = c.module()
            self.assertGreaterEqual(api, 2)
            self.assertIsInstance(feat, int)
        else:
            with self.assertRaises(TiermmError) as cm:
                c.module()
            self.assertEqual(cm.exception.errno, errno.ENODEV)
            self.assertIn("tiermm.ko", cm.exception.message)

    def test_json(self):
        import json
        d = json.loads(tiermm.caps().to_json())
        self.assertIn("move_pages", d["features"])

    @unittest.skipUnless(FIXTURES, "TIERMM_FIXTURES is not set")
    def test_captured_machine(self):
        with tiermm.Caps(fsroot=os.path.join(FIXTURES, "fakeheteromemtiers")) as c:
            self.assertIs(c.state(Cap.HMAT), CapState.PRESENT)
            self.assertEqual(len(c.nodes), 7)
            # probes that need the running kernel are unknown on a capture
            self.assertIs(c.state(Cap.MOVE_PAGES), CapState.UNKNOWN)
        with self.assertRaises(ValueError):
            c.state(Cap.NUMA)


class TestTopology(unittest.TestCase):
    def test_live(self):
        with tiermm.Topology() as t:
            self.assertEqual(t.origin, "live")
            nodes = t.nodes
            self.assertEqual(len(nodes), t.nr_nodes)
            self.assertGreaterEqual(len(nodes), 1)
            tiers = t.tiers
            self.assertEqual(len(tiers), t.nr_tiers)
            on_tiers = sorted(n for tier in tiers for n in tier.nodes)
            self.assertEqual(on_tiers, sorted(n.os_index for n in nodes if n.capacity))
            for n in nodes:
                self.assertIsInstance(n.kind, tiermm.MemKind)
                self.assertEqual(t.node_index(n.os_index), nodes.index(n))
                self.assertEqual(t.node_by_os_index(n.os_index), n)
                if n.capacity:
                    self.assertIn(n.os_index, tiers[n.tier].nodes)
            self.assertIsInstance(t.tier_source, tiermm.TierSource)
            self.assertIsInstance(t.tier_conflicts, str)
            self.assertEqual(t.cpugroups().nr_groups, 0)  # not probed
        self.assertTrue(t.closed)
        with self.assertRaises(ValueError):
            t.nodes
        t.close()  # idempotent

    def test_node_index_enoent(self):
        with self.assertRaises(TiermmError) as cm:
            Machine.topo.node_index(4095)
        self.assertEqual(cm.exception.errno, errno.ENOENT)

    def test_distance_live(self):
        t = Machine.topo
        try:
            d = t.distance(Machine.node0, Machine.node0)
        except TiermmError as e:   # a machine whose firmware gives no SLIT
            self.assertEqual(e.errno, errno.ENODATA)
            self.assertEqual(t.distances(), {})
        else:
            self.assertEqual(d, 10.0)
            self.assertEqual(t.best_target(Machine.node0), Machine.node0)
        with self.assertRaises(TiermmError) as cm:
            t.distance(Machine.node0, 4095)
        self.assertIn(cm.exception.errno, (errno.ENOENT, errno.ENODATA))
        with self.assertRaises(TiermmError) as cm:
            t.distance(0, 0, 99)
        self.assertEqual(cm.exception.errno, errno.EINVAL)

    @unittest.skipUnless(FIXTURES, "TIERMM_FIXTURES is not set")
    def test_captured_tiers_and_distances(self):
        # tests/unit/test_topo.c knows this machine: HBM 2,4 / DRAM 0,1 / slow 6,8,9
        with tiermm.Topology(fsroot=os.path.join(FIXTURES, "fakeheteromemtiers")) as t:
            self.assertEqual([x.nodes for x in t.tiers], [[2, 4], [0, 1], [6, 8, 9]])
            self.assertIs(t.tier_source, tiermm.TierSource.HMAT)
            self.assertIs(t.node_by_os_index(2).kind, tiermm.MemKind.HBM)
            self.assertEqual(t.distance(0, 0), 10.0)
            self.assertEqual(t.distance(0, 6), 20.0)
            self.assertEqual(t.best_target(0), 0)
            bw = tiermm.Metric.FW_READ_BANDWIDTH
            self.assertEqual((t.distance(0, 0, bw), t.distance(0, 8, bw)), (1000.0, 100.0))
            self.assertEqual(t.best_target(0, bw), 0)
            with self.assertRaises(TiermmError) as cm:
                t.distance(0, 2, bw)     # HMAT gives no value for this pair
            self.assertEqual(cm.exception.errno, errno.ENODATA)
            self.assertIn((0, 8), t.distances(bw))
            self.assertNotIn((0, 2), t.distances(bw))
            self.assertEqual(len(t.distances()), 49)
            self.assertTrue(t.origin.startswith("fsroot "))
            with tempfile.TemporaryDirectory() as d:
                xml = os.path.join(d, "topo.xml")
                t.export_xml(xml)
                with tiermm.Topology(xml=xml) as t2:
                    self.assertEqual([x.nodes for x in t2.tiers], [x.nodes for x in t.tiers])
                    self.assertTrue(t2.origin.startswith("xml "))
            import json
            self.assertEqual(len(json.loads(t.to_json())["nodes"]), 7)
        with tiermm.Topology(fsroot=os.path.join(FIXTURES, "fakeheteromemtiers"),
                             tiers="0-2,4;6,8-9") as t:
            self.assertIs(t.tier_source, tiermm.TierSource.USER)
            self.assertEqual([x.nodes for x in t.tiers], [[0, 1, 2, 4], [6, 8, 9]])

    def test_bad_options(self):
        with self.assertRaises(TiermmError) as cm:
            tiermm.Topology(budget_s=-1)
        self.assertEqual(cm.exception.errno, errno.EINVAL)
        with self.assertRaises(TiermmError) as cm:
            tiermm.Topology(probes=64)
        self.assertEqual(cm.exception.errno, errno.EINVAL)
        self.assertIn("probes", cm.exception.message)
        with self.assertRaises(TypeError):
            tiermm.Topology(progress=5)
        with self.assertRaises(ValueError):
            tiermm.Topology(xml="a\0b")


class TestBuffers(unittest.TestCase):
    def test_kinds_of_buffers(self):
        m = _filled_mmap(4)
        ba = bytearray(b"\1" * (3 * PAGE))
        arr = array.array("d", [1.0] * 4096)
        for buf, pages in ((m, 4), (memoryview(m)[PAGE:3 * PAGE], 2), (ba, None), (arr, None),
                           ((ctypes.c_char * 100)(), None)):
            with self.subTest(type=type(buf).__name__):
                r = tiermm.residency(buf)
                if pages is not None:
                    self.assertEqual(r.pages, pages)
                self.assertEqual(r.pages, sum(r.nodes.values()) + r.not_present)
                tiermm.hint(buf, Hint.HOT)
                tiermm.hint(buf, Hint.DEFAULT)
        s, n = tiermm.address_range(m)
        self.assertEqual((s % PAGE, n), (0, 4 * PAGE))
        m.close()

    def test_unaligned_buffer_covers_its_pages(self):
        m = _filled_mmap(4)
        view = memoryview(m)[100:PAGE + 200]  # touches pages 0 and 1
        s, n = tiermm.address_range(view)
        self.assertEqual(n, 2 * PAGE)
        self.assertEqual(tiermm.residency(view).pages, 2)
        view.release()
        m.close()

    def test_refused_buffers(self):
        ro = mmap.mmap(-1, PAGE, access=mmap.ACCESS_READ)
        cases = [(b"bytes", TypeError), ("str", TypeError), (memoryview(b"abc"), TypeError),
                 (ro, TypeError), (object(), TypeError), (42, TypeError),
                 (bytearray(), ValueError), (memoryview(bytearray(100))[::2], ValueError)]
        for buf, exc in cases:
            with self.subTest(buf=type(buf).__name__):
                for call in (lambda: tiermm.move(buf, node=Machine.node0),
                             lambda: tiermm.residency(buf),
                             lambda: tiermm.hint(buf, Hint.HOT)):
                    with self.assertRaises(exc) as cm:
                        call()
                    self.assertIn("tiermm", str(cm.exception))
        with self.assertRaisesRegex(TypeError, "read-only"):
            tiermm.move(ro, node=Machine.node0)
        ro.close()

    def test_buffer_is_held_during_the_call(self):
        ba = bytearray(PAGE)
        tiermm.residency(ba)
        ba.extend(b"x" * PAGE)  # no export left behind
        m = _filled_mmap(1)
        tiermm.move(m, node=Machine.node0)
        m.close()               # ditto


class TestPlacement(unittest.TestCase):
    def test_move_to_node(self):
        m = _filled_mmap(64)
        r = tiermm.move(m, node=Machine.node0)
        self.assertIsInstance(r, tiermm.MoveResult)
        self.assertEqual(r.pages, 64)
        self.assertEqual(r.moved + r.already_there + r.not_present + r.failed + r.skipped, 64)
        self.assertEqual(r.moved + r.already_there, 64)
        self.assertTrue(r.complete)
        self.assertEqual(r.not_moved, {})
        self.assertIsNone(r.first_failed_page)
        self.assertEqual((r.start, r.length), tiermm.address_range(m))
        res = tiermm.residency(m)
        self.assertEqual(res.nodes, {Machine.node0: 64})
        self.assertEqual(res.on_node(Machine.node0), 64)
        self.assertEqual(res.not_present, 0)
        t = Machine.topo.node_by_os_index(Machine.node0).tier
        self.assertEqual(res.on_tier(t), 64)
        self.assertEqual(sum(res.tiers), 64)
        # a NodeInfo works as the target too, and strict moves complete
        r = tiermm.move(m, Machine.topo.node_by_os_index(Machine.node0), strict=True)
        self.assertEqual(r.already_there, 64)
        m.close()

    def test_not_present_pages(self):
        m = mmap.mmap(-1, 16 * PAGE, flags=mmap.MAP_PRIVATE)
        m[0:PAGE] = b"x" * PAGE
        r = tiermm.move(m, node=Machine.node0)
        self.assertEqual(r.not_present, 15)
        self.assertEqual(r.not_moved, {"not_present": 15})
        res = tiermm.residency(m, tiers=False)
        self.assertEqual((res.not_present, sum(res.nodes.values()), res.tiers), (15, 1, None))
        m.close()

    def test_move_to_tier(self):
        m = _filled_mmap(8)
        r = tiermm.move(m, tier=0)
        self.assertEqual(r.moved + r.already_there, 8)
        self.assertEqual(tiermm.residency(m).tiers[0], 8)
        r = tiermm.move(m, tier=Machine.topo.tiers[0], topology=Machine.topo)
        self.assertEqual(r.already_there, 8)
        with self.assertRaises(TiermmError) as cm:
            tiermm.move(m, tier=Machine.nr_tiers)
        self.assertEqual(cm.exception.errno, errno.ENOENT)
        m.close()

    def test_bad_targets(self):
        m = _filled_mmap(2)
        with self.assertRaises(TiermmError) as cm:
            tiermm.move(m, node=-3)
        self.assertEqual(cm.exception.errno, errno.EINVAL)
        self.assertEqual(cm.exception.function, "tiermm_move")
        with self.assertRaises(TiermmError) as cm:
            tiermm.move(m, node=1000)  # no such node (or no memory there)
        self.assertEqual(cm.exception.errno, errno.ENODEV)
        self.assertIn("1000", cm.exception.message)
        with self.assertRaises(TypeError):
            tiermm.move(m)
        with self.assertRaises(TypeError):
            tiermm.move(m, node=0, tier=0)
        m.close()

    def test_unmapped_range(self):
        m = _filled_mmap(2)
        start, length = tiermm.address_range(m)
        m.close()
        if _mapped(start):
            self.skipTest("the address was reused meanwhile")
        for call in (lambda: tiermm.move_range(start, length, node=Machine.node0),
                     lambda: tiermm.residency_range(start, length)):
            with self.assertRaises(TiermmError) as cm:
                call()
            self.assertEqual(cm.exception.errno, errno.EFAULT)
        with self.assertRaises(TiermmError) as cm:
            tiermm.move_range(start + 1, length, node=Machine.node0)
        self.assertEqual(cm.exception.errno, errno.EINVAL)  # not page aligned

    def test_other_process(self):
        with self.assertRaises(TiermmError) as cm:
            tiermm.residency_range(PAGE, PAGE, pid=2 ** 22 + 12345)
        self.assertEqual(cm.exception.errno, errno.ESRCH)

    def test_hints(self):
        m = _filled_mmap(4)
        for h in Hint:
            with self.subTest(hint=h.name):
                tiermm.hint(m, h, record_only=h in (Hint.PIN_FAST, Hint.PIN_SLOW))
                self.assertEqual(tiermm.hint_name(h), h.name.lower())
        tiermm.hint(m, Hint.PIN_FAST)  # moves to tier 0 now, best effort
        self.assertEqual(tiermm.residency(m).tiers[0], 4)
        tiermm.hint(m, Hint.DEFAULT)
        with self.assertRaises(ValueError):
            tiermm.hint(m, 42)
        with self.assertRaises(ValueError):
            tiermm.hint_name(42)
        m.close()


class TestAllocTier(unittest.TestCase):
    def test_alloc_tier0(self):
        mem = tiermm.alloc_tier(10 * PAGE + 1, 0)
        self.assertIsInstance(mem, tiermm.TierMemory)
        self.assertIsInstance(mem, mmap.mmap)
        self.assertEqual(len(mem), 10 * PAGE + 1)
        self.assertEqual(mem.address % PAGE, 0)
        self.assertEqual(mem.tier, 0)
        self.assertEqual(tiermm.address_range(mem), (mem.address, 11 * PAGE))
        self.assertEqual(mem[0:4], b"\0\0\0\0")  # zeroed
        mem[0:4] = b"abcd"
        view = memoryview(mem)
        self.assertEqual((view.format, view.readonly), ("B", False))
        view[PAGE:PAGE + 2] = b"xy"
        view.release()
        self.assertEqual(bytes(mem[PAGE:PAGE + 2]), b"xy")
        res = tiermm.residency(mem)
        self.assertEqual(res.pages, 11)
        self.assertEqual(res.tiers[0], 2)   # the two pages written
        self.assertEqual(res.not_present, 9)
        mem[:] = b"\1" * len(mem)
        res = tiermm.residency(mem)
        self.assertEqual(res.tiers[0], 11)
        self.assertTrue(set(res.nodes) <= set(Machine.topo.tier_nodes(0)))
        tiermm.hint(mem, Hint.HOT)
        addr = mem.address
        mem.close()
        self.assertTrue(mem.closed)
        self.assertFalse(_mapped(addr))
        with self.assertRaises(ValueError):
            mem[0]
        with self.assertRaises(ValueError):
            tiermm.residency(mem)
        mem.close()  # idempotent

    def test_populate_and_context(self):
        with tiermm.alloc_tier(32 * PAGE, tiermm.TierInfo(0, []), populate=True) as mem:
            res = tiermm.residency(mem)
            self.assertEqual((res.tiers[0], res.not_present), (32, 0))
            addr = mem.address
        self.assertTrue(mem.closed)
        self.assertFalse(_mapped(addr))

    def test_freed_when_unreferenced(self):
        mem = tiermm.alloc_tier(4 * PAGE)
        view = memoryview(mem)
        addr = mem.address
        with self.assertRaises(BufferError):
            mem.close()               # a view still uses it
        self.assertFalse(mem.closed)
        del mem
        gc.collect()
        self.assertTrue(_mapped(addr))  # the view keeps it alive
        view[0] = 7
        view.release()
        del view
        gc.collect()
        self.assertFalse(_mapped(addr))

    def test_ctypes_view_blocks_close(self):
        mem = tiermm.alloc_tier(PAGE)
        c = (ctypes.c_char * PAGE).from_buffer(mem)
        with self.assertRaises(BufferError):
            mem.close()
        del c
        mem.close()

    def test_not_resizable_or_picklable(self):
        with tiermm.alloc_tier(PAGE) as mem:
            with self.assertRaises(OSError):
                mem.resize(2 * PAGE)
            with self.assertRaises(TypeError):
                pickle.dumps(mem)

    def test_bad_input(self):
        with self.assertRaises(ValueError):
            tiermm.alloc_tier(0)
        with self.assertRaises(ValueError):
            tiermm.alloc_tier(-PAGE)
        with self.assertRaises(TiermmError) as cm:
            tiermm.alloc_tier(PAGE, Machine.nr_tiers)
        self.assertEqual(cm.exception.errno, errno.ENOENT)
        self.assertEqual(cm.exception.function, "tiermm_alloc_tier")
        self.assertIn("tier", cm.exception.message)
        with self.assertRaises(OSError) as cm:
            tiermm.alloc_tier(1 << 62)  # more than the machine has: mmap fails
        self.assertEqual(cm.exception.errno, errno.ENOMEM)

    def test_preferred(self):
        c = tiermm.caps()
        if c.present(Cap.MPOL_PREFERRED_MANY):
            with tiermm.alloc_tier(2 * PAGE, preferred=True, populate=True) as mem:
                self.assertEqual(tiermm.residency(mem).tiers[0], 2)
        else:
            with self.assertRaises(TiermmError) as cm:
                tiermm.alloc_tier(PAGE, preferred=True)
            self.assertEqual(cm.exception.errno, errno.ENOTSUP)


class TestRuntime(unittest.TestCase):
    def test_start_on_this_host(self):
        rt = tiermm.Runtime()
        if Machine.nr_tiers >= 2 and _backend_usable():
            with rt:
                self.assertTrue(rt.running)
                self.assertEqual(rt.stats().state, tiermm.RuntimeState.RUNNING)
            self.assertFalse(rt.running)
            return
        # One memory tier or no hotness backend: a clean ENOTSUP with the reason.
        with self.assertRaises(TiermmError) as cm:
            rt.start()
        e = cm.exception
        self.assertEqual(e.errno, errno.ENOTSUP, e)
        self.assertEqual(e.function, "tiermm_runtime_start")
        self.assertTrue("tier" in e.message or "backend" in e.message, e.message)
        self.assertFalse(rt.running)
        with self.assertRaises(TiermmError):
            with tiermm.Runtime(backend="auto"):
                self.fail("the with block must not run")
        with self.assertRaises(ValueError):
            rt.stats()
        rt.stop()  # a no-op when not running

    def test_bad_options(self):
        cases = [dict(budget_share=2.0), dict(budget_share=-0.5),
                 dict(budget_bytes=1 << 20, budget_share=0.5), dict(backend="nonexistent"),
                 dict(epoch_ms=1), dict(rate_limit_mib_s=-1.0), dict(cpu_quota=-1.0),
                 dict(no_rate_limit=True, rate_limit_mib_s=5.0), dict(pid=-1)]
        for kw in cases:
            with self.subTest(**kw):
                with self.assertRaises(TiermmError) as cm:
                    tiermm.Runtime(**kw).start()
                self.assertEqual(cm.exception.errno, errno.EINVAL, cm.exception)
        with self.assertRaises(TiermmError) as cm:
            tiermm.Runtime(pid=2 ** 22 + 12345).start()
        self.assertEqual(cm.exception.errno, errno.ESRCH)

    def test_topology_not_closed_under_a_runtime(self):
        t = tiermm.Topology()
        with self.assertRaises(TiermmError):
            tiermm.Runtime(topology=t, budget_share=2.0).start()
        t.close()  # a failed start leaves it free


def _backend_usable():
    c = tiermm.caps()
    return (c.present(Cap.MODULE) or c.present(Cap.DAMON_VADDR) or
            c.present(Cap.PERF_MEM_SAMPLING))


class TestPageTables(unittest.TestCase):
    def test_without_module(self):
        if Machine.module:
            self.skipTest("tiermm.ko is loaded here (the guest tests cover it)")
        calls = {"pt_stat": lambda: tiermm.pt_stat(),
                 "pt_dump": lambda: tiermm.pt_dump(),
                 "pt_migrate": lambda: tiermm.pt_migrate(Machine.node0),
                 "pt_migrate auto": lambda: tiermm.pt_migrate("auto"),
                 "ab_scan": lambda: tiermm.AbScanner()}
        for name, call in calls.items():
            with self.subTest(call=name):
                with self.assertRaises(TiermmError) as cm:
                    call()
                self.assertEqual(cm.exception.errno, errno.ENODEV)
                self.assertIn("tiermm.ko", cm.exception.message)

    def test_names_and_input(self):
        self.assertEqual([tiermm.pt_level_name(x) for x in tiermm.PtLevel],
                         ["pte", "pmd", "pud", "pgd"])
        self.assertEqual(tiermm.pt_skip_name(tiermm.PtSkip.NO_DATA), "no-data")
        with self.assertRaises(ValueError):
            tiermm.pt_migrate("nearest")
        with self.assertRaises(ValueError):
            tiermm.pt_level_name(9)
        with self.assertRaises(TiermmError) as cm:
            tiermm.pt_stat(0, 4097, 4096)   # not 4096-aligned: rejected before the module
        self.assertEqual(cm.exception.errno, errno.EINVAL)

    def test_replication_input(self):
        with self.assertRaises(ValueError):
            tiermm.pt_replicate([-1])
        with self.assertRaises(TiermmError) as cm:
            tiermm.pt_replicate([0], pid=-3)
        self.assertEqual(cm.exception.errno, errno.EINVAL)
        self.assertEqual(cm.exception.function, "tiermm_pt_replicate")
        with self.assertRaises(TiermmError) as cm:
            tiermm.pt_replicate([5000])     # no such node, whatever the kernel
        self.assertEqual(cm.exception.errno, errno.EINVAL)
        self.assertIn("node 5000", cm.exception.message)

    def test_replication_without_kernel(self):
        if tiermm.caps().present(Cap.PT_REPLICATION):
            self.skipTest("this kernel has page-table replication (the guest tests cover it)")
        for name, call in {"pt_replicate": lambda: tiermm.pt_replicate([Machine.node0]),
                           "pt_replicate none": lambda: tiermm.pt_replicate(None),
                           "pt_replication": tiermm.pt_replication,
                           "pt_replication pid": lambda: tiermm.pt_replication(os.getpid())
                           }.items():
            with self.subTest(call=name):
                with self.assertRaises(TiermmError) as cm:
                    call()
                self.assertEqual(cm.exception.errno, errno.ENOTSUP)
                self.assertIn("lacks tiermm's page-table replication patches",
                              cm.exception.message)


if __name__ == "__main__":
    unittest.main()
