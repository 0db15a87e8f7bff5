"""Pure DataFrame -> DataFrame transforms by layer. No I/O, no sessions, no collect()."""
