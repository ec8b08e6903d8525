use super::*;

#[test]
fn octal_modes() {
    for (text, want) in [
        ("0644", 0o644),
        ("644", 0o644),
        ("0o600", 0o600),
        ("0", 0),
        ("0777", 0o777),
        ("00444", 0o444),
    ] {
        assert_eq!(FileMode::parse_octal(text), Ok(FileMode(want)), "{text}");
    }
    for text in ["0899", "1000", "-1", "", "7777", "0x1a4", "6.4"] {
        assert!(FileMode::parse_octal(text).is_err(), "{text}");
    }
    assert_eq!(FileMode(0o600).to_string(), "0600");
}

#[test]
fn durations() {
    for (text, want) in [
        ("30s", 30_000),
        ("1m", 60_000),
        ("1m30s", 90_000),
        ("500ms", 500),
        ("2h", 7_200_000),
    ] {
        assert_eq!(
            parse_duration(text),
            Some(Duration::from_millis(want)),
            "{text}"
        );
    }
    for text in ["", "30", "s", "1d", "-1s", "1.5s"] {
        assert_eq!(parse_duration(text), None, "{text}");
    }
    assert_eq!(format_duration(Duration::from_secs(30)), "30s");
    assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
}

#[test]
fn signals() {
    for text in ["SIGHUP", "HUP", "hup", "sighup"] {
        assert_eq!(parse_signal(text), Some(Signal::SIGHUP), "{text}");
    }
    assert_eq!(parse_signal("SIGUSR1"), Some(Signal::SIGUSR1));
    assert_eq!(parse_signal("SIGNOPE"), None);
}
