"""unetseg: the pure library behind the DVC stages in stages/ (arrays in, arrays out)."""
