# SPDX-License-Identifier: LGPL-2.1-or-later
"""Turning Python buffers into the page ranges libtiermm works on."""

import contextlib
import ctypes
import mmap

PAGE_SIZE = mmap.PAGESIZE


class Span:
    """Where a buffer lives: its bytes and the whole pages holding them."""

    __slots__ = ("address", "nbytes", "start", "length")

    def __init__(self, address, nbytes):
        self.address = address
        self.nbytes = nbytes
        self.start = address & ~(PAGE_SIZE - 1)
        end = (address + nbytes + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
        self.length = end - self.start

    @property
    def pages(self):
        return self.length // PAGE_SIZE

    def __repr__(self):
        return "Span(address=%#x, nbytes=%d, pages %#x+%d)" % (
            self.address, self.nbytes, self.start, self.length)


@contextlib.contextmanager
def pinned(buf):
    """Export buf's buffer for the duration of a C call and yield its Span.

    buf is anything exposing a writable, C-contiguous buffer: mmap.mmap,
    bytearray, memoryview, array.array, a numpy array, a TierMemory.
    Holding the export keeps the memory where it is meanwhile: a bytearray
    cannot be resized and an mmap cannot be closed under the call.
    """
    if isinstance(buf, (bytes, str)):
        raise TypeError("tiermm: %s is immutable; placement needs a writable buffer "
                        "(mmap.mmap, bytearray, a writable memoryview, ...)"
                        % type(buf).__name__)
    try:
        view = memoryview(buf)
    except TypeError:
        raise TypeError("tiermm: %s does not expose the buffer protocol; pass an "
                        "mmap.mmap, bytearray, memoryview, array or numpy array"
                        % type(buf).__name__) from None
    with view:
        if view.readonly:
            raise TypeError("tiermm: the buffer of %s is read-only; placement and hints "
                            "need a writable buffer (for an mmap, map it with "
                            "ACCESS_WRITE or ACCESS_COPY)" % type(buf).__name__)
        if not view.c_contiguous:
            raise ValueError("tiermm: the buffer of %s is not C-contiguous; pass a "
                             "contiguous buffer" % type(buf).__name__)
        n = view.nbytes
        if n == 0:
            raise ValueError("tiermm: the buffer of %s is empty" % type(buf).__name__)
        arr = (ctypes.c_char * n).from_buffer(view)
        try:
            yield Span(ctypes.addressof(arr), n)
        finally:
            del arr


def address_range(buf):
    """(start, length) of the whole pages holding buf's bytes.

    For the calls that take an address range (pt_stat, pt_migrate, ...).
    The numbers are only as stable as the buffer: an mmap or a TierMemory
    stays put until it is closed, a bytearray moves when it is resized.
    """
    with pinned(buf) as span:
        return span.start, span.length
