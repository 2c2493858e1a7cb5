//! Just enough of an X.509 reader to tell certificates apart in a test: the serial number, the validity window and
//! the subject alternative names of a DER certificate.
//!
//! The tests crate has no X.509 parser (rustls verifies chains, it does not expose fields), and the tests need only
//! these few fields to see *which* certificate a server presented, so this walks the DER by hand. It is strict:
//! anything it does not expect is an error, so a malformed certificate fails the test instead of reading as zeros.

use std::fmt;

/// The fields of a certificate the tests compare.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertFields {
    /// The serial's INTEGER content bytes (as `x509-parser`'s `raw_serial`), lower-case hex.
    pub serial_hex: String,
    /// notBefore, unix seconds.
    pub not_before: i64,
    /// notAfter, unix seconds.
    pub not_after: i64,
    /// URI SANs (SPIFFE IDs), in certificate order.
    pub uris: Vec<String>,
    /// DNS SANs, in certificate order.
    pub dns: Vec<String>,
}

/// Why a certificate could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerError(pub String);

impl fmt::Display for DerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "certificate DER: {}", self.0)
    }
}

impl std::error::Error for DerError {}

fn bad(what: impl Into<String>) -> DerError {
    DerError(what.into())
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const OID: u8 = 0x06;
const BOOLEAN: u8 = 0x01;
const OCTET_STRING: u8 = 0x04;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
/// `[0] EXPLICIT` version, `[3] EXPLICIT` extensions, `[6]` URI and `[2]` DNS general names.
const VERSION: u8 = 0xa0;
const EXTENSIONS: u8 = 0xa3;
const GN_URI: u8 = 0x86;
const GN_DNS: u8 = 0x82;
/// 2.5.29.17, subjectAltName.
const SAN_OID: &[u8] = &[0x55, 0x1d, 0x11];

/// Splits one DER TLV off `input`: (tag, contents, rest).
fn tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), DerError> {
    let (&tag, rest) = input.split_first().ok_or_else(|| bad("truncated tag"))?;
    let (&first, rest) = rest.split_first().ok_or_else(|| bad("truncated length"))?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err(bad(format!("unsupported length form 0x{first:02x}")));
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(bad(format!(
            "tag 0x{tag:02x} claims {len} bytes, {} left",
            rest.len()
        )));
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

/// Like [`tlv`], but the tag must be `want`.
fn expect<'a>(input: &'a [u8], want: u8, what: &str) -> Result<(&'a [u8], &'a [u8]), DerError> {
    let (tag, value, rest) = tlv(input)?;
    if tag != want {
        return Err(bad(format!(
            "{what}: tag 0x{tag:02x}, expected 0x{want:02x}"
        )));
    }
    Ok((value, rest))
}

/// Reads the fields of a DER certificate.
pub fn parse(der: &[u8]) -> Result<CertFields, DerError> {
    let (cert, _) = expect(der, SEQUENCE, "Certificate")?;
    let (tbs, _) = expect(cert, SEQUENCE, "TBSCertificate")?;
    let mut rest = tbs;
    if rest.first() == Some(&VERSION) {
        rest = tlv(rest)?.2;
    }
    let (serial, rest) = expect(rest, INTEGER, "serialNumber")?;
    let (_, rest) = expect(rest, SEQUENCE, "signature")?;
    let (_, rest) = expect(rest, SEQUENCE, "issuer")?;
    let (validity, rest) = expect(rest, SEQUENCE, "validity")?;
    let (_, rest) = expect(rest, SEQUENCE, "subject")?;
    let (_, mut rest) = expect(rest, SEQUENCE, "subjectPublicKeyInfo")?;
    let (not_before, after) = time(validity, "notBefore")?;
    let (not_after, _) = time(after, "notAfter")?;
    let mut fields = CertFields {
        serial_hex: serial.iter().map(|b| format!("{b:02x}")).collect(),
        not_before,
        not_after,
        uris: Vec::new(),
        dns: Vec::new(),
    };
    // Skip the unique IDs ([1], [2]) if any; the extensions are the last field.
    while !rest.is_empty() {
        let (tag, value, next) = tlv(rest)?;
        if tag == EXTENSIONS {
            read_sans(value, &mut fields)?;
        }
        rest = next;
    }
    Ok(fields)
}

