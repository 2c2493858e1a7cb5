//! Peeking at the first bytes of a connection: protocol detection and a TLS
//! ClientHello parser that reads SNI and ALPN without terminating TLS.
//!
//! Everything here is pure, allocation-free and panic-free on any input (every
//! read goes through [`Reader`], which returns `None` instead of indexing out of
//! bounds), so it can be fuzzed directly through [`parse_client_hello`] and
//! [`detect`].
//!
//! Scope: the ClientHello must fit in the first TLS record (a record carries at
//! most 16 KiB, far more than any real ClientHello, post-quantum key shares
//! included). A hello split across records is reported as
//! [`HelloError::Fragmented`] rather than reassembled, because reassembly would
//! need a copy and such clients do not exist in practice.

/// Largest plaintext TLS record payload (RFC 8446 §5.1).
pub const MAX_RECORD_PAYLOAD: usize = 16 * 1024;
/// The most bytes a caller ever needs to buffer before [`parse_client_hello`]
/// gives a final answer: one full record with its 5-byte header.
pub const MAX_PEEK: usize = MAX_RECORD_PAYLOAD + 5;
/// Longest DNS name (RFC 1035), the bound of [`SniName`].
pub const MAX_HOSTNAME: usize = 253;

const CONTENT_HANDSHAKE: u8 = 0x16;
const HANDSHAKE_CLIENT_HELLO: u8 = 0x01;
const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;
const EXT_SUPPORTED_VERSIONS: u16 = 43;
const TLS13: u16 = 0x0304;

/// The connection preface every HTTP/2 client sends first (RFC 9113 §3.4).
pub const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Longest HTTP/1 method token we recognise; longer tokens are not HTTP.
const MAX_METHOD: usize = 20;

/// What the first bytes of a connection look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// A TLS handshake record.
    Tls,
    /// The HTTP/2 prior-knowledge preface.
    Http2Preface,
    /// An HTTP/1 request line (method token, space, request target).
    Http1,
    /// Anything else: relay it as opaque TCP.
    Opaque,
    /// Too few bytes to tell; read more (the answer is final by 24 bytes).
    NeedMore,
}

/// Classify a connection from its first bytes. Never needs more than
/// [`HTTP2_PREFACE`]`.len()` bytes (24) to decide.
pub fn detect(first: &[u8]) -> Protocol {
    let Some(&head) = first.first() else {
        return Protocol::NeedMore;
    };
    if head == CONTENT_HANDSHAKE {
        return match (first.get(1), first.get(2)) {
            // Record version 3.x with x <= 4 (SSL 3.0 .. TLS 1.3 framing).
            (Some(3), Some(&minor)) if minor <= 4 => Protocol::Tls,
            (Some(3), None) | (None, _) => Protocol::NeedMore,
            _ => Protocol::Opaque,
        };
    }
    // The preface starts with "PRI ", which also looks like a method: test it first.
    let shared = first.len().min(HTTP2_PREFACE.len());
    if first.get(..shared) == HTTP2_PREFACE.get(..shared) {
        return if shared == HTTP2_PREFACE.len() {
            Protocol::Http2Preface
        } else {
            Protocol::NeedMore
        };
    }
    detect_http1(first)
}

/// An HTTP/1 request line starts with an upper-case method token, one space and a
/// visible character. Real methods are upper-case; accepting every RFC 9110
/// `tchar` would call many binary protocols HTTP.
fn detect_http1(first: &[u8]) -> Protocol {
    for (at, &byte) in first.iter().enumerate() {
        if byte == b' ' {
            if at == 0 {
                return Protocol::Opaque;
            }
            return match first.get(at + 1) {
                None => Protocol::NeedMore,
                Some(0x21..=0x7e) => Protocol::Http1,
                Some(_) => Protocol::Opaque,
            };
        }
        let method_char = byte.is_ascii_uppercase() || byte == b'-' || byte == b'_';
        if !method_char || at >= MAX_METHOD {
            return Protocol::Opaque;
        }
    }
    Protocol::NeedMore
}

/// A validated, lower-cased SNI host name held inline (no allocation).
#[derive(Clone, Copy)]
pub struct SniName {
    bytes: [u8; MAX_HOSTNAME],
    len: u8,
}

impl SniName {
    /// Validate a DNS host name (letters, digits, '-', '_', dot-separated labels of
    /// 1..=63 bytes, no leading or trailing '-', at most 253 bytes; one trailing dot
    /// is dropped) and lower-case it.
    pub fn new(raw: &[u8]) -> Option<SniName> {
        let raw = raw.strip_suffix(b".").unwrap_or(raw);
        if raw.is_empty() || raw.len() > MAX_HOSTNAME {
            return None;
        }
        let mut bytes = [0u8; MAX_HOSTNAME];
        for label in raw.split(|&b| b == b'.') {
            let valid_chars = label
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if label.is_empty()
                || label.len() > 63
                || !valid_chars
                || label.first() == Some(&b'-')
                || label.last() == Some(&b'-')
            {
                return None;
            }
        }
        for (slot, byte) in bytes.iter_mut().zip(raw) {
            *slot = byte.to_ascii_lowercase();
        }
        let len = u8::try_from(raw.len()).ok()?;
        Some(SniName { bytes, len })
    }

