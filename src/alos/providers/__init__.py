"""Providers: the effects themselves (files, model, human I/O, clock), layer 2.

A provider receives authorized, resolved arguments, holds no policy and never touches the store.
"""
