//! Command_Id values (spec §8.7.1). A response id is the request id with the top bit set.

use std::fmt;

const RESPONSE_BIT: u32 = 0x8000_0000;

macro_rules! command_ids {
    ($($variant:ident = $value:literal, $name:literal;)*) => {
        /// A Command_Id, known or not; unknown values are kept so nothing is lost on decode.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum CommandId {
            $($variant,)*
            Other(u32),
        }

        impl CommandId {
            /// The numeric Command_Id on the wire.
            pub fn value(self) -> u32 {
                match self {
                    $(CommandId::$variant => $value,)*
                    CommandId::Other(v) => v,
                }
            }

            /// The spec's name, e.g. `CMPP_SUBMIT_RESP`; `None` for unknown ids.
            pub fn name(self) -> Option<&'static str> {
                match self {
                    $(CommandId::$variant => Some($name),)*
                    CommandId::Other(_) => None,
                }
            }

            /// Parses a spec name, with or without the `CMPP_` prefix and in any case.
            pub fn from_name(name: &str) -> Option<CommandId> {
                let upper = name.trim().to_ascii_uppercase();
                let bare = upper.strip_prefix("CMPP_").unwrap_or(&upper);
                [$(CommandId::$variant,)*]
                    .into_iter()
                    .find(|c| c.name().and_then(|n| n.strip_prefix("CMPP_")) == Some(bare))
            }
        }

        impl From<u32> for CommandId {
            fn from(value: u32) -> Self {
                match value {
                    $($value => CommandId::$variant,)*
                    other => CommandId::Other(other),
                }
            }
        }
    };
}

command_ids! {
    Connect = 0x0000_0001, "CMPP_CONNECT";
    ConnectResp = 0x8000_0001, "CMPP_CONNECT_RESP";
    Terminate = 0x0000_0002, "CMPP_TERMINATE";
    TerminateResp = 0x8000_0002, "CMPP_TERMINATE_RESP";
    Submit = 0x0000_0004, "CMPP_SUBMIT";
    SubmitResp = 0x8000_0004, "CMPP_SUBMIT_RESP";
    Deliver = 0x0000_0005, "CMPP_DELIVER";
    DeliverResp = 0x8000_0005, "CMPP_DELIVER_RESP";
    Query = 0x0000_0006, "CMPP_QUERY";
    QueryResp = 0x8000_0006, "CMPP_QUERY_RESP";
    Cancel = 0x0000_0007, "CMPP_CANCEL";
    CancelResp = 0x8000_0007, "CMPP_CANCEL_RESP";
    ActiveTest = 0x0000_0008, "CMPP_ACTIVE_TEST";
    ActiveTestResp = 0x8000_0008, "CMPP_ACTIVE_TEST_RESP";
    Fwd = 0x0000_0009, "CMPP_FWD";
    FwdResp = 0x8000_0009, "CMPP_FWD_RESP";
}

impl CommandId {
    /// Whether this id is a response (top bit set).
    pub fn is_response(self) -> bool {
        self.value() & RESPONSE_BIT != 0
    }

    /// The response id that answers this request id.
    pub fn response(self) -> CommandId {
        CommandId::from(self.value() | RESPONSE_BIT)
    }
}

impl fmt::Display for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "Command_Id 0x{:08x}", self.value()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_pair_up() {
        for value in [1u32, 2, 4, 5, 6, 7, 8, 9] {
            let request = CommandId::from(value);
            assert!(!request.is_response());
            assert_eq!(request.value(), value);
            let response = request.response();
            assert!(response.is_response());
            assert_eq!(response.value(), value | RESPONSE_BIT);
            assert_ne!(response.name(), None);
        }
        assert_eq!(CommandId::from(3), CommandId::Other(3));
        assert_eq!(CommandId::Other(3).to_string(), "Command_Id 0x00000003");
    }

    #[test]
    fn names_parse_with_or_without_prefix() {
        assert_eq!(
            CommandId::from_name("submit_resp"),
            Some(CommandId::SubmitResp)
        );
        assert_eq!(
            CommandId::from_name("CMPP_DELIVER"),
            Some(CommandId::Deliver)
        );
        assert_eq!(CommandId::from_name("bogus"), None);
    }
}
