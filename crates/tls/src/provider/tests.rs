use super::*;

/// The provider's name as rustls's `Debug` shows its key provider.
fn name(provider: &CryptoProvider) -> String {
    format!("{:?}", provider.key_provider)
}

#[test]
fn the_builtin_provider_is_the_one_the_features_choose() {
    let expected = if cfg!(feature = "aws-lc-rs") {
        "AwsLcRs"
    } else {
        "Ring"
    };
    assert_eq!(name(&builtin_provider()), expected);
}

#[test]
fn without_a_process_default_the_builtin_provider_is_used() {
    // Nothing in this crate's unit tests installs a process default (tests/provider.rs does,
    // in its own process).
    assert!(CryptoProvider::get_default().is_none());
    assert!(Arc::ptr_eq(&crypto_provider(), &builtin_provider()));
}
