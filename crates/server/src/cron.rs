//! Nomad's cron dialect, evaluated: when does a periodic job launch next.
//!
//! The dialect (5 fields; 6 where the sixth is a *year*; 7 starting with
//! seconds; `@daily` and friends; names, lists, ranges, steps, `?`, and
//! `L`, `W`, `LW`, `nL` and `n#k` in the day fields) is the one
//! `jobspec::cron` checks on the CLI side. The server cannot depend on
//! `jobspec`, and the servers must be the ones to judge a job sent as JSON,
//! so the expression is parsed again here into sets of allowed values.
//!
//! Pure: [`Schedule::next_after`] takes the instant to search from and a
//! time zone, and does no IO. Local times that do not exist (a spring-forward
//! gap) are skipped; a local time that happens twice (fall back) launches at
//! its first occurrence only.

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Tz;

const MONTHS: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const FIRST_YEAR: u32 = 1970;
const LAST_YEAR: u32 = 2099;

/// A set of allowed values of one field, as a bit per value from `min`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Values {
    min: u32,
    bits: Vec<bool>,
}

impl Values {
    fn empty(min: u32, max: u32) -> Values {
        Values {
            min,
            bits: vec![false; (max - min + 1) as usize],
        }
    }

    fn contains(&self, value: u32) -> bool {
        value
            .checked_sub(self.min)
            .and_then(|idx| self.bits.get(idx as usize))
            .copied()
            .unwrap_or(false)
    }

    fn insert(&mut self, value: u32) {
        if let Some(bit) = value
            .checked_sub(self.min)
            .and_then(|idx| self.bits.get_mut(idx as usize))
        {
            *bit = true;
        }
    }
}

/// The day-of-month field.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DayOfMonth {
    Days(Values),
    Last,
    LastWeekday,
    NearestWeekday(u32),
}

/// The day-of-week field (Sunday is 0).
#[derive(Debug, Clone, PartialEq, Eq)]
enum DayOfWeek {
    Days(Values),
    Nth(u32, u32),
    Last(u32),
}

/// One parsed cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    seconds: Values,
    minutes: Values,
    hours: Values,
    months: Values,
    years: Values,
    days_of_month: Vec<DayOfMonth>,
    days_of_week: Vec<DayOfWeek>,
    /// The field was `*` or `?`: the other day field decides alone.
    any_day_of_month: bool,
    any_day_of_week: bool,
}

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    names_from: u32,
}

const SECOND: Field = Field {
    name: "second",
    min: 0,
    max: 59,
    names: &[],
    names_from: 0,
};
const MINUTE: Field = Field {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
    names_from: 0,
};
const HOUR: Field = Field {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
    names_from: 0,
};
const DAY_OF_MONTH: Field = Field {
    name: "day of month",
    min: 1,
    max: 31,
    names: &[],
    names_from: 0,
};
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: MONTHS,
    names_from: 1,
};
const DAY_OF_WEEK: Field = Field {
    name: "day of week",
    min: 0,
    max: 7,
    names: WEEKDAYS,
    names_from: 0,
};
const YEAR: Field = Field {
    name: "year",
    min: FIRST_YEAR,
    max: LAST_YEAR,
    names: &[],
    names_from: 0,
};

fn value(field: &Field, text: &str) -> Result<u32, String> {
    if let Some(idx) = field.names.iter().position(|name| name.eq_ignore_ascii_case(text)) {
        return Ok(idx as u32 + field.names_from);
    }
    let number: u32 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a valid {} value", field.name))?;
    if number < field.min || number > field.max {
        return Err(format!(
            "{number} is out of range for the {} field ({}-{})",
            field.name, field.min, field.max
        ));
    }
    Ok(number)
}

