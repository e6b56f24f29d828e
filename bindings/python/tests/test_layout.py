# SPDX-License-Identifier: LGPL-2.1-or-later
"""The ctypes mirrors against the C compiler's view of <tiermm.h>.

TIERMM_PY_LAYOUT is tiermm_py_layout, built by CMake from the headers by
tools/gen_layout.py: it prints every public struct's fields with offsetof,
sizeof and the kind of their type, and the value of every enum constant
and integer macro. Anything in a header that the binding does not mirror
exactly fails here.
"""

import ctypes
import json
import os
import subprocess
import unittest

import tiermm
from tiermm import _enums, _structs


def _kind(t):
    """(kind, count) of a ctypes type, in the layout program's terms."""
    if issubclass(t, ctypes.Array):
        k, _ = _kind(t._type_)
        return k, t._length_
    if issubclass(t, (ctypes._Pointer, ctypes._CFuncPtr)):  # pylint: disable=protected-access
        return "p", 0
    code = getattr(t, "_type_", None)
    if code in ("z", "Z", "P"):
        return "p", 0
    if code == "c":
        return "c", 0
    if code in ("f", "d", "g"):
        return "f", 0
    if code in ("b", "h", "i", "l", "q"):
        return "i", 0
    if code in ("B", "H", "I", "L", "Q", "?"):
        return "u", 0
    raise AssertionError("unexpected ctypes type %r" % (t,))


def _layout():
    prog = os.environ.get("TIERMM_PY_LAYOUT")
    if not prog:
        raise unittest.SkipTest("TIERMM_PY_LAYOUT is not set (run through ctest)")
    out = subprocess.run([prog], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


class TestLayout(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = _layout()

    def test_every_struct_is_mirrored(self):
        self.assertEqual(sorted(self.c["structs"]), sorted(_structs.STRUCTS),
                         "public structs in the headers vs tiermm._structs.STRUCTS")

    def test_struct_layouts(self):
        for name, c in sorted(self.c["structs"].items()):
            with self.subTest(struct=name):
                py = _structs.STRUCTS[name]
                self.assertEqual([f[0] for f in c["fields"]], [f[0] for f in py._fields_],
                                 "field names and order")
                for (fname, off, size, kind, count), (pname, ptype) in zip(c["fields"],
                                                                           py._fields_):
                    desc = getattr(py, pname)
                    self.assertEqual((desc.offset, desc.size), (off, size),
                                     "%s.%s: (offset, size)" % (name, fname))
                    self.assertEqual(_kind(ptype), (kind, count),
                                     "%s.%s: (kind, array count)" % (name, fname))
                self.assertEqual(ctypes.sizeof(py), c["size"], "sizeof(struct %s)" % name)
                self.assertEqual(ctypes.alignment(py), c["align"], "alignof(struct %s)" % name)

    def test_sz_is_sizeof(self):
        for name, cls in _structs.STRUCTS.items():
            with self.subTest(struct=name):
                self.assertEqual(_structs.new(cls).sz, self.c["structs"][name]["size"])

    def test_enums(self):
        seen = set()
        for cls, (cname, prefix) in _enums.C_NAMES.items():
            if cname == "#define":
                consts = {k: v for k, v in self.c["defines"].items() if k.startswith(prefix)}
            else:
                self.assertIn(cname, self.c["enums"], "%s mirrors enum %s" % (cls.__name__, cname))
                consts = self.c["enums"][cname]
            seen.add(cname)
            expect = {k[len(prefix):]: v for k, v in consts.items() if not k.endswith("__COUNT")}
            got = {m.name: int(m.value) for m in cls.__members__.values()}
            self.assertEqual(got, expect, "%s vs %s %s*" % (cls.__name__, cname, prefix))
        missing = set(self.c["enums"]) - seen
        self.assertFalse(missing, "C enums without a Python mirror in _enums.C_NAMES")

    def test_counts(self):
        self.assertEqual(_structs.PT_LEVEL_COUNT,
                         self.c["enums"]["tiermm_pt_level"]["TIERMM_PT_LEVEL__COUNT"])
        self.assertEqual(_structs.PT_SKIP_COUNT,
                         self.c["enums"]["tiermm_pt_skip"]["TIERMM_PT_SKIP__COUNT"])
        self.assertEqual(len(tiermm.Cap), self.c["enums"]["tiermm_cap"]["TIERMM_CAP__COUNT"])
        self.assertEqual(len(tiermm.Hint), self.c["enums"]["tiermm_hint"]["TIERMM_HINT__COUNT"])
        self.assertEqual(len(tiermm.Metric),
                         self.c["enums"]["tiermm_metric"]["TIERMM_METRIC__COUNT"])

    def test_defines(self):
        mirrored = set(_enums.C_DEFINES.values())
        for cls, (cname, prefix) in _enums.C_NAMES.items():
            if cname == "#define":
                mirrored |= {prefix + m for m in cls.__members__}
        self.assertEqual(sorted(self.c["defines"]), sorted(mirrored),
                         "integer macros of the headers vs their Python mirrors")
        for py, c in _enums.C_DEFINES.items():
            self.assertEqual(getattr(_enums, py), self.c["defines"][c], py)


if __name__ == "__main__":
    unittest.main()
