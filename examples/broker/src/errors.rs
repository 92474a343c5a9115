//! streamlog's errors as Kafka error codes: the crate's own mapping
//! ([`streamlog::Error::kafka_code`]), in `kafka-protocol`'s types.

use kafka_protocol::ResponseError;
use streamlog::Error;

/// The Kafka error code a client gets for `e`.
pub fn code(e: &Error) -> i16 {
    e.kafka_code().code()
}

/// The Kafka error for `e` (`UNKNOWN_SERVER_ERROR` for a code newer than `kafka-protocol`
/// knows).
pub fn kafka_error(e: &Error) -> ResponseError {
    ResponseError::try_from_code(code(e)).unwrap_or(ResponseError::UnknownServerError)
}
