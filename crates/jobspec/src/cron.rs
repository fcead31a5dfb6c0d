//! Nomad's cron dialect, checked without a cron crate.
//!
//! Nomad accepts 5 fields (minute hour day-of-month month day-of-week), 6
//! fields where the sixth is a **year** (not seconds, unlike most cron
//! libraries), 7 fields (second … year), and the `@yearly`, `@annually`,
//! `@monthly`, `@weekly`, `@daily`, `@midnight` and `@hourly` shorthands.
//! Fields take `*`, `?`, lists, ranges, steps, month and weekday names, and
//! `L`, `W`, `LW` and `#` in the day fields.

/// One field's allowed range and names.
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// Day-of-month allows `L`, `W` and `LW`; day-of-week allows `L` and `#`.
    day: Option<DayKind>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum DayKind {
    Month,
    Week,
}

const MONTHS: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

const SECOND: Field = Field {
    name: "second",
    min: 0,
    max: 59,
    names: &[],
    day: None,
};
const MINUTE: Field = Field {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
    day: None,
};
const HOUR: Field = Field {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
    day: None,
};
const DAY_OF_MONTH: Field = Field {
    name: "day of month",
    min: 1,
    max: 31,
    names: &[],
    day: Some(DayKind::Month),
};
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: MONTHS,
    day: None,
};
const DAY_OF_WEEK: Field = Field {
    name: "day of week",
    min: 0,
    max: 7,
    names: WEEKDAYS,
    day: Some(DayKind::Week),
};
const YEAR: Field = Field {
    name: "year",
    min: 1970,
    max: 2099,
    names: &[],
    day: None,
};

/// Rewrites a Nomad cron expression into the 7-field form
/// `second minute hour day-of-month month day-of-week year`, after checking
/// it. A cron library that reads 6 fields as starting with seconds can then
/// be given the unambiguous 7-field text.
pub fn normalize_cron(spec: &str) -> Result<String, String> {
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
    let (layout, full): (&[&Field], Vec<&str>) = match fields.len() {
        5 => (
            &[&MINUTE, &HOUR, &DAY_OF_MONTH, &MONTH, &DAY_OF_WEEK],
            [&["0"], fields.as_slice(), &["*"]].concat(),
        ),
        6 => (
            &[&MINUTE, &HOUR, &DAY_OF_MONTH, &MONTH, &DAY_OF_WEEK, &YEAR],
            [&["0"], fields.as_slice()].concat(),
        ),
        7 => (
            &[&SECOND, &MINUTE, &HOUR, &DAY_OF_MONTH, &MONTH, &DAY_OF_WEEK, &YEAR],
            fields.clone(),
        ),
        0 => return Err("empty cron expression".to_string()),
        count => {
            return Err(format!(
                "cron expression {spec:?} has {count} fields; Nomad takes 5 (minute hour day-of-month month day-of-week), 6 (… year) or 7 (second … year)"
            ));
        }
    };
    for (field, text) in layout.iter().zip(&fields) {
        check_field(field, text).map_err(|message| format!("invalid cron expression {spec:?}: {message}"))?;
    }
    Ok(full.join(" "))
}

/// Checks a Nomad cron expression.
pub fn validate_cron(spec: &str) -> Result<(), String> {
    normalize_cron(spec).map(|_| ())
}

fn check_field(field: &Field, text: &str) -> Result<(), String> {
    for part in text.split(',') {
        check_part(field, part)?;
    }
    Ok(())
}

fn check_part(field: &Field, part: &str) -> Result<(), String> {
    let upper = part.to_ascii_uppercase();
    if upper.is_empty() {
        return Err(format!("empty item in the {} field", field.name));
    }
    if upper == "?" {
        return if field.day.is_some() {
            Ok(())
        } else {
            Err(format!(
                "'?' is only allowed in the day fields, not the {} field",
                field.name
            ))
        };
    }
    match field.day {
        Some(DayKind::Month) => {
            if upper == "L" || upper == "LW" {
                return Ok(());
            }
            if let Some(day) = upper.strip_suffix('W') {
                return value(field, day).map(|_| ());
            }
        }
        Some(DayKind::Week) => {
            if let Some((day, nth)) = upper.split_once('#') {
                value(field, day)?;
                return match nth.parse::<u32>() {
                    Ok(1..=5) => Ok(()),
                    _ => Err(format!("'#' must be followed by 1 to 5 in {part:?}")),
                };
            }
            if let Some(day) = upper.strip_suffix('L')
                && !day.is_empty()
            {
                return value(field, day).map(|_| ());
            }
        }
        None => {}
    }
    let (range, step) = match upper.split_once('/') {
        Some((range, step)) => (range, Some(step)),
        None => (upper.as_str(), None),
    };
    if let Some(step) = step {
        match step.parse::<u32>() {
            Ok(step) if step >= 1 && step <= field.max.max(1) + 1 => {}
            _ => return Err(format!("invalid step {step:?} in the {} field", field.name)),
        }
    }
    if range == "*" {
        return Ok(());
    }
    match range.split_once('-') {
        Some((low, high)) => {
            let low = value(field, low)?;
            let high = value(field, high)?;
            if low > high && field.day != Some(DayKind::Week) {
                return Err(format!("range {range:?} runs backwards in the {} field", field.name));
            }
            Ok(())
        }
        None => value(field, range).map(|_| ()),
    }
}

fn value(field: &Field, text: &str) -> Result<u32, String> {
    if let Some(idx) = field.names.iter().position(|name| name.eq_ignore_ascii_case(text)) {
        return Ok(idx as u32 + if field.names.len() == 12 { 1 } else { 0 });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_fields_end_with_a_year() {
        assert_eq!(normalize_cron("*/15 * * * *"), Ok("0 */15 * * * * *".to_string()));
        assert_eq!(normalize_cron("0 3 * * * 2030"), Ok("0 0 3 * * * 2030".to_string()));
        // A seconds-first reading would accept 59 here; as a year it is invalid.
        assert!(normalize_cron("0 0 3 * * 59").is_err());
        assert_eq!(
            normalize_cron("30 0 3 * * MON-FRI 2030"),
            Ok("30 0 3 * * MON-FRI 2030".to_string())
        );
    }

    #[test]
    fn accepts_nomad_syntax() {
        for spec in [
            "@daily",
            "@hourly",
            "0 9 * JAN,MAR mon-fri",
            "0 0 L * ?",
            "0 0 15W * ?",
            "0 0 ? * 5#3",
            "0 0 ? * 5L",
            "5,10-20/5 * * * *",
        ] {
            assert_eq!(validate_cron(spec), Ok(()), "{spec}");
        }
    }

    #[test]
    fn rejects_bad_expressions() {
        for spec in [
            "",
            "* * * *",
            "61 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "* * * 13 *",
            "@often",
            "* * * * * * * *",
            "*/0 * * * *",
            "? * * * *",
        ] {
            assert!(validate_cron(spec).is_err(), "{spec}");
        }
    }
}
