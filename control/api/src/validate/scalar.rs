//! Checks of single values shared by every part of the file: numbers with ranges,
//! durations, sizes and socket addresses. Each reports its own error and returns
//! `None` so callers can carry on with the rest of the file.

use super::at::At;
use crate::error::Errors;
use crate::file::{DurationValue, SizeValue};
use crate::units::{parse_duration_us, parse_size_int, parse_size_str, us_to_ms, UnitError};
use std::net::{IpAddr, SocketAddr};

/// An integer key that must lie in `min..=max`.
pub(crate) fn int_in<T: TryFrom<i64>>(
    errors: &mut Errors,
    path: At<'_>,
    value: i64,
    min: i64,
    max: i64,
) -> Option<T> {
    if value < min || value > max {
        errors.add_hint(
            path,
            format!("{value} is out of range"),
            format!("use a value from {min} to {max}"),
        );
        return None;
    }
    T::try_from(value).ok()
}

fn unit_error(errors: &mut Errors, path: At<'_>, e: UnitError) {
    let mut message = e.message;
    if message == "is empty" {
        message = "value is empty".to_string();
    }
    let error =
        crate::error::ConfigError::new(path.to_string(), message).with_optional_hint(e.hint);
    errors.push(error);
}

/// A duration in milliseconds; `allow_zero` is false for timeouts, where zero would
/// fail every operation at once.
pub(crate) fn duration_ms(
    errors: &mut Errors,
    path: At<'_>,
    value: &DurationValue,
    allow_zero: bool,
) -> Option<u64> {
    let us = match value {
        DurationValue::Unitless(n) => {
            errors.add_hint(
                path,
                format!("{n} has no unit"),
                format!("durations are strings with a unit: write \"{n}s\" or \"{n}ms\""),
            );
            return None;
        }
        DurationValue::Text(text) => match parse_duration_us(text) {
            Ok(us) => us,
            Err(e) => {
                unit_error(errors, path, e);
                return None;
            }
        },
    };
    if us == 0 && !allow_zero {
        errors.add_hint(
            path,
            "must be longer than zero",
            "write a duration such as \"10s\"",
        );
        return None;
    }
    Some(us_to_ms(us))
}

/// A size in bytes within `min..=max`.
pub(crate) fn size_in(
    errors: &mut Errors,
    path: At<'_>,
    value: &SizeValue,
    min: u64,
    max: u64,
) -> Option<u64> {
    let parsed = match value {
        SizeValue::Bytes(n) => parse_size_int(*n),
        SizeValue::Text(text) => parse_size_str(text),
    };
    match parsed {
        Ok(bytes) if bytes < min || bytes > max => {
            errors.add_hint(
                path,
                format!("{bytes} bytes is out of range"),
                format!("use a size from {min} to {max} bytes"),
            );
            None
        }
        Ok(bytes) => Some(bytes),
        Err(e) => {
            unit_error(errors, path, e);
            None
        }
    }
}

/// What an address is used for changes the advice when it is wrong.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum AddrUse {
    /// Local address to listen on; port 0 (any free port) is allowed.
    Bind,
    /// Upstream to connect to; port 0 cannot be connected to.
    Connect,
}

pub(crate) fn socket_addr(
    errors: &mut Errors,
    path: At<'_>,
    text: &str,
    use_: AddrUse,
) -> Option<SocketAddr> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        if use_ == AddrUse::Connect && addr.port() == 0 {
            errors.add_hint(
                path,
                format!("\"{text}\" has port 0"),
                "write the port the upstream listens on",
            );
            return None;
        }
        return Some(addr);
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        let example = SocketAddr::new(ip, 8080);
        errors.add_hint(
            path,
            format!("\"{text}\" is not an address with a port"),
            format!("write \"{example}\""),
        );
        return None;
    }
    let looks_like_name = text
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if looks_like_name {
        let hint = match use_ {
            AddrUse::Bind => "write an IP address, such as \"0.0.0.0:8080\" for every interface",
            AddrUse::Connect => {
                "names are not resolved; write an IP address such as \"127.0.0.1:9000\""
            }
        };
        errors.add_hint(
            path,
            format!("\"{text}\" is not an IP address with a port"),
            hint,
        );
        return None;
    }
    errors.add_hint(
        path,
        format!("\"{text}\" is not an address"),
        "write an IP address and port, such as \"127.0.0.1:8080\" or \"[::1]:8080\"",
    );
    None
}

/// A required key the file left out.
pub(crate) fn required<'a, T>(
    errors: &mut Errors,
    path: At<'_>,
    value: &'a Option<T>,
) -> Option<&'a T> {
    if value.is_none() {
        errors.add(path, "required key is missing");
    }
    value.as_ref()
}

/// A name key: required and not blank, since names appear in metrics and messages.
pub(crate) fn name<'a>(
    errors: &mut Errors,
    path: At<'_>,
    value: &'a Option<String>,
) -> Option<&'a str> {
    let text = required(errors, path, value)?;
    if text.trim().is_empty() {
        errors.add(path, "name is empty");
        return None;
    }
    if text.chars().any(|c| c.is_control()) {
        errors.add(path, format!("name {text:?} contains a control character"));
        return None;
    }
    Some(text)
}
