use super::*;

#[test]
fn camel_case_is_recognised() {
    assert_eq!(camel_to_snake("svidKeyFileName"), "svid_key_file_name");
    assert_eq!(camel_to_snake("agentAddress"), "agent_address");
    assert_eq!(camel_to_snake("AGENT_ADDRESS"), "agent_address");
}

fn consistent<K: Table>() {
    for (i, spec) in K::TABLE.iter().enumerate() {
        assert_eq!(
            spec.key.spec().name,
            spec.name,
            "{:?} is not row {i}",
            spec.key
        );
        assert_eq!(K::NAMES[i], spec.name);
        assert_eq!(
            spec.name,
            spec.name.to_ascii_lowercase(),
            "files are matched in lower case"
        );
        let same = K::TABLE.iter().filter(|other| other.name == spec.name);
        assert_eq!(same.count(), 1, "{} is listed twice", spec.name);
    }
}

#[test]
fn tables_are_consistent() {
    consistent::<Key>();
    consistent::<JwtKey>();
    consistent::<HealthKey>();
}

#[test]
fn suggestions() {
    assert_eq!(suggest("cert_dri", Key::NAMES), Some("cert_dir"));
    assert_eq!(suggest("agent_adress", Key::NAMES), Some("agent_address"));
    assert_eq!(suggest("svid_filename", Key::NAMES), Some("svid_file_name"));
    assert_eq!(suggest("completely_different", Key::NAMES), None);
}
