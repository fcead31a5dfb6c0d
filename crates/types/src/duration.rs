//! Durations as Nomad writes them: Go-style strings ("30s", "1h30m", "250ms")
//! in job files and signed nanosecond integers on the wire.

use std::time::Duration;

/// Parses a Go duration string such as `"1h30m"`, `"250ms"` or `"1.5s"`.
/// A bare `"0"` is zero. Negative durations are rejected.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".to_string());
    }
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.starts_with('-') {
        return Err(format!("negative duration {text:?}"));
    }
    let text = text.strip_prefix('+').unwrap_or(text);
    let bytes = text.as_bytes();
    let mut pos = 0;
    let mut total_nanos: f64 = 0.0;
    while pos < bytes.len() {
        let start = pos;
        while pos < bytes.len() && (bytes[pos].is_ascii_digit() || bytes[pos] == b'.') {
            pos += 1;
        }
        if start == pos {
            return Err(format!("invalid duration {text:?}: expected a number"));
        }
        let number: f64 = text[start..pos]
            .parse()
            .map_err(|_| format!("invalid duration {text:?}: bad number"))?;
        let unit_start = pos;
        while pos < bytes.len() && !(bytes[pos].is_ascii_digit() || bytes[pos] == b'.') {
            pos += 1;
        }
        let unit_nanos = match &text[unit_start..pos] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("invalid duration {text:?}: missing unit")),
            unit => return Err(format!("invalid duration {text:?}: unknown unit {unit:?}")),
        };
        total_nanos += number * unit_nanos;
    }
    if total_nanos > u64::MAX as f64 {
        return Err(format!("invalid duration {text:?}: too large"));
    }
    Ok(Duration::from_nanos(total_nanos.round() as u64))
}

/// Formats a duration the way Go prints it ("1h30m0s", "250ms", "0s").
pub fn format_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000_000_000 {
        return if nanos.is_multiple_of(1_000_000) {
            format!("{}ms", nanos / 1_000_000)
        } else if nanos.is_multiple_of(1_000) {
            format!("{}µs", nanos / 1_000)
        } else {
            format!("{nanos}ns")
        };
    }
    let total_secs = duration.as_secs();
    let hours = total_secs / 3600;
    let minutes = (total_secs % 3600) / 60;
    let secs = total_secs % 60;
    let frac = duration.subsec_nanos();
    let secs_text = if frac == 0 {
        format!("{secs}s")
    } else {
        let frac_text = format!("{frac:09}");
        format!("{secs}.{}s", frac_text.trim_end_matches('0'))
    };
    if hours > 0 {
        format!("{hours}h{minutes}m{secs_text}")
    } else if minutes > 0 {
        format!("{minutes}m{secs_text}")
    } else {
        secs_text
    }
}

/// Serde adapter: a `Duration` stored as integer nanoseconds, as in Nomad's JSON.
pub mod nanos {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(i64::try_from(value.as_nanos()).unwrap_or(i64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let nanos = i64::deserialize(deserializer)?;
        Ok(Duration::from_nanos(nanos.max(0) as u64))
    }
}

/// Serde adapter: an optional `Duration` stored as integer nanoseconds.
pub mod opt_nanos {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(value: &Option<Duration>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(duration) => super::nanos::serialize(duration, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
        let nanos = Option::<i64>::deserialize(deserializer)?;
        Ok(nanos.map(|n| Duration::from_nanos(n.max(0) as u64)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m0s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }
}
