//! ringmesh-dataplane entry point.
fn main() {}
