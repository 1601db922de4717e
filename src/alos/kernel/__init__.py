"""The kernel: process table, transitions, pending actions, the journal and human requests (layer 4)."""

from alos.kernel.kernel import Deferred, Kernel, Site, Tx

__all__ = ["Deferred", "Kernel", "Site", "Tx"]
