//! Parsing of the two unit-bearing scalar kinds in the config file: durations
//! (`"250ms"`, `"10s"`) and sizes (`4096`, `"10MiB"`, `"4kB"`).

/// A parse failure, worded to follow the value in a message; `hint` says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitError {
    pub message: String,
    pub hint: Option<String>,
}

impl UnitError {
    fn new(message: impl Into<String>, hint: impl Into<String>) -> Self {
        UnitError {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }
}

const DURATION_UNITS: &[(&str, u64)] = &[
    ("us", 1),
    ("ms", 1_000),
    ("s", 1_000_000),
    ("m", 60_000_000),
    ("h", 3_600_000_000),
];

const SIZE_UNITS: &[(&str, u64)] = &[
    ("B", 1),
    ("kB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
];

fn unit_list(units: &[(&str, u64)]) -> String {
    units.iter().map(|(u, _)| *u).collect::<Vec<_>>().join(", ")
}

/// Splits `"250ms"` into `(250, "ms")`. Only plain decimal integers are accepted:
/// fractions and signs would make `"1.5s"` and `"-1s"` silently mean something else.
fn split_number(text: &str, example: &str) -> Result<(u64, String), UnitError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(UnitError::new(
            "is empty",
            format!("write a value such as \"{example}\""),
        ));
    }
    if trimmed.starts_with('-') {
        return Err(UnitError::new(
            format!("\"{text}\" is negative"),
            format!("write a value such as \"{example}\""),
        ));
    }
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(digits_end);
    if digits.is_empty() {
        return Err(UnitError::new(
            format!("\"{text}\" does not start with a number"),
            format!("write a value such as \"{example}\""),
        ));
    }
    if unit.starts_with('.') {
        return Err(UnitError::new(
            format!("\"{text}\" is not a whole number"),
            "use a smaller unit instead of a fraction (\"1500ms\", not \"1.5s\")",
        ));
    }
    let number = digits
        .parse::<u64>()
        .map_err(|_| UnitError::new(format!("\"{text}\" is too large"), "use a smaller value"))?;
    Ok((number, unit.trim_start().to_string()))
}

fn scale(text: &str, number: u64, factor: u64) -> Result<u64, UnitError> {
    number
        .checked_mul(factor)
        .ok_or_else(|| UnitError::new(format!("\"{text}\" is too large"), "use a smaller value"))
}

/// Parses a duration string into microseconds.
pub fn parse_duration_us(text: &str) -> Result<u64, UnitError> {
    let (number, unit) = split_number(text, "10s")?;
    if unit.is_empty() {
        return Err(UnitError::new(
            format!("\"{text}\" has no unit"),
            format!("write \"{number}s\" or \"{number}ms\""),
        ));
    }
    match DURATION_UNITS.iter().find(|(u, _)| *u == unit) {
        Some((_, factor)) => scale(text, number, *factor),
        None => Err(UnitError::new(
            format!("\"{text}\" has an unknown duration unit \"{unit}\""),
            format!("use one of {}", unit_list(DURATION_UNITS)),
        )),
    }
}

/// Converts microseconds to whole milliseconds, rounding up so that a positive
/// duration such as `"500us"` never becomes a zero (disabled) timeout.
pub fn us_to_ms(us: u64) -> u64 {
    us.div_ceil(1_000)
}

/// Parses a size string into bytes. Units are case-sensitive because `kB` (1000)
/// and `KiB` (1024) differ; a near miss gets a hint instead of a guess.
pub fn parse_size_str(text: &str) -> Result<u64, UnitError> {
    let (number, unit) = split_number(text, "64KiB")?;
    if unit.is_empty() {
        return Ok(number);
    }
    if let Some((_, factor)) = SIZE_UNITS.iter().find(|(u, _)| *u == unit) {
        return scale(text, number, *factor);
    }
    let near = SIZE_UNITS
        .iter()
        .find(|(u, _)| u.eq_ignore_ascii_case(&unit))
        .map(|(u, _)| format!("did you mean \"{number}{u}\"? "))
        .unwrap_or_default();
    Err(UnitError::new(
        format!("\"{text}\" has an unknown size unit \"{unit}\""),
        format!("{near}use one of {}", unit_list(SIZE_UNITS)),
    ))
}

