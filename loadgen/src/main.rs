//! ringmesh-loadgen entry point.
fn main() {}
