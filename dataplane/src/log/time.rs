//! Calendar dates for log lines and syslog headers, local or GMT, from the C library's
//! time zone rules (as HAProxy takes them).

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// Month abbreviations, as logs write them.
pub const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A broken-down date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    /// Year, e.g. 2026.
    pub year: i32,
    /// Month, 0 for January.
    pub month: u8,
    /// Day of the month, from 1.
    pub day: u8,
    /// Hour.
    pub hour: u8,
    /// Minute.
    pub minute: u8,
    /// Second.
    pub second: u8,
    /// Milliseconds.
    pub millis: u16,
    /// Offset from UTC, in seconds east.
    pub offset_s: i32,
}

impl Clock {
    /// `t` in the local time zone.
    pub fn local(t: SystemTime) -> Self {
        Self::of(t, true)
    }

    /// `t` in GMT.
    pub fn gmt(t: SystemTime) -> Self {
        Self::of(t, false)
    }

    fn of(t: SystemTime, local: bool) -> Self {
        let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs() as libc::time_t;
        // SAFETY: `tm` is plain data that the C library fills; both pointers are valid
        // for the call, and the `_r` variants keep no shared state.
        let tm = unsafe {
            let mut tm: libc::tm = std::mem::zeroed();
            if local {
                libc::localtime_r(&secs, &mut tm);
            } else {
                libc::gmtime_r(&secs, &mut tm);
            }
            tm
        };
        Self {
            year: tm.tm_year + 1900,
            month: tm.tm_mon as u8,
            day: tm.tm_mday as u8,
            hour: tm.tm_hour as u8,
            minute: tm.tm_min as u8,
            second: tm.tm_sec as u8,
            millis: since.subsec_millis() as u16,
            offset_s: if local { tm.tm_gmtoff as i32 } else { 0 },
        }
    }

    /// `dd/Mon/yyyy:HH:MM:SS`, the start of every log date.
    fn write_day_time(&self, out: &mut Vec<u8>) {
        let _ = write!(
            out,
            "{:02}/{}/{:04}:{:02}:{:02}:{:02}",
            self.day, MONTHS[self.month as usize], self.year, self.hour, self.minute, self.second
        );
    }

    /// `dd/Mon/yyyy:HH:MM:SS.mmm` (`%t`, `%tr`).
    pub fn write_log_millis(&self, out: &mut Vec<u8>) {
        self.write_day_time(out);
        let _ = write!(out, ".{:03}", self.millis);
    }

    /// `dd/Mon/yyyy:HH:MM:SS +hhmm` (`%T`, `%Tl`, `%trg`, `%trl`).
    pub fn write_log_zone(&self, out: &mut Vec<u8>) {
        self.write_day_time(out);
        let (sign, off) = if self.offset_s < 0 {
            ('-', -self.offset_s)
        } else {
            ('+', self.offset_s)
        };
        let _ = write!(out, " {sign}{:02}{:02}", off / 3600, off / 60 % 60);
    }

    /// `yyyy-mm-ddTHH:MM:SS.uuuuuu+hh:mm` (rfc5424 and iso headers).
    pub fn write_iso(&self, out: &mut Vec<u8>) {
        let (sign, off) = if self.offset_s < 0 {
            ('-', -self.offset_s)
        } else {
            ('+', self.offset_s)
        };
        let _ = write!(
            out,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}{sign}{:02}:{:02}",
            self.year,
            self.month + 1,
            self.day,
            self.hour,
            self.minute,
            self.second,
            u32::from(self.millis) * 1000,
            off / 3600,
            off / 60 % 60
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn gmt_dates() {
        // 2026-12-06 10:00:00.250 UTC
        let t = UNIX_EPOCH + Duration::from_millis(1_796_551_200_250);
        let c = Clock::gmt(t);
        let mut out = Vec::new();
        c.write_log_millis(&mut out);
        out.push(b'|');
        c.write_log_zone(&mut out);
        out.push(b'|');
        c.write_iso(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "06/Dec/2026:10:00:00.250|06/Dec/2026:10:00:00 +0000|2026-12-06T10:00:00.250000+00:00"
        );
    }
}
