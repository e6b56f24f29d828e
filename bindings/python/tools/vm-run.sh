#!/bin/sh
# tiermm-python-vmtest [UNITTEST-OPTIONS...] - the Python binding's guest tests (vm_tiered) in a
# tests/vm/run guest; options such as -k PATTERN go to unittest. Packed as /usr/bin/tiermm-python-vmtest by tools/mkguest.py, with
# /usr/bin/python3, its standard-library subset /usr/bin/tiermm-python.zip (which also holds
# the tiermm package and the tests) and the extension modules in /usr/lib. libtiermm is
# /usr/lib/libtiermm.so.0, found by its soname.
set -u
# The kernel's NUMA balancing and demotion would move pages between a move and the
# residency check that follows it: off, so what moves is the test's doing.
if [ -w /proc/sys/kernel/numa_balancing ]; then
	echo 0 >/proc/sys/kernel/numa_balancing
fi
if [ -w /sys/kernel/mm/numa/demotion_enabled ]; then
	echo false >/sys/kernel/mm/numa/demotion_enabled
fi
# mkguest.py --preload (a sanitized libtiermm in an unsanitized python3) fills this in:
# @PRELOAD@
PYTHONHOME=/usr
PYTHONPATH=/usr/bin/tiermm-python.zip:/usr/lib
PYTHONDONTWRITEBYTECODE=1
PYTHONNOUSERSITE=1
PYTHONUNBUFFERED=1
export PYTHONHOME PYTHONPATH PYTHONDONTWRITEBYTECODE PYTHONNOUSERSITE PYTHONUNBUFFERED
start=$(date +%s)
python3 -c 'import sys, tiermm; print("# python %s, tiermm %s from %s" % (sys.version.split()[0], tiermm.version(), tiermm.library_path))' ||
	exit 1
echo "# interpreter start-up and import: $(($(date +%s) - start)) s"
exec python3 -X faulthandler -m unittest -v "$@" vm_tiered
