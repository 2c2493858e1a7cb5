//! Parse errors for request and response heads, with the status each maps to.

use crate::scan::HeadError;

/// Why a request head was rejected. [`RequestError::status`] is what the proxy answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.reason())]
pub enum RequestError {
    RequestLineTooLong,
    HeadTooLarge,
    TooManyHeaders,
    LeadingEmptyLine,
    BareCr,
    BareLf,
    ObsFold,
    InvalidMethod,
    InvalidTarget,
    InvalidRequestLine,
    InvalidVersion,
    UnsupportedVersion,
    ConnectNotImplemented,
    InvalidHeaderName,
    InvalidHeaderValue,
    ContentLengthWithTransferEncoding,
    InvalidContentLength,
    ConflictingContentLength,
    InvalidTransferEncoding,
    RepeatedChunked,
    TransferEncodingInHttp10,
    MissingHost,
    MultipleHost,
    InvalidHost,
    UnsupportedExpectation,
}

impl RequestError {
    /// The response status for this error: 400, 414, 417, 431, 501 or 505.
    pub fn status(&self) -> u16 {
        match self {
            RequestError::RequestLineTooLong => 414,
            RequestError::HeadTooLarge | RequestError::TooManyHeaders => 431,
            RequestError::UnsupportedVersion => 505,
            RequestError::ConnectNotImplemented => 501,
            RequestError::UnsupportedExpectation => 417,
            _ => 400,
        }
    }

    /// Short human-readable reason, safe to put in a response body or a log line.
    pub fn reason(&self) -> &'static str {
        match self {
            RequestError::RequestLineTooLong => "request line too long",
            RequestError::HeadTooLarge => "request head too large",
            RequestError::TooManyHeaders => "too many header fields",
            RequestError::LeadingEmptyLine => "empty line before request line",
            RequestError::BareCr => "bare CR in head",
            RequestError::BareLf => "bare LF in head",
            RequestError::ObsFold => "obsolete line folding",
            RequestError::InvalidMethod => "invalid method",
            RequestError::InvalidTarget => "invalid request target",
            RequestError::InvalidRequestLine => "malformed request line",
            RequestError::InvalidVersion => "malformed HTTP version",
            RequestError::UnsupportedVersion => "HTTP version not supported",
            RequestError::ConnectNotImplemented => "CONNECT not implemented",
            RequestError::InvalidHeaderName => "invalid header field name",
            RequestError::InvalidHeaderValue => "invalid header field value",
            RequestError::ContentLengthWithTransferEncoding => {
                "both Content-Length and Transfer-Encoding"
            }
            RequestError::InvalidContentLength => "invalid Content-Length",
            RequestError::ConflictingContentLength => "conflicting Content-Length values",
            RequestError::InvalidTransferEncoding => "invalid Transfer-Encoding",
            RequestError::RepeatedChunked => "chunked applied more than once",
            RequestError::TransferEncodingInHttp10 => "Transfer-Encoding in HTTP/1.0",
            RequestError::MissingHost => "missing Host",
            RequestError::MultipleHost => "more than one Host",
            RequestError::InvalidHost => "invalid Host",
            RequestError::UnsupportedExpectation => "unsupported expectation",
        }
    }
}

/// Why an upstream response head was rejected; the proxy answers 502 for every one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.reason())]
pub enum ResponseError {
    StatusLineTooLong,
    HeadTooLarge,
    TooManyHeaders,
    LeadingEmptyLine,
    BareCr,
    BareLf,
    ObsFold,
    InvalidStatusLine,
    InvalidVersion,
    UnsupportedVersion,
    InvalidStatus,
    InvalidHeaderName,
    InvalidHeaderValue,
    ContentLengthWithTransferEncoding,
    InvalidContentLength,
    ConflictingContentLength,
    InvalidTransferEncoding,
    RepeatedChunked,
    TransferEncodingInHttp10,
}

impl ResponseError {
    /// Short human-readable reason for logs and the 502 body.
    pub fn reason(&self) -> &'static str {
        match self {
            ResponseError::StatusLineTooLong => "upstream status line too long",
            ResponseError::HeadTooLarge => "upstream response head too large",
            ResponseError::TooManyHeaders => "upstream sent too many header fields",
            ResponseError::LeadingEmptyLine => "empty line before upstream status line",
            ResponseError::BareCr => "bare CR in upstream head",
            ResponseError::BareLf => "bare LF in upstream head",
            ResponseError::ObsFold => "obsolete line folding in upstream head",
            ResponseError::InvalidStatusLine => "malformed upstream status line",
            ResponseError::InvalidVersion => "malformed upstream HTTP version",
            ResponseError::UnsupportedVersion => "unsupported upstream HTTP version",
            ResponseError::InvalidStatus => "invalid upstream status code",
            ResponseError::InvalidHeaderName => "invalid upstream header field name",
            ResponseError::InvalidHeaderValue => "invalid upstream header field value",
            ResponseError::ContentLengthWithTransferEncoding => {
                "upstream sent both Content-Length and Transfer-Encoding"
            }
            ResponseError::InvalidContentLength => "invalid upstream Content-Length",
            ResponseError::ConflictingContentLength => "conflicting upstream Content-Length",
            ResponseError::InvalidTransferEncoding => "invalid upstream Transfer-Encoding",
            ResponseError::RepeatedChunked => "upstream applied chunked more than once",
            ResponseError::TransferEncodingInHttp10 => "Transfer-Encoding in HTTP/1.0 response",
        }
    }

    /// Always 502: the upstream, not the client, is at fault.
    pub fn status(&self) -> u16 {
        502
    }
}

impl From<HeadError> for RequestError {
    fn from(e: HeadError) -> Self {
        match e {
            HeadError::TooLarge => RequestError::HeadTooLarge,
            HeadError::TooManyFields => RequestError::TooManyHeaders,
            HeadError::BareCr => RequestError::BareCr,
            HeadError::BareLf => RequestError::BareLf,
            HeadError::ObsFold => RequestError::ObsFold,
            HeadError::InvalidName => RequestError::InvalidHeaderName,
            HeadError::InvalidValue => RequestError::InvalidHeaderValue,
            HeadError::InvalidContentLength => RequestError::InvalidContentLength,
            HeadError::ConflictingContentLength => RequestError::ConflictingContentLength,
            HeadError::InvalidTransferEncoding => RequestError::InvalidTransferEncoding,
            HeadError::RepeatedChunked => RequestError::RepeatedChunked,
        }
    }
}

impl From<HeadError> for ResponseError {
    fn from(e: HeadError) -> Self {
        match e {
            HeadError::TooLarge => ResponseError::HeadTooLarge,
            HeadError::TooManyFields => ResponseError::TooManyHeaders,
            HeadError::BareCr => ResponseError::BareCr,
            HeadError::BareLf => ResponseError::BareLf,
            HeadError::ObsFold => ResponseError::ObsFold,
            HeadError::InvalidName => ResponseError::InvalidHeaderName,
            HeadError::InvalidValue => ResponseError::InvalidHeaderValue,
            HeadError::InvalidContentLength => ResponseError::InvalidContentLength,
            HeadError::ConflictingContentLength => ResponseError::ConflictingContentLength,
            HeadError::InvalidTransferEncoding => ResponseError::InvalidTransferEncoding,
            HeadError::RepeatedChunked => ResponseError::RepeatedChunked,
        }
    }
}
