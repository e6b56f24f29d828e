#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Make a pack directory for tests/vm/run --build that lets the guest run the
Python binding's tests: the guest's initramfs has busybox and the project's
ELF programs, no Python.

Run it with the interpreter to pack (the guest gets this very interpreter,
so the byte code and the extension modules match it):

  python3 mkguest.py --out DIR --package bindings/python/tiermm \
      --tests bindings/python/tests --runner bindings/python/tools/vm-run.sh \
      --library build/lib/libtiermm.so.0.2.0 --soname libtiermm.so.0

DIR then holds what the rig packs:
  bin/python3                 the interpreter (tests/vm/run copies it and, with ldd,
                              the shared libraries it needs)
  bin/tiermm-python.zip       the standard-library modules the binding, its guest
                              tests and unittest import (byte code, no sources),
                              then the tiermm package and the tests (sources);
                              executable only so that the rig packs it
  bin/tiermm-python-vmtest    the runner (tools/vm-run.sh)
  lib/libtiermm.so.0          a copy of the library (lib/ entries must be files)
  lib/*.cpython-*.so          the extension modules among those imports (_ctypes,
                              mmap, ...), found by the runner on PYTHONPATH=/usr/lib

Which modules: modulefinder's closure of `import tiermm, vm_tiered, unittest`
and what the interpreter needs to start (site, encodings, runpy for -m),
minus packages no test can reach (EXCLUDES: networking, GUI, test suites),
which also keeps the host libraries they would drag in (OpenSSL, ...) out of
the guest. modulefinder follows imports inside functions too, so lazily
imported modules are packed as well. Prints what it packed and the sizes.
"""

import argparse
import importlib.util
import marshal
import modulefinder
import os
import shutil
import stat
import sys
import sysconfig
import zipfile

EXCLUDES = [
    "test", "idlelib", "tkinter", "turtle", "turtledemo", "lib2to3", "ensurepip", "venv",
    "distutils", "pydoc", "pydoc_data", "doctest", "_testcapi", "_testinternalcapi",
    "_testbuffer", "_testmultiphase", "_xxtestfuzz", "ssl", "_ssl", "_hashlib", "readline",
    "curses", "_curses", "dbm", "sqlite3", "_sqlite3", "asyncio", "_asyncio", "email",
    "http", "xml", "xmlrpc", "urllib", "multiprocessing", "_multiprocessing", "concurrent",
    "socketserver", "ftplib", "webbrowser", "mailbox", "smtplib", "imaplib", "poplib",
    "nntplib", "pdb", "bdb", "lzma", "_lzma", "bz2", "_bz2", "tarfile", "gzip",
]
# Imported at start-up or by `python3 -m`, which modulefinder cannot see.
START = ["site", "runpy", "encodings", "linecache", "tokenize", "traceback", "_sitebuiltins",
         "codecs", "io", "abc", "os", "stat", "posixpath", "genericpath", "zipimport",
         "importlib.util", "importlib.machinery", "unittest.__main__"]
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def stdlib_dirs():
    paths = sysconfig.get_paths()
    return [os.path.realpath(p) for p in (paths["stdlib"], paths["platstdlib"])]


def in_stdlib(path, dirs):
    rp = os.path.realpath(path)
    return any(rp.startswith(d + os.sep) for d in dirs) and "site-packages" not in rp \
        and "dist-packages" not in rp


def closure(package_parent, tests_dir, entry):
    sys.path[:0] = [package_parent, tests_dir]
    mf = modulefinder.ModuleFinder(path=list(sys.path), excludes=EXCLUDES)
    script = os.path.join(os.environ.get("TMPDIR", "/tmp"), "tiermm-mkguest-%d.py" % os.getpid())
    with open(script, "w", encoding="utf-8") as f:
        f.write("import tiermm, %s, unittest, unittest.main\n" % entry)
        for m in START:
            f.write("import %s\n" % m)
    try:
        mf.run_script(script)
    finally:
        os.unlink(script)
    # The whole encodings package: the codecs are looked up by name at run time.
    enc = os.path.dirname(importlib.util.find_spec("encodings").origin)
    for fn in sorted(os.listdir(enc)):
        if fn.endswith(".py") and fn != "__init__.py":
            mf.import_hook("encodings." + fn[:-3])
    return mf


def soname_of(path):
    """libasan.so.8 for /usr/lib/x86_64-linux-gnu/libasan.so.8.0.0: the shortest
    libX.so.N link to the same file next to it, else the file's own name."""
    real = os.path.realpath(path)
    d = os.path.dirname(real)
    names = [n for n in os.listdir(d) if ".so." in n and os.path.islink(os.path.join(d, n))
             and os.path.realpath(os.path.join(d, n)) == real]
    return min(names, key=len) if names else os.path.basename(real)


def pyc(path, arcname):
    with open(path, "rb") as f:
        source = f.read()
    code = compile(source, arcname, "exec", dont_inherit=True, optimize=0)
    # A timestamp pyc with no source next to it in the zip: zipimport loads
    # it as is. mtime and size 0 keep the archive reproducible.
    return importlib.util.MAGIC_NUMBER + bytes(12) + marshal.dumps(code)


def add(zf, arcname, data):
    info = zipfile.ZipInfo(arcname, ZIP_DATE)
    info.compress_type = zipfile.ZIP_STORED  # zipimport needs no zlib this way
    info.external_attr = 0o644 << 16
    zf.writestr(info, data)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--package", required=True, help="the tiermm package's source dir")
    ap.add_argument("--tests", required=True, help="bindings/python/tests")
    ap.add_argument("--entry", default="vm_tiered", help="the guest test module")
    ap.add_argument("--runner", required=True)
    ap.add_argument("--library", required=True, help="libtiermm shared library file")
    ap.add_argument("--soname", required=True)
    ap.add_argument("--preload", default="",
                    help="LD_PRELOAD for python3 in the guest (sanitizer runtimes of an ASan build)")
    a = ap.parse_args()

    out = a.out
    for d in ("bin", "lib"):
        shutil.rmtree(os.path.join(out, d), ignore_errors=True)
        os.makedirs(os.path.join(out, d))
    dirs = stdlib_dirs()
    pkg = os.path.realpath(a.package)
    mf = closure(os.path.dirname(pkg), os.path.realpath(a.tests), a.entry)

    zpath = os.path.join(out, "bin", "tiermm-python.zip")
    nmods = 0
    exts = []
    with zipfile.ZipFile(zpath + ".tmp", "w") as zf:
        for name, mod in sorted(mf.modules.items()):
            f = mod.__file__
            if not f or name == "__main__" or not in_stdlib(f, dirs):
                continue
            if f.endswith(".py"):
                arc = name.replace(".", "/") + ("/__init__.pyc" if mod.__path__ else ".pyc")
                add(zf, arc, pyc(f, "<stdlib>/" + arc[:-1]))
                nmods += 1
            elif f.endswith(".so"):
                exts.append(f)
        # The binding and the tests as sources (readable tracebacks), without
        # the build tree's _config.py: the guest loads libtiermm by soname.
        for fn in sorted(os.listdir(pkg)):
            if fn.endswith(".py") and fn != "_config.py":
                with open(os.path.join(pkg, fn), "rb") as f:
                    add(zf, "tiermm/" + fn, f.read())
        for fn in sorted(os.listdir(a.tests)):
            if fn.endswith(".py"):
                with open(os.path.join(a.tests, fn), "rb") as f:
                    add(zf, fn, f.read())
    os.replace(zpath + ".tmp", zpath)
    os.chmod(zpath, 0o755)

    for f in exts:
        shutil.copyfile(f, os.path.join(out, "lib", os.path.basename(f)))
    shutil.copyfile(a.library, os.path.join(out, "lib", a.soname))

    exe = os.path.realpath(sys.executable)
    os.symlink(exe, os.path.join(out, "bin", "python3"))
    runner = os.path.join(out, "bin", "tiermm-python-vmtest")
    with open(a.runner, encoding="utf-8") as f:
        text = f.read()
    if a.preload:
        # By soname: the rig packs the libraries under the names ldd gives.
        names = ":".join(soname_of(p) for p in a.preload.split(":") if p)
        text = text.replace("# @PRELOAD@", "LD_PRELOAD=%s\nASAN_OPTIONS=detect_leaks=0:"
                            "verify_asan_link_order=0\nexport LD_PRELOAD ASAN_OPTIONS" % names)
    with open(runner, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(runner, os.stat(runner).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)

    ext_size = sum(os.path.getsize(f) for f in exts)
    print("mkguest: %s: %d stdlib modules + the binding and its tests in %s (%.1f MiB), "
          "%d extension modules (%.1f MiB: %s), interpreter %s (%.1f MiB; tests/vm/run adds "
          "its shared libraries)" % (
              out, nmods, os.path.basename(zpath), os.path.getsize(zpath) / 2**20, len(exts),
              ext_size / 2**20, " ".join(sorted(os.path.basename(f).split(".")[0] for f in exts)),
              exe, os.path.getsize(exe) / 2**20))


if __name__ == "__main__":
    main()