/// Parses a plain field (`*`, values, ranges, steps, lists) into its set.
fn plain(field: &Field, text: &str) -> Result<Values, String> {
    let mut values = Values::empty(field.min, field.max);
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step
                    .parse()
                    .ok()
                    .filter(|step| *step >= 1)
                    .ok_or_else(|| format!("invalid step {step:?} in the {} field", field.name))?;
                (range, step)
            }
            None => (part, 1),
        };
        let (low, high) = if range == "*" || range == "?" {
            (field.min, field.max)
        } else if let Some((low, high)) = range.split_once('-') {
            (value(field, low)?, value(field, high)?)
        } else {
            let low = value(field, range)?;
            // `5/10` runs from 5 to the end of the field.
            (low, if part.contains('/') { field.max } else { low })
        };
        if low <= high {
            for candidate in (low..=high).step_by(step as usize) {
                values.insert(candidate);
            }
        } else if field.names == WEEKDAYS {
            // A weekday range may wrap around the week (FRI-MON).
            for (offset, candidate) in (low..=6).chain(0..=high).enumerate() {
                if offset % step as usize == 0 {
                    values.insert(candidate);
                }
            }
        } else {
            return Err(format!("range {range:?} runs backwards in the {} field", field.name));
        }
    }
    Ok(values)
}

fn day_of_month(text: &str) -> Result<Vec<DayOfMonth>, String> {
    let mut items = Vec::new();
    for part in text.split(',') {
        let upper = part.to_ascii_uppercase();
        if upper == "L" {
            items.push(DayOfMonth::Last);
        } else if upper == "LW" {
            items.push(DayOfMonth::LastWeekday);
        } else if let Some(day) = upper.strip_suffix('W') {
            items.push(DayOfMonth::NearestWeekday(value(&DAY_OF_MONTH, day)?));
        } else {
            items.push(DayOfMonth::Days(plain(&DAY_OF_MONTH, &upper)?));
        }
    }
    Ok(items)
}

fn day_of_week(text: &str) -> Result<Vec<DayOfWeek>, String> {
    let mut items = Vec::new();
    for part in text.split(',') {
        let upper = part.to_ascii_uppercase();
        if let Some((day, nth)) = upper.split_once('#') {
            let nth = match nth.parse::<u32>() {
                Ok(nth @ 1..=5) => nth,
                _ => return Err(format!("'#' must be followed by 1 to 5 in {part:?}")),
            };
            items.push(DayOfWeek::Nth(value(&DAY_OF_WEEK, day)? % 7, nth));
        } else if let Some(day) = upper.strip_suffix('L')
            && !day.is_empty()
        {
            items.push(DayOfWeek::Last(value(&DAY_OF_WEEK, day)? % 7));
        } else {
            let mut days = plain(&DAY_OF_WEEK, &upper)?;
            if days.contains(7) {
                days.insert(0);
            }
            items.push(DayOfWeek::Days(days));
        }
    }
    Ok(items)
}

impl Schedule {
    /// Parses one expression of Nomad's cron dialect.
    pub fn parse(spec: &str) -> Result<Schedule, String> {
        let spec = spec.trim();
        let expanded = match spec.to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => "0 0 1 1 *".to_string(),
            "@monthly" => "0 0 1 * *".to_string(),
            "@weekly" => "0 0 * * 0".to_string(),
            "@daily" | "@midnight" => "0 0 * * *".to_string(),
            "@hourly" => "0 * * * *".to_string(),
            other if other.starts_with('@') => return Err(format!("unknown cron shorthand {spec:?}")),
            _ => spec.to_string(),
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let full: Vec<&str> = match fields.len() {
            5 => [&["0"], fields.as_slice(), &["*"]].concat(),
            6 => [&["0"], fields.as_slice()].concat(),
            7 => fields,
            count => {
                return Err(format!(
                    "cron expression {spec:?} has {count} fields; Nomad takes 5 (minute hour day-of-month month day-of-week), 6 (… year) or 7 (second … year)"
                ));
            }
        };
        let within = |message: String| format!("invalid cron expression {spec:?}: {message}");
        let no_question = |field: &Field, text: &str| {
            if text.contains('?') {
                Err(within(format!(
                    "'?' is only allowed in the day fields, not the {} field",
                    field.name
                )))
            } else {
                Ok(())
            }
        };
        for (field, text) in [
            (&SECOND, full[0]),
            (&MINUTE, full[1]),
            (&HOUR, full[2]),
            (&MONTH, full[4]),
            (&YEAR, full[6]),
        ] {
            no_question(field, text)?;
        }
        Ok(Schedule {
            seconds: plain(&SECOND, full[0]).map_err(within)?,
            minutes: plain(&MINUTE, full[1]).map_err(within)?,
            hours: plain(&HOUR, full[2]).map_err(within)?,
            days_of_month: day_of_month(full[3]).map_err(within)?,
            months: plain(&MONTH, full[4]).map_err(within)?,
            days_of_week: day_of_week(full[5]).map_err(within)?,
            years: plain(&YEAR, full[6]).map_err(within)?,
            any_day_of_month: matches!(full[3], "*" | "?"),
            any_day_of_week: matches!(full[5], "*" | "?"),
        })
    }

