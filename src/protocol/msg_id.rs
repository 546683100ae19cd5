//! Msg_Id (spec §8.4.3.2): 64 bits packing the ISMG's clock, its gateway code and a sequence.

use std::fmt;

/// A CMPP Msg_Id. On the SP side it is an opaque correlation key; the parts are for people.
/// Values exceed 2^53, so JSON and databases must carry it as u64 or as a decimal string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MsgId(pub u64);

/// The fields packed into a Msg_Id, most significant first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MsgIdParts {
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    /// The ISMG (gateway) code, 22 bits.
    pub gateway: u32,
    pub sequence: u16,
}

// (shift, mask) of each part, from the spec's bit numbering 64..1.
const MONTH: (u32, u64) = (60, 0xF);
const DAY: (u32, u64) = (55, 0x1F);
const HOUR: (u32, u64) = (50, 0x1F);
const MINUTE: (u32, u64) = (44, 0x3F);
const SECOND: (u32, u64) = (38, 0x3F);
const GATEWAY: (u32, u64) = (16, 0x3F_FFFF);
const SEQUENCE: (u32, u64) = (0, 0xFFFF);

fn field(id: u64, (shift, mask): (u32, u64)) -> u64 {
    (id >> shift) & mask
}

fn place(value: u64, (shift, mask): (u32, u64)) -> u64 {
    (value & mask) << shift
}

impl MsgId {
    /// Packs the parts; each is masked to its width (a gateway code above 22 bits loses its high bits).
    pub fn pack(parts: MsgIdParts) -> MsgId {
        MsgId(
            place(parts.month.into(), MONTH)
                | place(parts.day.into(), DAY)
                | place(parts.hour.into(), HOUR)
                | place(parts.minute.into(), MINUTE)
                | place(parts.second.into(), SECOND)
                | place(parts.gateway.into(), GATEWAY)
                | place(parts.sequence.into(), SEQUENCE),
        )
    }

    /// Splits the id into its parts. Every u64 unpacks; ids from other vendors may hold nonsense dates.
    pub fn unpack(self) -> MsgIdParts {
        // The masks make every narrowing below lossless.
        MsgIdParts {
            month: field(self.0, MONTH) as u8,
            day: field(self.0, DAY) as u8,
            hour: field(self.0, HOUR) as u8,
            minute: field(self.0, MINUTE) as u8,
            second: field(self.0, SECOND) as u8,
            gateway: field(self.0, GATEWAY) as u32,
            sequence: field(self.0, SEQUENCE) as u16,
        }
    }
}

impl fmt::Display for MsgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u64> for MsgId {
    fn from(value: u64) -> Self {
        MsgId(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_example_unpacks() {
        let parts = MsgId(0xB2B9_DA80_0001_0000).unpack();
        assert_eq!(
            parts,
            MsgIdParts {
                month: 11,
                day: 5,
                hour: 14,
                minute: 29,
                second: 42,
                gateway: 1,
                sequence: 0
            }
        );
        assert_eq!(MsgId::pack(parts), MsgId(0xB2B9_DA80_0001_0000));
    }

    #[test]
    fn every_id_round_trips_through_its_parts() {
        for id in [0u64, u64::MAX, 0x0123_4567_89AB_CDEF, 1 << 38] {
            assert_eq!(MsgId::pack(MsgId(id).unpack()), MsgId(id));
        }
    }
}
