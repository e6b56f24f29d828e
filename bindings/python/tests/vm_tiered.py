# SPDX-License-Identifier: LGPL-2.1-or-later
"""The binding in the tiered guest (ctest vm.python; label vm).

tests/vm/run --preset tiered boots two sockets with DRAM nodes 0 and 1
(tier 0) and the CPU-less slow node 2 (tier 1), tiermm.ko loaded. The
guest has no Python of its own: bindings/python/tools/mkguest.py packs the
host's interpreter, the standard-library modules this file and unittest
import (tiermm-python.zip) and the extension modules they load; the
runner, tools/vm-run.sh, starts `python3 -m unittest -v vm_tiered`.

Not named test_*.py: the host's discovery (label unit) leaves it out, and
nothing here skips: on the wrong machine every test fails.
"""

import errno
import json
import mmap
import os
import threading
import time
import unittest

import tiermm
from tiermm import Cap, CapState, Hint, PtLevel, PtLevels, TiermmError

PAGE = mmap.PAGESIZE
MIB = 1 << 20


def buffer(nbytes, fill=None, *, no_thp=True):
    """A private anonymous mmap, its pages faulted in with a pattern."""
    m = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE)
    if no_thp:
        m.madvise(mmap.MADV_NOHUGEPAGE)  # base pages: exact PTE-level checks
    if fill is not None:
        pattern = bytes((fill + i) & 0xFF for i in range(PAGE))
        for off in range(0, nbytes, PAGE):
            m[off:off + PAGE] = pattern
    return m


def intact(m, fill):
    pattern = bytes((fill + i) & 0xFF for i in range(PAGE))
    return all(m[off:off + PAGE] == pattern for off in range(0, len(m), PAGE))