    fn day_of_month_matches(&self, date: NaiveDate) -> bool {
        let last = last_day_of_month(date.year(), date.month());
        self.days_of_month.iter().any(|item| match item {
            DayOfMonth::Days(days) => days.contains(date.day()),
            DayOfMonth::Last => date.day() == last,
            DayOfMonth::LastWeekday => date.day() == nearest_weekday(date.year(), date.month(), last),
            DayOfMonth::NearestWeekday(day) => {
                *day <= last && date.day() == nearest_weekday(date.year(), date.month(), *day)
            }
        })
    }

    fn day_of_week_matches(&self, date: NaiveDate) -> bool {
        let weekday = date.weekday().num_days_from_sunday();
        let last = last_day_of_month(date.year(), date.month());
        self.days_of_week.iter().any(|item| match item {
            DayOfWeek::Days(days) => days.contains(weekday),
            DayOfWeek::Nth(day, nth) => weekday == *day && (date.day() - 1) / 7 + 1 == *nth,
            DayOfWeek::Last(day) => weekday == *day && date.day() + 7 > last,
        })
    }

    fn day_matches(&self, date: NaiveDate) -> bool {
        match (self.any_day_of_month, self.any_day_of_week) {
            (true, true) => true,
            (true, false) => self.day_of_week_matches(date),
            (false, true) => self.day_of_month_matches(date),
            // Both restricted: either one suffices, as in classic cron.
            (false, false) => self.day_of_month_matches(date) || self.day_of_week_matches(date),
        }
    }

    /// The first local wall-clock time strictly after `from` that matches.
    fn next_local(&self, from: NaiveDateTime) -> Option<NaiveDateTime> {
        let mut time = from.with_nanosecond(0)? + Duration::seconds(1);
        loop {
            let year = u32::try_from(time.year()).ok()?;
            if year > LAST_YEAR {
                return None;
            }
            if !self.years.contains(year) {
                time = NaiveDate::from_ymd_opt(time.year() + 1, 1, 1)?.and_hms_opt(0, 0, 0)?;
                continue;
            }
            if !self.months.contains(time.month()) {
                let (year, month) = if time.month() == 12 {
                    (time.year() + 1, 1)
                } else {
                    (time.year(), time.month() + 1)
                };
                time = NaiveDate::from_ymd_opt(year, month, 1)?.and_hms_opt(0, 0, 0)?;
                continue;
            }
            if !self.day_matches(time.date()) {
                time = time.date().succ_opt()?.and_hms_opt(0, 0, 0)?;
                continue;
            }
            if !self.hours.contains(time.hour()) {
                time = time.with_minute(0)?.with_second(0)? + Duration::hours(1);
                continue;
            }
            if !self.minutes.contains(time.minute()) {
                time = time.with_second(0)? + Duration::minutes(1);
                continue;
            }
            if !self.seconds.contains(time.second()) {
                time += Duration::seconds(1);
                continue;
            }
            return Some(time);
        }
    }

    /// The first launch strictly after `after`, in `zone`'s wall clock.
    pub fn next_after(&self, zone: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut local = after.with_timezone(&zone).naive_local();
        loop {
            local = self.next_local(local)?;
            let instant = match zone.from_local_datetime(&local) {
                LocalResult::Single(instant) => instant,
                LocalResult::Ambiguous(first, _) => first,
                LocalResult::None => continue,
            };
            let instant = instant.with_timezone(&Utc);
            if instant > after {
                return Some(instant);
            }
        }
    }
}

