"""The ``microloan`` command."""
