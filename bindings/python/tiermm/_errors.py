# SPDX-License-Identifier: LGPL-2.1-or-later
"""The exception every failing tiermm call raises."""

import errno as _errno
import os as _os

__all__ = ["TiermmError"]


class TiermmError(OSError):
    """A libtiermm call failed.

    An :class:`OSError`, so ``e.errno`` is the positive errno the call
    returned (compare it with the constants of the :mod:`errno` module) and
    ``e.strerror`` is libtiermm's detailed message for it, the text of
    ``tiermm_errmsg()`` right after the failure. Also:

    ``e.function``
        the C function that failed (``"tiermm_move"``, ...), or None;
    ``e.message``
        the same as ``e.strerror``;
    ``e.generic``
        the generic text of the error code (``tiermm_strerror()``).

    Bad Python-side input (a read-only buffer, a wrong type, an empty
    buffer) raises TypeError or ValueError before any C call is made; values
    that only the library can judge (a node that does not exist, a range
    that is not mapped) come back from it as TiermmError.
    """

    def __init__(self, err, message=None, function=None, generic=None):
        err = abs(int(err))
        if not message:
            message = generic or _os.strerror(err)
        super().__init__(err, message)
        self.function = function
        self.message = message
        self.generic = generic or _os.strerror(err)

    @property
    def errno_name(self):
        """Symbolic name of the errno, e.g. ``"ENODEV"`` (or ``"E<n>"``)."""
        return _errno.errorcode.get(self.errno, "E%d" % self.errno)

    def __str__(self):
        where = ""
        if self.function and not self.message.startswith(self.function):
            where = self.function + ": "
        return "[Errno %d %s] %s%s" % (self.errno, self.errno_name, where, self.message)

    def __reduce__(self):
        return (type(self), (self.errno, self.message, self.function, self.generic))
