//! Support for the end-to-end tests: starting ringmesh binaries and real upstream servers on loopback.
