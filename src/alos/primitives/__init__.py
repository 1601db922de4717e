"""Primitives: the effect of each syscall, one file per family (layer 5).

Each family gives Args types, ``needs`` (the resolved resources and rights a call needs) and
the effect (``run`` for effects outside the store, ``apply`` for changes inside it).
Authority is decided by syscall.dispatch() before any of this runs; siblings do not import
each other.
"""