fn last_day_of_month(year: i32, month: u32) -> u32 {
    let (next_year, next_month) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
    NaiveDate::from_ymd_opt(next_year, next_month, 1)
        .and_then(|first| first.pred_opt())
        .map_or(28, |last| last.day())
}

/// The weekday nearest to `day` within the same month.
fn nearest_weekday(year: i32, month: u32, day: u32) -> u32 {
    let Some(date) = NaiveDate::from_ymd_opt(year, month, day) else {
        return day;
    };
    let last = last_day_of_month(year, month);
    match date.weekday() {
        Weekday::Sat if day == 1 => 3,
        Weekday::Sat => day - 1,
        Weekday::Sun if day == last => day - 2,
        Weekday::Sun => day + 1,
        _ => day,
    }
}

/// A periodic job's schedule: its cron expressions in its time zone.
#[derive(Debug, Clone)]
pub struct PeriodicSchedule {
    specs: Vec<Schedule>,
    zone: Tz,
}

impl PeriodicSchedule {
    /// Parses a job's `periodic` block.
    pub fn new(config: &types::PeriodicConfig) -> Result<PeriodicSchedule, String> {
        if config.spec_type != "cron" {
            return Err(format!(
                "unknown periodic spec type {:?}; only \"cron\" is supported",
                config.spec_type
            ));
        }
        let zone = parse_zone(&config.time_zone)?;
        let specs = config
            .specs
            .iter()
            .map(|spec| Schedule::parse(spec))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PeriodicSchedule { specs, zone })
    }

    /// The earliest launch of any expression strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.specs
            .iter()
            .filter_map(|spec| spec.next_after(self.zone, after))
            .min()
    }
}

fn parse_zone(name: &str) -> Result<Tz, String> {
    if name.is_empty() {
        return Ok(Tz::UTC);
    }
    name.parse::<Tz>()
        .map_err(|_| format!("{name:?} is not a known time zone name (an IANA name such as \"Europe/Berlin\")"))
}

/// Unix nanoseconds as a UTC instant (clamped to what chrono holds).
pub fn instant(nanos: types::UnixNanos) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(nanos)
}