/// A size given as a bare TOML integer: bytes.
pub fn parse_size_int(value: i64) -> Result<u64, UnitError> {
    u64::try_from(value).map_err(|_| {
        UnitError::new(
            format!("{value} is negative"),
            "write a size in bytes or with a unit, such as \"64KiB\"",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_us("250ms"), Ok(250_000));
        assert_eq!(parse_duration_us("10s"), Ok(10_000_000));
        assert_eq!(parse_duration_us("2m"), Ok(120_000_000));
        assert_eq!(parse_duration_us("1h"), Ok(3_600_000_000));
        assert_eq!(parse_duration_us("500us"), Ok(500));
        assert_eq!(parse_duration_us("0s"), Ok(0));
        assert_eq!(parse_duration_us(" 5 s "), Ok(5_000_000));
    }

    #[test]
    fn duration_errors() {
        let empty = parse_duration_us("").unwrap_err();
        assert_eq!(empty.message, "is empty");
        let neg = parse_duration_us("-1s").unwrap_err();
        assert!(neg.message.contains("negative"), "{neg:?}");
        let no_unit = parse_duration_us("10").unwrap_err();
        assert_eq!(no_unit.message, "\"10\" has no unit");
        assert_eq!(no_unit.hint.as_deref(), Some("write \"10s\" or \"10ms\""));
        let unknown = parse_duration_us("3d").unwrap_err();
        assert!(unknown.message.contains("unknown duration unit \"d\""));
        assert!(parse_duration_us("1.5s")
            .unwrap_err()
            .message
            .contains("whole"));
        assert!(parse_duration_us("s")
            .unwrap_err()
            .message
            .contains("number"));
        let huge = parse_duration_us("99999999999999999999s").unwrap_err();
        assert!(huge.message.contains("too large"));
        let overflow = parse_duration_us("18446744073709551h").unwrap_err();
        assert!(overflow.message.contains("too large"));
    }

    #[test]
    fn rounding_to_ms() {
        assert_eq!(us_to_ms(0), 0);
        assert_eq!(us_to_ms(1), 1);
        assert_eq!(us_to_ms(1_000), 1);
        assert_eq!(us_to_ms(1_001), 2);
        assert_eq!(us_to_ms(u64::MAX), u64::MAX / 1_000 + 1);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size_str("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_size_str("10MiB"), Ok(10 * 1024 * 1024));
        assert_eq!(parse_size_str("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size_str("4kB"), Ok(4_000));
        assert_eq!(parse_size_str("2MB"), Ok(2_000_000));
        assert_eq!(parse_size_str("7B"), Ok(7));
        assert_eq!(parse_size_str("123"), Ok(123));
        assert_eq!(parse_size_int(4096), Ok(4096));
    }

    #[test]
    fn size_errors() {
        assert!(parse_size_int(-1).unwrap_err().message.contains("negative"));
        assert!(parse_size_str("-1KiB")
            .unwrap_err()
            .message
            .contains("negative"));
        assert_eq!(parse_size_str("").unwrap_err().message, "is empty");
        let near = parse_size_str("4kib").unwrap_err();
        assert!(near.message.contains("unknown size unit \"kib\""));
        assert!(near
            .hint
            .unwrap_or_default()
            .starts_with("did you mean \"4KiB\"?"));
        let unknown = parse_size_str("4parsecs").unwrap_err();
        assert!(unknown.hint.unwrap_or_default().contains("KiB"));
        let overflow = parse_size_str("20000000000GiB").unwrap_err();
        assert!(overflow.message.contains("too large"));
    }
}
