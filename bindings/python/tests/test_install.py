# SPDX-License-Identifier: LGPL-2.1-or-later
"""`cmake --install` puts a package that imports and loads the installed
library, with nothing from the build tree (like tests/install for C)."""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

PROBE = ("import sys, tiermm; print(tiermm.__file__); print(tiermm.library_path); "
         "print(tiermm.version()); print(len(list(tiermm.caps())))")


class TestInstall(unittest.TestCase):
    def test_install_and_import(self):
        build = os.environ.get("TIERMM_BUILD_DIR")
        sitedir = os.environ.get("TIERMM_PY_SITEDIR")
        if not build or not sitedir:
            self.skipTest("TIERMM_BUILD_DIR/TIERMM_PY_SITEDIR are not set (run through ctest)")
        if not os.path.isabs(sitedir):
            self.assertRegex(sitedir, r"^lib/python3[.0-9]*/(site|dist)-packages$")
        cmake = os.environ.get("CMAKE_COMMAND") or shutil.which("cmake")
        with tempfile.TemporaryDirectory() as tmp:
            prefix = os.path.join(tmp, "prefix")
            r = subprocess.run([cmake, "--install", build, "--prefix", prefix],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            site = sitedir if os.path.isabs(sitedir) else os.path.join(prefix, sitedir)
            pkg = os.path.join(site, "tiermm")
            self.assertTrue(os.path.isfile(os.path.join(pkg, "__init__.py")), r.stdout)
            with open(os.path.join(pkg, "_config.py")) as f:
                cfg = f.read()
            self.assertIn(prefix, cfg)
            self.assertNotIn(build, cfg)
            env = {k: v for k, v in os.environ.items()
                   if not k.startswith(("TIERMM_", "PYTHON", "LD_LIBRARY_PATH"))}
            if "LD_PRELOAD" in os.environ:  # sanitizer runtimes of an ASan build
                env["LD_PRELOAD"] = os.environ["LD_PRELOAD"]
            env["PYTHONPATH"] = site
            env["PYTHONDONTWRITEBYTECODE"] = "1"
            r = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp, env=env,
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            path, lib, version, ncaps = r.stdout.split("\n")[:4]
            self.assertTrue(path.startswith(pkg), path)
            self.assertTrue(os.path.realpath(lib).startswith(os.path.realpath(prefix)), lib)
            self.assertRegex(version, r"^\d+\.\d+\.\d+")
            self.assertGreater(int(ncaps), 0)


if __name__ == "__main__":
    unittest.main()
