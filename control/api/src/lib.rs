//! The contract between ringmesh-control and ringmesh-dataplane: the TOML file model,
//! its validation, and the compiled snapshot both processes agree on.

pub mod snapshot;
