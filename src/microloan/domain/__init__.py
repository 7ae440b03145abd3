"""The lending rules as pure functions and values: no clock, no I/O, standard library only."""
