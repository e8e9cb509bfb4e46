//! HAProxy's numeric units: times (`us ms s m h d`, milliseconds when bare) and sizes
//! (`k m g`, powers of 1024).

use std::time::Duration;

/// Parses a time such as `10s`, `500` (milliseconds) or `100us`.
pub fn parse_time(word: &str) -> Result<Duration, String> {
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(format!(
            "'{word}' is not a time (expected a number with an optional unit us, ms, s, m, h or d)"
        ));
    }
    let value: u64 = word[..digits]
        .parse()
        .map_err(|_| format!("time '{word}' is too large"))?;
    let micros_per_unit: u64 = match &word[digits..] {
        "us" => 1,
        "" | "ms" => 1_000,
        "s" => 1_000_000,
        "m" => 60_000_000,
        "h" => 3_600_000_000,
        "d" => 86_400_000_000,
        unit => {
            return Err(format!(
                "unknown time unit '{unit}' in '{word}' (expected us, ms, s, m, h or d)"
            ))
        }
    };
    value
        .checked_mul(micros_per_unit)
        .map(Duration::from_micros)
        .ok_or_else(|| format!("time '{word}' is too large"))
}

/// Parses a size such as `16384`, `16k` or `1m`.
pub fn parse_size(word: &str) -> Result<u64, String> {
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(format!(
            "'{word}' is not a size (expected a number with an optional unit k, m or g)"
        ));
    }
    let value: u64 = word[..digits]
        .parse()
        .map_err(|_| format!("size '{word}' is too large"))?;
    let mult: u64 = match &word[digits..] {
        "" => 1,
        "k" | "K" => 1 << 10,
        "m" | "M" => 1 << 20,
        "g" | "G" => 1 << 30,
        unit => {
            return Err(format!(
                "unknown size unit '{unit}' in '{word}' (expected k, m or g)"
            ))
        }
    };
    value
        .checked_mul(mult)
        .ok_or_else(|| format!("size '{word}' is too large"))
}

/// Parses a plain unsigned integer argument, naming the keyword on failure.
pub fn parse_uint<T: std::str::FromStr>(keyword: &str, word: &str) -> Result<T, String> {
    word.parse()
        .map_err(|_| format!("'{keyword}' expects an unsigned integer, got '{word}'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("2000").unwrap(), Duration::from_millis(2000));
        assert_eq!(parse_time("2000ms").unwrap(), Duration::from_millis(2000));
        assert_eq!(parse_time("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_time("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_time("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_time("1d").unwrap(), Duration::from_secs(86400));
        assert_eq!(parse_time("150us").unwrap(), Duration::from_micros(150));
        assert!(parse_time("s").is_err());
        assert!(parse_time("10x").is_err());
        assert!(parse_time("99999999999999999999999").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("16384").unwrap(), 16384);
        assert_eq!(parse_size("16k").unwrap(), 16384);
        assert_eq!(parse_size("1m").unwrap(), 1 << 20);
        assert_eq!(parse_size("2g").unwrap(), 2 << 30);
        assert!(parse_size("k").is_err());
        assert!(parse_size("1t").is_err());
    }
}
