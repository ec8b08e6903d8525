use super::SecretBytes;

#[test]
fn debug_shows_length_not_bytes() {
    let s = SecretBytes::new(b"hunter2-secret".to_vec());
    let shown = format!("{s:?}");
    assert_eq!(shown, "SecretBytes([REDACTED; 14 bytes])");
    assert!(!shown.contains("hunter2"));
}
