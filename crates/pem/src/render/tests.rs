use super::{block_len, encode_block};

#[test]
fn block_len_is_exact_for_every_remainder() {
    for n in [0, 1, 2, 3, 47, 48, 49, 50, 96, 1000] {
        let mut out = Vec::new();
        encode_block("PRIVATE KEY", &vec![7u8; n], &mut out);
        assert_eq!(out.len(), block_len("PRIVATE KEY", n), "der length {n}");
    }
}
