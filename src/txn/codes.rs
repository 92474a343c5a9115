//! Kafka's protocol error codes the transaction coordinator answers with. Stand-in until the
//! crate-wide `KafkaCode` lands (same names, same `int16`s), so the switch is an import.

/// A Kafka protocol error code (`Errors` in Kafka's Java client).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Debug)]
pub struct KafkaCode(i16);

macro_rules! kafka_codes {
    ($($name:ident = $code:expr;)*) => {
        impl KafkaCode {
            $(
                #[doc = concat!("`", stringify!($name), "` (", stringify!($code), ").")]
                pub const $name: KafkaCode = KafkaCode($code);
            )*

            /// Kafka's name for this code (`None` for a code this crate does not know).
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($code => Some(stringify!($name)),)*
                    _ => None,
                }
            }
        }
    };
}

kafka_codes! {
    UNKNOWN_SERVER_ERROR = -1;
    NONE = 0;
    CORRUPT_MESSAGE = 2;
    UNKNOWN_TOPIC_OR_PARTITION = 3;
    NOT_LEADER_OR_FOLLOWER = 6;
    REQUEST_TIMED_OUT = 7;
    MESSAGE_TOO_LARGE = 10;
    COORDINATOR_LOAD_IN_PROGRESS = 14;
    COORDINATOR_NOT_AVAILABLE = 15;
    NOT_COORDINATOR = 16;
    RECORD_LIST_TOO_LARGE = 18;
    NOT_ENOUGH_REPLICAS = 19;
    NOT_ENOUGH_REPLICAS_AFTER_APPEND = 20;
    INVALID_REQUIRED_ACKS = 21;
    INVALID_REQUEST = 42;
    UNSUPPORTED_FOR_MESSAGE_FORMAT = 43;
    INVALID_PRODUCER_EPOCH = 47;
    INVALID_TXN_STATE = 48;
    INVALID_PRODUCER_ID_MAPPING = 49;
    INVALID_TRANSACTION_TIMEOUT = 50;
    CONCURRENT_TRANSACTIONS = 51;
    TRANSACTION_COORDINATOR_FENCED = 52;
    KAFKA_STORAGE_ERROR = 56;
    UNKNOWN_PRODUCER_ID = 59;
    PRODUCER_FENCED = 90;
    TRANSACTIONAL_ID_NOT_FOUND = 105;
    TRANSACTION_ABORTABLE = 120;
}

impl KafkaCode {
    /// The code for an `int16` read off the wire.
    pub const fn from_i16(code: i16) -> KafkaCode {
        KafkaCode(code)
    }

    /// The `int16` on the wire.
    pub const fn code(self) -> i16 {
        self.0
    }

    /// Whether this is an error (anything but `NONE`).
    pub const fn is_error(self) -> bool {
        self.0 != 0
    }
}

impl std::fmt::Display for KafkaCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "error code {}", self.0),
        }
    }
}
