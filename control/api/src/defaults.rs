//! The defaults of docs/config.md, in one place so validation (which checks values
//! against each other) and compilation (which fills them in) cannot disagree.

pub const DRAIN_TIMEOUT_MS: u64 = 10_000;

pub const MAX_CONNECTIONS: u32 = 10_000;
pub const TCP_IDLE_TIMEOUT_MS: u64 = 3_600_000;
pub const HTTP_IDLE_TIMEOUT_MS: u64 = 60_000;
pub const SPLICE: bool = false;

pub const MAX_REQUEST_LINE: u32 = 8 * 1024;
pub const MAX_HEADER_BYTES: u32 = 64 * 1024;
pub const MAX_HEADERS: u32 = 100;
pub const HEADER_READ_TIMEOUT_MS: u64 = 10_000;
pub const MAX_BODY_BYTES: u64 = 100 * 1024 * 1024;
pub const X_FORWARDED_FOR: bool = true;
pub const X_FORWARDED_PROTO: bool = true;
pub const VIA: &str = "ringmesh";
pub const REQUEST_ID: bool = true;

pub const DIRECT_CONTENT_TYPE: &str = "text/plain";

pub const CONNECT_TIMEOUT_MS: u64 = 1_000;
pub const MAX_IDLE_PER_ENDPOINT: u32 = 64;
pub const POOL_IDLE_TIMEOUT_MS: u64 = 30_000;
pub const ENDPOINT_WEIGHT: u32 = 1;
