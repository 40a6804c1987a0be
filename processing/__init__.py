"""The job's edges: reading and writing the session's rows, progress, and clip storage.
``processor.py`` composes these with the pure stages in ``services/``."""
