# SPDX-License-Identifier: LGPL-2.1-or-later
"""Every exported libtiermm symbol is bound and used by the package.

The exported symbols are read from lib/libtiermm.map (TIERMM_SRCDIR). A new
call in the C API fails this test until the binding wraps it, or lists it in
_lib.NOT_BOUND with the reason.
"""

import os
import pathlib
import re
import unittest

import tiermm
from tiermm import _lib

PKG = pathlib.Path(tiermm.__file__).resolve().parent


def _map_symbols():
    src = os.environ.get("TIERMM_SRCDIR")
    if not src:
        raise unittest.SkipTest("TIERMM_SRCDIR is not set (run through ctest)")
    text = pathlib.Path(src, "lib", "libtiermm.map").read_text()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    syms = set()
    for block in re.findall(r"global:(.*?)(?:local:|\})", text, flags=re.S):
        syms |= set(re.findall(r"\b(tiermm_\w+)\s*;", block))
    return syms


class TestApiCoverage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.exported = _map_symbols()
        cls.bound = {p[0] for p in _lib._PROTOTYPES}  # pylint: disable=protected-access

    def test_map_parsed(self):
        self.assertGreater(len(self.exported), 50)
        self.assertIn("tiermm_move", self.exported)

    def test_every_export_is_bound(self):
        missing = self.exported - self.bound - set(_lib.NOT_BOUND)
        self.assertFalse(missing, "exported but not bound (add to _lib._PROTOTYPES and wrap)")

    def test_no_stale_prototype(self):
        self.assertFalse(self.bound - self.exported, "bound but not exported")

    def test_every_prototype_is_used(self):
        src = "\n".join(p.read_text() for p in PKG.glob("*.py"))
        unused = {n for n in self.bound if not re.search(r"\blib\.%s\b" % n, src)}
        self.assertFalse(unused, "declared but never called by the package")

    def test_replication_bound(self):
        # Page-table replication (issue 7): the C calls and their wrappers.
        self.assertIn("tiermm_pt_replicate", self.exported)
        self.assertIn("tiermm_pt_replication", self.exported)
        self.assertIn("pt_replicate", tiermm.__all__)
        self.assertIn("pt_replication", tiermm.__all__)


if __name__ == "__main__":
    unittest.main()
