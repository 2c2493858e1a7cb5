//! ringmesh-control entry point.
fn main() {}
