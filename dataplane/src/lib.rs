//! ringmesh dataplane library.