/// A UTC instant as Unix nanoseconds (saturating).
pub fn nanos(instant: DateTime<Utc>) -> types::UnixNanos {
    instant.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("test time")
            .with_timezone(&Utc)
    }

    fn next(spec: &str, zone: Tz, after: &str) -> String {
        Schedule::parse(spec)
            .expect("valid spec")
            .next_after(zone, at(after))
            .map(|time| time.to_rfc3339())
            .unwrap_or_else(|| "never".to_string())
    }

    #[test]
    fn five_fields_are_minutes() {
        assert_eq!(
            next("*/15 * * * *", Tz::UTC, "2026-12-05T10:07:30Z"),
            "2026-12-05T10:15:00+00:00"
        );
        assert_eq!(
            next("*/15 * * * *", Tz::UTC, "2026-12-05T10:15:00Z"),
            "2026-12-05T10:30:00+00:00"
        );
        assert_eq!(
            next("@daily", Tz::UTC, "2026-12-31T23:59:59Z"),
            "2027-01-01T00:00:00+00:00"
        );
        assert_eq!(
            next("0 9 * JAN,MAR mon-fri", Tz::UTC, "2026-12-05T00:00:00Z"),
            "2027-01-01T09:00:00+00:00"
        );
    }

    #[test]
    fn six_fields_end_with_a_year_and_seven_start_with_seconds() {
        assert_eq!(
            next("0 3 * * * 2030", Tz::UTC, "2026-12-05T00:00:00Z"),
            "2030-01-01T03:00:00+00:00"
        );
        assert_eq!(next("0 3 * * * 2020", Tz::UTC, "2026-12-05T00:00:00Z"), "never");
        assert_eq!(
            next("*/2 * * * * * *", Tz::UTC, "2026-12-05T00:00:00Z"),
            "2026-12-05T00:00:02+00:00"
        );
        assert_eq!(
            next("30 0 3 * * MON-FRI 2030", Tz::UTC, "2030-01-01T03:00:31Z"),
            "2030-01-02T03:00:30+00:00"
        );
    }

    #[test]
    fn special_day_fields() {
        // Last day of February in a leap year.
        assert_eq!(
            next("0 0 L * ?", Tz::UTC, "2028-02-01T00:00:00Z"),
            "2028-02-29T00:00:00+00:00"
        );
        // 15 Aug 2026 is a Saturday: the nearest weekday is Friday the 14th.
        assert_eq!(
            next("0 0 15W * ?", Tz::UTC, "2026-08-01T00:00:00Z"),
            "2026-08-14T00:00:00+00:00"
        );
        // The third Thursday of December 2026 is the 17th.
        assert_eq!(
            next("0 0 ? * 4#3", Tz::UTC, "2026-12-01T00:00:00Z"),
            "2026-12-17T00:00:00+00:00"
        );
        // The last Friday of December 2026 is the 25th.
        assert_eq!(
            next("0 0 ? * 5L", Tz::UTC, "2026-12-01T00:00:00Z"),
            "2026-12-25T00:00:00+00:00"
        );
        // The last weekday of January 2027 (the 31st is a Sunday).
        assert_eq!(
            next("0 0 LW * ?", Tz::UTC, "2027-01-01T00:00:00Z"),
            "2027-01-29T00:00:00+00:00"
        );
        // Weekday ranges wrap: FRI-MON includes Sunday.
        assert_eq!(
            next("0 0 * * FRI-MON", Tz::UTC, "2026-12-07T12:00:00Z"),
            "2026-12-11T00:00:00+00:00"
        );
    }

    #[test]
    fn time_zones_move_the_wall_clock() {
        // 09:00 in New York in December is 14:00 UTC.
        assert_eq!(
            next("0 9 * * *", chrono_tz::America::New_York, "2026-12-05T00:00:00Z"),
            "2026-12-05T14:00:00+00:00"
        );
        // 02:30 does not exist on 8 March 2026 in New York: that day is skipped.
        assert_eq!(
            next("30 2 * * *", chrono_tz::America::New_York, "2026-03-08T00:00:00Z"),
            "2026-03-09T06:30:00+00:00"
        );
        // 01:30 happens twice on 1 November 2026: only the first counts.
        assert_eq!(
            next("30 1 * * *", chrono_tz::America::New_York, "2026-11-01T00:00:00Z"),
            "2026-11-01T05:30:00+00:00"
        );
        assert_eq!(
            next("30 1 * * *", chrono_tz::America::New_York, "2026-11-01T05:30:00Z"),
            "2026-11-02T06:30:00+00:00"
        );
    }

    #[test]
    fn several_expressions_take_the_earliest() {
        let config = types::PeriodicConfig {
            specs: vec!["0 12 * * *".into(), "0 6 * * *".into()],
            time_zone: "Europe/Berlin".into(),
            ..types::PeriodicConfig::default()
        };
        let schedule = PeriodicSchedule::new(&config).expect("valid");
        assert_eq!(
            schedule
                .next_after(at("2026-12-05T00:00:00Z"))
                .map(|time| time.to_rfc3339()),
            Some("2026-12-05T05:00:00+00:00".to_string())
        );
    }

    #[test]
    fn bad_expressions_and_zones_are_refused() {
        for spec in [
            "",
            "* * * *",
            "61 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "@often",
            "*/0 * * * *",
            "? * * * *",
            "5-1 * * * *",
        ] {
            assert!(Schedule::parse(spec).is_err(), "{spec}");
        }
        let config = types::PeriodicConfig {
            specs: vec!["@daily".into()],
            time_zone: "Mars/Olympus".into(),
            ..types::PeriodicConfig::default()
        };
        let error = PeriodicSchedule::new(&config).expect_err("unknown zone");
        assert!(error.contains("Mars/Olympus"), "{error}");
    }
}
