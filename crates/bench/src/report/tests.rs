use super::*;

#[test]
fn median_of_even_and_odd_samples() {
    let s = summarize(&[3.0, 1.0, 2.0]).unwrap();
    assert!((s.median - 2.0).abs() < 1e-9 && (s.min - 1.0).abs() < 1e-9);
    let s = summarize(&[4.0, 1.0, 2.0, 3.0]).unwrap();
    assert!((s.median - 2.5).abs() < 1e-9 && (s.max - 4.0).abs() < 1e-9);
    assert!(summarize(&[]).is_none());
}

#[test]
fn quantiles_by_nearest_rank() {
    let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
    assert!((quantile(&mut v, 0.5).unwrap() - 50.0).abs() < 1e-9);
    assert!((quantile(&mut v, 0.99).unwrap() - 99.0).abs() < 1e-9);
}

#[test]
fn verdict_reports_how_far_a_target_is_missed() {
    let row =
        Row::new("x", "m", Unit::MiB, vec![6.0], vec![10.0]).target(Target::RatioAtMost(0.25));
    let table = render(&[row], &[]);
    assert!(table.contains("0.60×"), "{table}");
    assert!(table.contains("**missed** (2.4× the target)"), "{table}");
    let row =
        Row::new("y", "m", Unit::Ms, vec![1.0, 2.0, 3.0], vec![4.0]).target(Target::OursBelow(5.0));
    assert!(render(&[row], &[]).contains("**met**"));
}
