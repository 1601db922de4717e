"""The store: SQLite (default) behind one small interface; the source of truth (layer 1)."""