fn read_sans(explicit: &[u8], fields: &mut CertFields) -> Result<(), DerError> {
    let (mut list, _) = expect(explicit, SEQUENCE, "extensions")?;
    while !list.is_empty() {
        let (extension, next) = expect(list, SEQUENCE, "extension")?;
        list = next;
        let (oid, mut body) = expect(extension, OID, "extnID")?;
        if body.first() == Some(&BOOLEAN) {
            body = tlv(body)?.2;
        }
        let (value, _) = expect(body, OCTET_STRING, "extnValue")?;
        if oid != SAN_OID {
            continue;
        }
        let (mut names, _) = expect(value, SEQUENCE, "subjectAltName")?;
        while !names.is_empty() {
            let (tag, name, next) = tlv(names)?;
            names = next;
            let text = || String::from_utf8(name.to_vec()).map_err(|_| bad("SAN is not ASCII"));
            match tag {
                GN_URI => fields.uris.push(text()?),
                GN_DNS => fields.dns.push(text()?),
                _ => {}
            }
        }
    }
    Ok(())
}

/// Reads a UTCTime or GeneralizedTime (`…Z`, seconds, no fraction) as unix seconds.
fn time<'a>(input: &'a [u8], what: &str) -> Result<(i64, &'a [u8]), DerError> {
    let (tag, value, rest) = tlv(input)?;
    let text = std::str::from_utf8(value).map_err(|_| bad(format!("{what}: not ASCII")))?;
    let digits = text
        .strip_suffix('Z')
        .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| bad(format!("{what}: {text:?} is not a Z time")))?;
    let num = |range: std::ops::Range<usize>| -> i64 { digits[range].parse().unwrap_or_default() };
    let (year, tail) = match (tag, digits.len()) {
        // RFC 5280: two-digit years 50..99 are 19xx, 00..49 are 20xx.
        (UTC_TIME, 12) => {
            let yy = num(0..2);
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, 2)
        }
        (GENERALIZED_TIME, 14) => (num(0..4), 4),
        _ => return Err(bad(format!("{what}: tag 0x{tag:02x} {text:?}"))),
    };
    let (month, day) = (num(tail..tail + 2), num(tail + 2..tail + 4));
    let (hour, minute, second) = (
        num(tail + 4..tail + 6),
        num(tail + 6..tail + 8),
        num(tail + 8..tail + 10),
    );
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Ok((secs, rest))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair, SanType, SerialNumber};

    #[test]
    fn reads_what_rcgen_wrote() {
        let mut params = CertificateParams::new(vec!["a.example".to_string()]).unwrap();
        params
            .subject_alt_names
            .push(SanType::URI("spiffe://td/ns/x/sa/y".try_into().unwrap()));
        params.serial_number = Some(SerialNumber::from_slice(&[0x01, 0x02, 0xfe]));
        // UTCTime for years before 2050, GeneralizedTime from 2050 on.
        params.not_before = rcgen::date_time_ymd(2030, 1, 2);
        params.not_after =
            rcgen::date_time_ymd(2051, 3, 4) + std::time::Duration::from_secs(18_367);
        let cert = params.self_signed(&KeyPair::generate().unwrap()).unwrap();
        let fields = parse(cert.der()).unwrap();
        assert_eq!(fields.serial_hex, "0102fe");
        // 2030-01-02T00:00:00Z and 2051-03-04T05:06:07Z.
        assert_eq!(
            (fields.not_before, fields.not_after),
            (1_893_542_400, 2_561_519_167)
        );
        assert_eq!(fields.uris, vec!["spiffe://td/ns/x/sa/y".to_string()]);
        assert_eq!(fields.dns, vec!["a.example".to_string()]);
    }

    #[test]
    fn refuses_truncated_input() {
        let cert = CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .self_signed(&KeyPair::generate().unwrap())
            .unwrap();
        let der = cert.der();
        assert!(parse(&der[..der.len() / 2]).is_err());
        assert!(parse(&[]).is_err());
    }
}
