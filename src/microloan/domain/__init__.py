"""The lending rules as pure functions and immutable values: no clock, no I/O, standard library only."""