class Tiered(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        preset = os.environ.get("TIERMM_VM_PRESET")
        if preset != "tiered":
            raise AssertionError("vm_tiered needs the tiered guest (TIERMM_VM_PRESET=%r)" % preset)
        cls.topo = tiermm.Topology()

    @classmethod
    def tearDownClass(cls):
        cls.topo.close()

    # ---- topology, caps ----------------------------------------------------

    def test_topology(self):
        t = self.topo
        self.assertEqual([n.os_index for n in t.nodes], [0, 1, 2])
        self.assertEqual([n.nr_cpus for n in t.nodes], [2, 2, 0])
        self.assertEqual([n.cpus for n in t.nodes], [[0, 1], [2, 3], []])
        self.assertEqual([x.nodes for x in t.tiers], [[0, 1], [2]])
        self.assertEqual([n.tier for n in t.nodes], [0, 0, 1])
        self.assertIn(t.tier_source, (tiermm.TierSource.KERNEL, tiermm.TierSource.HMAT))
        self.assertEqual(t.tier_conflicts, "")
        self.assertEqual((t.distance(0, 0), t.distance(0, 2), t.distance(1, 2)), (10, 30, 35))
        # HMAT: Linux exports each node's values for its best (local) initiator only.
        lat = tiermm.Metric.FW_READ_LATENCY
        self.assertEqual((t.distance(0, 0, lat), t.distance(1, 1, lat), t.distance(0, 2, lat)),
                         (80, 80, 240))
        with self.assertRaises(TiermmError) as cm:
            t.distance(0, 1, lat)
        self.assertEqual(cm.exception.errno, errno.ENODATA)
        self.assertEqual((t.best_target(0), t.best_target(1), t.best_target(0, lat)), (0, 1, 0))
        with self.assertRaises(TiermmError) as cm:
            t.distance(2, 0, lat)   # node 2 has no CPUs: no initiator
        self.assertIn(cm.exception.errno, (errno.ENOENT, errno.ENODATA))

    def test_caps(self):
        c = tiermm.caps()
        for cap in (Cap.NUMA, Cap.MOVE_PAGES, Cap.MEMORY_TIERS, Cap.HMAT, Cap.MODULE):
            self.assertIs(c.state(cap), CapState.PRESENT, c.detail(cap))
        api, _ = c.module()
        self.assertGreaterEqual(api, 2)
        self.assertEqual([n.os_index for n in c.nodes], [0, 1, 2])
        self.assertEqual(c.nodes[2].read_latency_ns, 240)

    # ---- placement --------------------------------------------------------

    def test_move_to_slow_tier_and_back(self):
        n = 8 * MIB // PAGE
        m = buffer(8 * MIB, fill=3)
        r = tiermm.move(m, tier=1, topology=self.topo)
        self.assertEqual((r.pages, r.moved + r.already_there, r.failed), (n, n, 0), r)
        res = tiermm.residency(m, self.topo)
        self.assertEqual((res.nodes, res.tiers, res.not_present), ({2: n}, [0, n], 0))
        self.assertTrue(intact(m, 3))
        # Back to tier 0: the node nearest to node 2 is node 0 (SLIT 30 vs 35).
        r = tiermm.move(m, tier=0, topology=self.topo, strict=True)
        self.assertEqual((r.moved, r.complete), (n, True), r)
        res = tiermm.residency(m, self.topo)
        self.assertEqual((res.nodes, res.tiers), ({0: n}, [n, 0]))
        # Node by node, and half a buffer through a memoryview.
        r = tiermm.move(m, node=1)
        self.assertEqual(r.moved, n)
        with memoryview(m) as v:
            tiermm.move(v[:4 * MIB], node=2)
        res = tiermm.residency(m, self.topo)
        self.assertEqual((res.nodes, res.tiers), ({1: n // 2, 2: n // 2}, [n // 2, n // 2]))
        # A page already on a node of the tier stays there.
        r = tiermm.move(m, tier=0, topology=self.topo)
        self.assertEqual((r.already_there, r.moved), (n // 2, n // 2))
        self.assertEqual(tiermm.residency(m, self.topo).nodes, {0: n // 2, 1: n // 2})
        self.assertTrue(intact(m, 3))
        m.close()

    def test_bytearray_moves(self):
        ba = bytearray(os.urandom(MIB))
        before = bytes(ba)
        r = tiermm.move(ba, node=2)
        self.assertEqual(r.moved + r.already_there + r.not_present, r.pages)
        self.assertGreaterEqual(tiermm.residency(ba).on_node(2), MIB // PAGE - 2)
        tiermm.move(ba, node=0)
        self.assertEqual(bytes(ba), before)

    def test_hints_move_pins(self):
        n = 2 * MIB // PAGE
        m = buffer(2 * MIB, fill=9)
        tiermm.move(m, node=0)
        tiermm.hint(m, Hint.PIN_SLOW, record_only=True)   # recorded, nothing moves
        self.assertEqual(tiermm.residency(m).tiers, [n, 0])
        tiermm.hint(m, Hint.PIN_SLOW)                     # moves to the slowest tier now
        self.assertEqual(tiermm.residency(m).tiers, [0, n])
        tiermm.hint(m, Hint.PIN_FAST)
        self.assertEqual(tiermm.residency(m).tiers, [n, 0])
        for h in (Hint.HOT, Hint.COLD, Hint.NO_MIGRATE, Hint.DEFAULT):
            tiermm.hint(m, h)
        self.assertEqual(tiermm.residency(m).tiers, [n, 0])
        self.assertTrue(intact(m, 9))
        m.close()

    def test_alloc_on_slow_tier(self):
        n = 4 * MIB // PAGE
        with tiermm.alloc_tier(4 * MIB, 1, topology=self.topo) as mem:
            self.assertEqual(tiermm.residency(mem).not_present, n)
            mem[:] = b"\xab" * len(mem)
            res = tiermm.residency(mem, self.topo)
            self.assertEqual((res.nodes, res.tiers), ({2: n}, [0, n]))
            self.assertEqual(mem[12345], 0xAB)
        with tiermm.alloc_tier(4 * MIB, 1, populate=True) as mem:
            self.assertEqual(tiermm.residency(mem).nodes, {2: n})
        with tiermm.alloc_tier(4 * MIB, 0, populate=True) as mem:
            res = tiermm.residency(mem)
            self.assertEqual(res.tiers, [n, 0])
            self.assertTrue(set(res.nodes) <= {0, 1})
        with tiermm.alloc_tier(MIB, 1, preferred=True, populate=True) as mem:
            self.assertEqual(tiermm.residency(mem).nodes, {2: MIB // PAGE})

    def test_sparse_buffer_and_errors(self):
        size = 1536 * MIB   # more than node 2 holds, but only 16 pages present
        noreserve = getattr(mmap, "MAP_NORESERVE", 0x4000)  # not in every 3.11 build
        m = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | noreserve)
        m.madvise(mmap.MADV_NOHUGEPAGE)
        with memoryview(m) as v:
            for off in range(0, 16 * PAGE, PAGE):
                v[off] = 1
        r = tiermm.move(m, node=2, strict=True)
        self.assertEqual((r.moved, r.not_present, r.not_moved),
                         (16, size // PAGE - 16, {"not_present": size // PAGE - 16}))
        self.assertEqual(tiermm.residency(m).nodes, {2: 16})
        with self.assertRaises(TiermmError) as cm:
            tiermm.move(m, node=3)
        self.assertEqual(cm.exception.errno, errno.ENODEV)
        with self.assertRaises(TiermmError) as cm:
            tiermm.move(m, tier=2, topology=self.topo)
        self.assertEqual(cm.exception.errno, errno.ENOENT)
        m.close()

    # ---- runtime ----------------------------------------------------------

    def test_runtime_promotes_a_hot_buffer(self):
        hot = buffer(4 * MIB, fill=5)
        n = len(hot) // PAGE
        tiermm.move(hot, node=2)
        self.assertEqual(tiermm.residency(hot).tiers, [0, n])
        stop = threading.Event()

        def hammer():
            with memoryview(hot) as v:
                while not stop.is_set():
                    for off in range(0, len(v), PAGE):
                        v[off] = (v[off] + 1) & 0xFF
                    time.sleep(0.001)  # let the test thread run too
        th = threading.Thread(target=hammer, daemon=True)
        rt = tiermm.Runtime(backend="scan", budget_bytes=64 * MIB, epoch_ms=250,
                            no_cpu_quota=True, topology=self.topo)
        with self.assertRaises(RuntimeError):
            with rt:
                self.topo.close()  # in use by the runtime
        self.assertFalse(rt.running)
        th.start()
        try:
            with rt:
                self.assertTrue(rt.running)
                t0 = time.monotonic()
                fast = 0
                while time.monotonic() - t0 < 60:
                    time.sleep(1)
                    fast = tiermm.residency(hot).tiers[0]
                    s = rt.stats()
                    if fast >= n * 9 // 10 or s.state is not tiermm.RuntimeState.RUNNING:
                        break
                s = rt.stats()
                print("\n# runtime: %s; %d epochs in %.1f s, promoted %d pages, hot buffer "
                      "%d%% on tier 0, %d samples, CPU %.2f s" % (
                          s.backend, s.epochs, s.wall_s, s.promoted_pages, 100 * fast // n,
                          s.samples, s.cpu_s), flush=True)
                self.assertIs(s.state, tiermm.RuntimeState.RUNNING, s.error_msg)
                self.assertEqual((s.backend, s.pid, s.fast_tier, s.slow_tier),
                                 ("scan", 0, 0, 1))  # pid as given: 0, this process
                self.assertGreaterEqual(s.epochs, 2)
                self.assertGreater(s.samples, 0)
                self.assertGreaterEqual(s.promoted_pages, n // 2)
                self.assertGreaterEqual(fast, n // 2)
                rt.set_budget(8 * MIB)
                rt.set_budget(share=0.5)
                rt.set_budget(16 * MIB)
                e0 = rt.stats().epochs
                deadline = time.monotonic() + 20
                while rt.stats().epochs < e0 + 2 and time.monotonic() < deadline:
                    time.sleep(0.2)
                self.assertEqual(rt.stats().budget_bytes, 16 * MIB)
                with self.assertRaises(TiermmError) as cm:
                    rt.set_budget(share=1.5)
                self.assertEqual(cm.exception.errno, errno.EINVAL)
            self.assertFalse(rt.running)
        finally:
            stop.set()
            th.join()
        rest = bytes((5 + i) & 0xFF for i in range(1, PAGE))
        self.assertTrue(all(hot[off + 1:off + PAGE] == rest for off in range(0, len(hot), PAGE)),
                        "the hot buffer's data survived the moves")
        hot.close()

    # ---- page tables ------------------------------------------------------

    def test_pt_stat_and_migrate(self):
        m = buffer(8 * MIB, fill=1)
        tiermm.move(m, node=0)
        start, length = tiermm.address_range(m)
        # The leaf tables are where the CPU that faulted the buffer in was: node 0 or 1.
        # Gather them on node 0, then move them to node 1.
        tiermm.pt_migrate(0, start=start, length=length, levels=PtLevels.PTE)
        st = tiermm.pt_stat(0, start, length)
        ptes = st.summary.tables[PtLevel.PTE]
        self.assertEqual(st.nodes[0].tables[PtLevel.PTE], ptes)
        # Moving the leaf tables of a range also moves the PTE tables deposited for the
        # transparent huge pages mapped by the same PMD table, inside the range or not:
        # the count may exceed the range's own tables (pt_stat below is exact).
        r = tiermm.pt_migrate(1, start=start, length=length, levels=PtLevels.PTE)
        self.assertGreaterEqual(r.moved[PtLevel.PTE], ptes, r)
        self.assertEqual((r.tables_moved, r.skipped), (sum(r.moved.values()), {}), r)
        self.assertEqual((r.start, r.length), (start, length))
        st = tiermm.pt_stat(0, start, length)
        self.assertGreaterEqual(len(st.nodes), 3)
        ptes = st.summary.tables[PtLevel.PTE]
        self.assertGreaterEqual(ptes, 8 * MIB // (512 * PAGE))
        self.assertEqual(st.nodes[1].tables[PtLevel.PTE], ptes)
        self.assertEqual(st.summary.data_pages, 8 * MIB // PAGE)
        self.assertEqual(st.summary.data_node, 0)
        self.assertEqual(st.nodes[0].data_share, 1.0)
        # "auto": each table to the node of the data it maps (node 0).
        r = tiermm.pt_migrate("auto", start=start, length=length, levels=PtLevels.PTE)
        self.assertGreaterEqual(r.moved[PtLevel.PTE], ptes)
        st = tiermm.pt_stat(0, start, length)
        self.assertEqual(st.nodes[0].tables[PtLevel.PTE], ptes)
        self.assertAlmostEqual(st.nodes[0].leaf_local, 1.0)
        r = tiermm.pt_migrate(0, start=start, length=length, levels=PtLevels.PTE)
        self.assertGreaterEqual(r.skipped.get(tiermm.PtSkip.ALREADY, 0), ptes, r)
        self.assertEqual(tiermm.pt_stat(0, start, length).nodes[0].tables[PtLevel.PTE], ptes)
        whole = tiermm.pt_stat()
        self.assertTrue(whole.summary.whole)
        self.assertGreater(whole.summary.data_pages, st.summary.data_pages)
        dump = json.loads(tiermm.pt_dump(0, start, length, json=True))
        self.assertTrue(dump)
        self.assertIn("pte", tiermm.pt_dump(0, start, length))
        with self.assertRaises(TiermmError) as cm:
            tiermm.pt_migrate(7, start=start, length=length)
        self.assertIn(cm.exception.errno, (errno.EINVAL, errno.ENODEV, errno.ENOENT))
        m.close()

    def test_accessed_bits(self):
        m = buffer(2 * MIB, fill=2)
        start, length = tiermm.address_range(m)
        with tiermm.AbScanner(0, start, length, flush=True) as sc:
            list(sc)                       # a first pass clears the bits
            with memoryview(m) as v:
                for i in range(10):
                    v[i * PAGE] = 0x77
            pages = [p for b in sc for p in b.accessed_pages()]
        self.assertTrue(set(start + i * PAGE for i in range(10)) <= set(pages), pages[:20])
        self.assertLess(len(pages), length // PAGE)


if __name__ == "__main__":
    unittest.main()
