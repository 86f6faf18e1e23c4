//! Cross-binary end-to-end tests of Flotilla live in `tests/`; `src/bin/` holds the fixture
//! binaries they start as separate processes.
