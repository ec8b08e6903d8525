use std::os::unix::process::ExitStatusExt as _;
use std::process::ExitStatus;

use super::exit_code;

#[test]
fn exit_codes_are_the_code_or_128_plus_the_signal() {
    // Raw wait statuses: exit code in the second byte, terminating signal in the low bits.
    assert_eq!(exit_code(ExitStatus::from_raw(0)), 0);
    assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
    assert_eq!(exit_code(ExitStatus::from_raw(255 << 8)), 255);
    assert_eq!(exit_code(ExitStatus::from_raw(9)), 137);
    assert_eq!(exit_code(ExitStatus::from_raw(15)), 143);
    assert_eq!(exit_code(ExitStatus::from_raw(2)), 130);
}
