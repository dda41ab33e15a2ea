//! End-to-end and cross-implementation tests of Tessera; the tests live in `tests/tests/`.
