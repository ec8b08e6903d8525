use super::*;

fn within_jitter(delay: Duration, base: Duration) -> bool {
    delay >= base.mul_f64(0.8) && delay <= base.mul_f64(1.2)
}

#[test]
fn doubles_to_the_cap_with_jitter_and_resets() {
    let mut backoff = Backoff::default();
    let mut base = DEFAULT_INITIAL_DELAY;
    for _ in 0..20 {
        let delay = backoff.next_delay();
        assert!(within_jitter(delay, base), "{delay:?} vs base {base:?}");
        assert!(delay <= DEFAULT_MAX_DELAY);
        base = (base * 2).min(DEFAULT_MAX_DELAY);
    }
    // 100ms * 2^9 = 51.2 s > 30 s: long since capped.
    assert!(backoff.next_delay() >= DEFAULT_MAX_DELAY.mul_f64(0.8));
    backoff.reset();
    assert!(within_jitter(backoff.next_delay(), DEFAULT_INITIAL_DELAY));
}

#[test]
fn jitter_varies() {
    let mut seen = std::collections::HashSet::new();
    for _ in 0..20 {
        seen.insert(Backoff::default().next_delay());
    }
    assert!(seen.len() > 1, "no jitter: {seen:?}");
}

#[test]
fn exact_doubles_to_the_cap_without_jitter_and_resets() {
    let ms = Duration::from_millis;
    let mut backoff = Backoff::exact(ms(100), ms(1000));
    let delays: Vec<_> = (0..6).map(|_| backoff.next_delay()).collect();
    assert_eq!(
        delays,
        [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]
    );
    backoff.reset();
    assert_eq!(backoff.next_delay(), ms(100));
    // Same clamping of a cap below the first delay as `new`.
    assert_eq!(
        Backoff::exact(ms(500), ms(1)).next_delay(),
        ms(500),
        "max is raised to initial"
    );
}

#[test]
fn max_below_initial_is_raised() {
    let mut backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(1));
    assert!(backoff.next_delay() <= Duration::from_secs(2));
}