    pub fn as_str(&self) -> &str {
        let bytes = self.bytes.get(..usize::from(self.len)).unwrap_or_default();
        // Only ASCII was admitted by `new`, so this cannot fail.
        std::str::from_utf8(bytes).unwrap_or_default()
    }
}

impl std::fmt::Debug for SniName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl PartialEq for SniName {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for SniName {}

/// The ALPN protocol list of a ClientHello, borrowed from the peeked bytes.
/// Already validated: every entry is non-empty and the list is well formed.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct AlpnList<'a> {
    raw: &'a [u8],
}

impl<'a> AlpnList<'a> {
    pub fn iter(&self) -> AlpnIter<'a> {
        AlpnIter {
            reader: Reader::new(self.raw),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    pub fn contains(&self, protocol: &[u8]) -> bool {
        self.iter().any(|offered| offered == protocol)
    }
}

impl std::fmt::Debug for AlpnList<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.iter().map(String::from_utf8_lossy))
            .finish()
    }
}

/// Iterator over ALPN protocol ids.
#[derive(Debug, Clone)]
pub struct AlpnIter<'a> {
    reader: Reader<'a>,
}

impl<'a> Iterator for AlpnIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let len = self.reader.u8()?;
        self.reader.bytes(usize::from(len))
    }
}

/// The fields of a ClientHello that routing needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientHello<'a> {
    /// The host_name entry of the server_name extension, validated and lower-cased.
    pub sni: Option<SniName>,
    pub alpn: AlpnList<'a>,
    /// `legacy_version` of the hello (0x0303 for TLS 1.2 and 1.3 clients).
    pub legacy_version: u16,
    /// Whether supported_versions offers TLS 1.3.
    pub offers_tls13: bool,
}

/// Why bytes that start like a TLS handshake are not a usable ClientHello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelloError {
    /// The first handshake message is not a ClientHello.
    NotClientHello,
    /// The record length exceeds the TLS limit.
    RecordTooLong,
    /// The hello continues in a later record (see the module docs).
    Fragmented,
    /// A length field points outside its enclosing structure.
    Truncated,
    /// The server_name extension is malformed or its host name is invalid.
    BadServerName,
    /// The ALPN extension is malformed (empty list or empty protocol id).
    BadAlpn,
    /// The same extension appears twice (RFC 8446 §4.2 forbids it).
    DuplicateExtension,
}

impl HelloError {
    pub fn as_str(self) -> &'static str {
        match self {
            HelloError::NotClientHello => "not_client_hello",
            HelloError::RecordTooLong => "record_too_long",
            HelloError::Fragmented => "fragmented_hello",
            HelloError::Truncated => "truncated_hello",
            HelloError::BadServerName => "bad_server_name",
            HelloError::BadAlpn => "bad_alpn",
            HelloError::DuplicateExtension => "duplicate_extension",
        }
    }
}

/// Result of peeking at the start of a connection.
// `Hello` holds the SNI inline (254 bytes) so that parsing never allocates;
// the value lives on the stack once per connection, so its size is harmless.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peek<'a> {
    /// The record is not complete yet: read at least this many bytes in total
    /// (never more than [`MAX_PEEK`]).
    Incomplete {
        need: usize,
    },
    /// The bytes are not a TLS handshake record.
    NotTls,
    /// A TLS handshake record that cannot be used for routing.
    Invalid(HelloError),
    Hello(ClientHello<'a>),
}

/// Parse the ClientHello at the start of `data` (the bytes read so far).
pub fn parse_client_hello(data: &[u8]) -> Peek<'_> {
    match detect(data) {
        Protocol::Tls => {}
        Protocol::NeedMore if matches!(data.first(), None | Some(&CONTENT_HANDSHAKE)) => {
            return Peek::Incomplete { need: 5 };
        }
        _ => return Peek::NotTls,
    }
    let mut record = Reader::new(data);
    let header = (record.u8(), record.u16(), record.u16());
    let (Some(_), Some(_), Some(len)) = header else {
        return Peek::Incomplete { need: 5 };
    };
    let len = usize::from(len);
    if len > MAX_RECORD_PAYLOAD {
        return Peek::Invalid(HelloError::RecordTooLong);
    }
    let Some(payload) = record.bytes(len) else {
        return Peek::Incomplete { need: 5 + len };
    };
    match parse_handshake(payload) {
        Ok(hello) => Peek::Hello(hello),
        Err(err) => Peek::Invalid(err),
    }
}

