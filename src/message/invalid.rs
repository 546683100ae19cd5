//! Why a message is refused, with the field it is about; the HTTP layer turns the kind into a
//! status code and the worker into a dead-letter reason.

/// What sort of problem, so HTTP can answer 400 / 413 / 415 / 422.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidKind {
    /// Missing or malformed field (400).
    Malformed,
    /// Too long: more segments or recipients than allowed (413).
    TooLarge,
    /// A coding or format the gateway does not send (415).
    Unsupported,
    /// Well-formed but not acceptable: a bad MSISDN, extension, Src_Id length (422).
    Unprocessable,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Invalid {
    pub kind: InvalidKind,
    pub field: &'static str,
    pub reason: String,
}

impl Invalid {
    pub fn new(kind: InvalidKind, field: &'static str, reason: impl Into<String>) -> Invalid {
        Invalid {
            kind,
            field,
            reason: reason.into(),
        }
    }

    pub fn malformed(field: &'static str, reason: impl Into<String>) -> Invalid {
        Invalid::new(InvalidKind::Malformed, field, reason)
    }

    pub fn unprocessable(field: &'static str, reason: impl Into<String>) -> Invalid {
        Invalid::new(InvalidKind::Unprocessable, field, reason)
    }
}
