//! Small time helpers: signed differences, Unix seconds and RFC 3339 rendering.
//!
//! Written by hand so the crate needs no date library: the health body only
//! ever renders UTC timestamps with second precision.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, negative before it, saturating at the `i64` range.
pub(crate) fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

/// `later - earlier` in whole seconds; negative when `later` is before `earlier`.
pub(crate) fn secs_between(earlier: SystemTime, later: SystemTime) -> i64 {
    match later.duration_since(earlier) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        // Round towards negative infinity so "expired 0.5 s ago" reads as -1, not 0.
        Err(e) => {
            let d = e.duration();
            let whole = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            if d.subsec_nanos() > 0 {
                -whole.saturating_add(1)
            } else {
                -whole
            }
        }
    }
}

/// Renders `t` as an RFC 3339 UTC timestamp with second precision, e.g. `2025-01-31T23:59:59Z`.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let secs = unix_secs(t);
    let days = secs.div_euclid(86_400);
    let second_of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

/// Proleptic Gregorian date for a day count since 1970-01-01
/// (Howard Hinnant's `civil_from_days`, public-domain algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era.saturating_mul(400) + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests;