fn parse_handshake(payload: &[u8]) -> Result<ClientHello<'_>, HelloError> {
    let mut msg = Reader::new(payload);
    match msg.u8() {
        Some(HANDSHAKE_CLIENT_HELLO) => {}
        Some(_) => return Err(HelloError::NotClientHello),
        None => return Err(HelloError::Truncated),
    }
    let body_len = msg.u24().ok_or(HelloError::Truncated)?;
    let body = match msg.bytes(body_len) {
        Some(body) => body,
        None => return Err(HelloError::Fragmented),
    };
    let mut body = Reader::new(body);
    let legacy_version = body.u16().ok_or(HelloError::Truncated)?;
    body.bytes(32).ok_or(HelloError::Truncated)?; // random
    body.vec_u8().ok_or(HelloError::Truncated)?; // legacy_session_id
    let suites = body.vec_u16().ok_or(HelloError::Truncated)?;
    if suites.is_empty() || suites.len() % 2 != 0 {
        return Err(HelloError::Truncated);
    }
    body.vec_u8().ok_or(HelloError::Truncated)?; // legacy_compression_methods
    let mut hello = ClientHello {
        sni: None,
        alpn: AlpnList::default(),
        legacy_version,
        offers_tls13: false,
    };
    if body.is_empty() {
        // Extensions are optional in TLS 1.2 hellos.
        return Ok(hello);
    }
    let mut extensions = Reader::new(body.vec_u16().ok_or(HelloError::Truncated)?);
    let mut seen = Seen::default();
    while !extensions.is_empty() {
        let kind = extensions.u16().ok_or(HelloError::Truncated)?;
        let data = extensions.vec_u16().ok_or(HelloError::Truncated)?;
        match kind {
            EXT_SERVER_NAME => {
                mark_once(&mut seen.sni)?;
                hello.sni = parse_server_name(data)?;
            }
            EXT_ALPN => {
                mark_once(&mut seen.alpn)?;
                hello.alpn = parse_alpn(data)?;
            }
            EXT_SUPPORTED_VERSIONS => {
                mark_once(&mut seen.versions)?;
                hello.offers_tls13 = offers_tls13(data)?;
            }
            _ => {}
        }
    }
    Ok(hello)
}

/// Which of the extensions we read were seen already.
#[derive(Default)]
struct Seen {
    sni: bool,
    alpn: bool,
    versions: bool,
}

/// Set `flag`, failing if it was set: an extension may appear only once.
fn mark_once(flag: &mut bool) -> Result<(), HelloError> {
    if std::mem::replace(flag, true) {
        return Err(HelloError::DuplicateExtension);
    }
    Ok(())
}

fn parse_server_name(data: &[u8]) -> Result<Option<SniName>, HelloError> {
    let mut ext = Reader::new(data);
    let mut list = Reader::new(ext.vec_u16().ok_or(HelloError::BadServerName)?);
    if !ext.is_empty() || list.is_empty() {
        return Err(HelloError::BadServerName);
    }
    let mut found = None;
    while !list.is_empty() {
        let kind = list.u8().ok_or(HelloError::BadServerName)?;
        let name = list.vec_u16().ok_or(HelloError::BadServerName)?;
        // Only host_name (0) is defined; RFC 6066 allows one name per type.
        if kind == 0 {
            if found.is_some() {
                return Err(HelloError::BadServerName);
            }
            found = Some(SniName::new(name).ok_or(HelloError::BadServerName)?);
        }
    }
    Ok(found)
}

fn parse_alpn(data: &[u8]) -> Result<AlpnList<'_>, HelloError> {
    let mut ext = Reader::new(data);
    let raw = ext.vec_u16().ok_or(HelloError::BadAlpn)?;
    if !ext.is_empty() || raw.is_empty() {
        return Err(HelloError::BadAlpn);
    }
    // Validate once so that `AlpnIter` can simply stop at the end.
    let mut list = Reader::new(raw);
    while !list.is_empty() {
        match list.vec_u8() {
            Some(id) if !id.is_empty() => {}
            _ => return Err(HelloError::BadAlpn),
        }
    }
    Ok(AlpnList { raw })
}

fn offers_tls13(data: &[u8]) -> Result<bool, HelloError> {
    let mut ext = Reader::new(data);
    let mut versions = Reader::new(ext.vec_u8().ok_or(HelloError::Truncated)?);
    let mut tls13 = false;
    while let Some(version) = versions.u16() {
        tls13 |= version == TLS13;
    }
    Ok(tls13)
}

/// A bounds-checked cursor: every accessor returns `None` past the end.
#[derive(Debug, Clone)]
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(rest: &'a [u8]) -> Self {
        Reader { rest }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.rest.len() {
            return None;
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.bytes(1)?.first().copied()
    }

    fn u16(&mut self) -> Option<u16> {
        let b = self.bytes(2)?;
        Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
    }

    fn u24(&mut self) -> Option<usize> {
        let b = self.bytes(3)?;
        let (high, mid, low) = (*b.first()?, *b.get(1)?, *b.get(2)?);
        Some((usize::from(high) << 16) | (usize::from(mid) << 8) | usize::from(low))
    }

    /// A vector with a one-byte length prefix.
    fn vec_u8(&mut self) -> Option<&'a [u8]> {
        let len = self.u8()?;
        self.bytes(usize::from(len))
    }

    /// A vector with a two-byte length prefix.
    fn vec_u16(&mut self) -> Option<&'a [u8]> {
        let len = self.u16()?;
        self.bytes(usize::from(len))
    }
}

#[cfg(test)]
#[path = "clienthello_tests.rs"]
mod tests;
