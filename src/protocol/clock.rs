//! The wall-clock formats CMPP uses, in China Standard Time (UTC+8, no daylight saving): the
//! CONNECT Timestamp, Msg_Id's date parts, and the report's YYMMDDHHMM. Pure functions of a Unix
//! time so they are testable; callers pass `SystemTime::now()`.

use std::time::{SystemTime, UNIX_EPOCH};

use super::connect_timestamp;

const CHINA_OFFSET_SECS: i64 = 8 * 3600;

/// A calendar time in UTC+8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChinaTime {
    pub year: i32,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

impl ChinaTime {
    pub fn now() -> ChinaTime {
        ChinaTime::from_system(SystemTime::now())
    }

    pub fn from_system(t: SystemTime) -> ChinaTime {
        let secs = match t.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_secs() as i64,
            Err(e) => -(e.duration().as_secs() as i64),
        };
        ChinaTime::from_unix(secs)
    }

    pub fn from_unix(unix_secs: i64) -> ChinaTime {
        let local = unix_secs + CHINA_OFFSET_SECS;
        let days = local.div_euclid(86_400);
        let secs = local.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        // Each narrowing is bounded by the arithmetic above (secs < 86 400, month ≤ 12, day ≤ 31).
        ChinaTime {
            year,
            month: month as u8,
            day: day as u8,
            hour: (secs / 3600) as u8,
            minute: (secs / 60 % 60) as u8,
            second: (secs % 60) as u8,
        }
    }

    /// CONNECT Timestamp, MMDDHHMMSS as a number.
    pub fn connect_timestamp(&self) -> u32 {
        connect_timestamp(self.month, self.day, self.hour, self.minute, self.second)
    }

    /// Report Submit_time / Done_time: YYMMDDHHMM.
    pub fn report_time(&self) -> String {
        format!(
            "{:02}{:02}{:02}{:02}{:02}",
            self.year.rem_euclid(100),
            self.month,
            self.day,
            self.hour,
            self.minute
        )
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (the well-known era-based algorithm; exact for every i64 day count in range).
fn civil_from_days(days: i64) -> (i32, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_to_china_time() {
        // 2026-11-25 20:49:46 UTC is 2026-11-26 04:49:46 in Beijing.
        let t = ChinaTime::from_unix(1_795_639_786);
        assert_eq!(
            t,
            ChinaTime {
                year: 2026,
                month: 11,
                day: 26,
                hour: 4,
                minute: 49,
                second: 46
            }
        );
        assert_eq!(t.connect_timestamp(), 1_126_044_946);
        assert_eq!(t.report_time(), "2611260449");
    }

    #[test]
    fn leap_day_and_epoch() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        // 2024-02-29 is day 19 782.
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(19_783), (2024, 3, 1));
    }
}
