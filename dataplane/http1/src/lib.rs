//! Strict HTTP/1.1 codec for the dataplane: parses heads, frames bodies, rewrites heads; no IO.
