use super::*;
use std::time::Duration;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn renders_known_instants() {
    assert_eq!(rfc3339(at(0)), "1970-01-01T00:00:00Z");
    // `date -u -d @951782400` → 2000-02-29 00:00:00 (leap day of a century leap year)
    assert_eq!(rfc3339(at(951_782_400)), "2000-02-29T00:00:00Z");
    // `date -u -d @1735689599` → 2024-12-31 23:59:59
    assert_eq!(rfc3339(at(1_735_689_599)), "2024-12-31T23:59:59Z");
    assert_eq!(rfc3339(at(4_107_542_400)), "2100-03-01T00:00:00Z");
}

#[test]
fn signed_differences_round_down() {
    assert_eq!(secs_between(at(10), at(70)), 60);
    assert_eq!(secs_between(at(70), at(10)), -60);
    let half_past = at(10) + Duration::from_millis(500);
    assert_eq!(secs_between(half_past, at(10)), -1);
    assert_eq!(unix_secs(at(1_700_000_000)), 1_700_000_000);
}
