//! Criterion benches for streamlog live in `benches/`; this package has no library code.
