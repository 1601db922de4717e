"""The kernel: process table, transitions, pending actions, the journal and human requests (layer 4)."""

from alos.kernel.kernel import Kernel, Site, Tx

__all__ = ["Kernel", "Site", "Tx"]
