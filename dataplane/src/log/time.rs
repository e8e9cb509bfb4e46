//! Calendar dates for log lines and syslog headers, local or GMT, from the C library's
//! time zone rules (as HAProxy takes them).

use std::cell::Cell;
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

thread_local! {
    /// The last second converted on this thread, local and GMT: a log line then costs
    /// no call into the C library's time zone code (which takes a lock) within a second.
    static LAST: Cell<[Option<(u64, Clock)>; 2]> = const { Cell::new([None, None]) };
}

/// Writes `n` with at least `width` digits.
fn digits(out: &mut Vec<u8>, n: u64, width: usize) {
    let mut b = itoa::Buffer::new();
    let s = b.format(n).as_bytes();
    out.extend(std::iter::repeat_n(b'0', width.saturating_sub(s.len())));
    out.extend_from_slice(s);
}

impl Clock {
    /// `t` in the local time zone.
    pub fn local(t: SystemTime) -> Self {
        Self::cached(t, true)
    }

    /// `t` in GMT.
    pub fn gmt(t: SystemTime) -> Self {
        Self::cached(t, false)
    }

    fn cached(t: SystemTime, local: bool) -> Self {
        let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        let slot = usize::from(local);
        let mut last = LAST.get();
        let mut clock = match last[slot] {
            Some((s, c)) if s == secs => c,
            _ => {
                let c = Self::convert(secs, local);
                last[slot] = Some((secs, c));
                LAST.set(last);
                c
            }
        };
        clock.millis = since.subsec_millis() as u16;
        clock
    }

    fn convert(secs: u64, local: bool) -> Self {
        let secs = secs as libc::time_t;
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
            millis: 0,
            offset_s: if local { tm.tm_gmtoff as i32 } else { 0 },
        }
    }

    /// `dd/Mon/yyyy:HH:MM:SS`, the start of every log date.
    fn write_day_time(&self, out: &mut Vec<u8>) {
        digits(out, u64::from(self.day), 2);
        out.push(b'/');
        out.extend_from_slice(MONTHS[self.month as usize].as_bytes());
        out.push(b'/');
        digits(out, self.year.max(0) as u64, 4);
        for (sep, n) in [(b':', self.hour), (b':', self.minute), (b':', self.second)] {
            out.push(sep);
            digits(out, u64::from(n), 2);
        }
    }

    /// `dd/Mon/yyyy:HH:MM:SS.mmm` (`%t`, `%tr`).
    pub fn write_log_millis(&self, out: &mut Vec<u8>) {
        self.write_day_time(out);
        out.push(b'.');
        digits(out, u64::from(self.millis), 3);
    }

    /// The offset from UTC: its sign, hours and minutes.
    fn offset(&self) -> (u8, u64, u64) {
        let off = self.offset_s.unsigned_abs();
        let sign = if self.offset_s < 0 { b'-' } else { b'+' };
        (sign, u64::from(off / 3600), u64::from(off / 60 % 60))
    }

    /// `dd/Mon/yyyy:HH:MM:SS +hhmm` (`%T`, `%Tl`, `%trg`, `%trl`).
    pub fn write_log_zone(&self, out: &mut Vec<u8>) {
        self.write_day_time(out);
        let (sign, h, m) = self.offset();
        out.extend_from_slice(&[b' ', sign]);
        digits(out, h, 2);
        digits(out, m, 2);
    }

    /// `Mmm dd HH:MM:SS` (rfc3164 headers).
    pub fn write_legacy(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(MONTHS[self.month as usize].as_bytes());
        out.push(b' ');
        if self.day < 10 {
            out.push(b' ');
        }
        digits(out, u64::from(self.day), 1);
        for (sep, n) in [(b' ', self.hour), (b':', self.minute), (b':', self.second)] {
            out.push(sep);
            digits(out, u64::from(n), 2);
        }
    }

    /// `yyyy-mm-ddTHH:MM:SS.uuuuuu+hh:mm` (rfc5424 and iso headers).
    pub fn write_iso(&self, out: &mut Vec<u8>) {
        digits(out, self.year.max(0) as u64, 4);
        out.push(b'-');
        digits(out, u64::from(self.month) + 1, 2);
        out.push(b'-');
        digits(out, u64::from(self.day), 2);
        for (sep, n) in [(b'T', self.hour), (b':', self.minute), (b':', self.second)] {
            out.push(sep);
            digits(out, u64::from(n), 2);
        }
        out.push(b'.');
        digits(out, u64::from(self.millis) * 1000, 6);
        let (sign, h, m) = self.offset();
        out.push(sign);
        digits(out, h, 2);
        out.push(b':');
        digits(out, m, 2);
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
        out.push(b'|');
        c.write_legacy(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "06/Dec/2026:10:00:00.250|06/Dec/2026:10:00:00 +0000|2026-12-06T10:00:00.250000+00:00|Dec  6 10:00:00"
        );
    }
}
