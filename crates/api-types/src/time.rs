//! RFC 3339 timestamps from and to Unix nanoseconds, as Nomad's JSON writes
//! task times ("0001-01-01T00:00:00Z" for never). No clock is read here.

/// Go's zero time, which Nomad prints for times that never happened.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

// Days since 1970-01-01 to a civil (year, month, day), after Howard
// Hinnant's public-domain algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Formats Unix nanoseconds as RFC 3339 in UTC with nanoseconds, or Go's
/// zero time for 0.
pub fn format_rfc3339(nanos: i64) -> String {
    if nanos == 0 {
        return ZERO_TIME.to_string();
    }
    let secs = nanos.div_euclid(1_000_000_000);
    let frac = nanos.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let day_secs = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let (hour, minute, second) = (day_secs / 3600, (day_secs % 3600) / 60, day_secs % 60);
    if frac == 0 {
        format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
    } else {
        format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{frac:09}Z")
    }
}

/// Parses what [`format_rfc3339`] writes (UTC, `Z` suffix, optional
/// fraction). Go's zero time parses as 0.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    if text == ZERO_TIME {
        return Some(0);
    }
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut date_parts = date.splitn(3, '-');
    let year: i64 = date_parts.next()?.parse().ok()?;
    let month: u32 = date_parts.next()?.parse().ok()?;
    let day: u32 = date_parts.next()?.parse().ok()?;
    let (clock, frac) = match time.split_once('.') {
        Some((clock, frac)) => (clock, frac),
        None => (time, ""),
    };
    let mut clock_parts = clock.splitn(3, ':');
    let hour: i64 = clock_parts.next()?.parse().ok()?;
    let minute: i64 = clock_parts.next()?.parse().ok()?;
    let second: i64 = clock_parts.next()?.parse().ok()?;
    let mut nanos_frac: i64 = 0;
    if !frac.is_empty() {
        let digits: String = frac.chars().take(9).collect();
        let padded = format!("{digits:0<9}");
        nanos_frac = padded.parse().ok()?;
    }
    let days = days_from_civil(year, month, day);
    Some((days * 86_400 + hour * 3600 + minute * 60 + second) * 1_000_000_000 + nanos_frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses() {
        assert_eq!(format_rfc3339(0), ZERO_TIME);
        assert_eq!(format_rfc3339(1_000_000_000), "1970-01-01T00:00:01Z");
        // 2026-11-21T23:53:45.5Z
        let nanos = 1_795_305_225_500_000_000;
        let text = format_rfc3339(nanos);
        assert_eq!(text, "2026-11-21T23:53:45.500000000Z");
        assert_eq!(parse_rfc3339(&text), Some(nanos));
        assert_eq!(parse_rfc3339("2000-02-29T12:00:00Z"), Some(951_825_600_000_000_000));
        assert_eq!(parse_rfc3339("garbage"), None);
    }
}
