use super::*;

#[test]
fn debug_prints_no_bytes() {
    let key = PrivateKey::new(vec![0x30, 0x82, 0xAB, 0xCD]);
    let text = format!("{key:?}");
    assert_eq!(text, "PrivateKey(<redacted>)");
    assert!(!text.contains("171") && !text.to_lowercase().contains("ab"));
}

#[test]
fn garbage_never_panics() {
    // Truncations and bit flips of a structurally valid prefix must all be clean errors.
    let base: Vec<u8> = vec![
        0x30, 0x13, 0x02, 0x01, 0x00, 0x30, 0x09, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02,
        0x01, 0x04, 0x03, 0x30, 0x01, 0x00,
    ];
    for len in 0..base.len() {
        let _ = parse_pkcs8(&base[..len]);
    }
    for i in 0..base.len() {
        let mut flipped = base.clone();
        flipped[i] ^= 0xff;
        let _ = parse_pkcs8(&flipped);
        let _ = parse_ec_private_key(&flipped);
    }
    assert!(parse_pkcs8(&[]).is_err());
}
