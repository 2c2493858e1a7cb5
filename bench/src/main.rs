//! ringmesh-bench entry point.
fn main() {}
