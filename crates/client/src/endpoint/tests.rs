use super::*;

#[test]
fn accepted_forms() {
    let unix = Endpoint::Unix(PathBuf::from("/run/agent.sock"));
    for form in [
        "unix:///run/agent.sock",
        "unix:/run/agent.sock",
        "/run/agent.sock",
    ] {
        assert_eq!(Endpoint::parse(form), Ok(unix.clone()), "{form}");
    }
    assert_eq!(
        Endpoint::parse("tcp://127.0.0.1:8081"),
        Ok(Endpoint::Tcp("127.0.0.1:8081".parse().unwrap()))
    );
    assert_eq!(
        Endpoint::parse("tcp://[::1]:8081"),
        Ok(Endpoint::Tcp("[::1]:8081".parse().unwrap()))
    );
}

#[test]
fn rejected_forms_say_why() {
    type Check = fn(&EndpointError) -> bool;
    let cases: [(&str, Check); 9] = [
        ("", |e| matches!(e, EndpointError::Empty)),
        ("run/agent.sock", |e| {
            matches!(e, EndpointError::RelativePath { .. })
        }),
        ("unix:run/agent.sock", |e| {
            matches!(e, EndpointError::RelativePath { .. })
        }),
        ("unix://host/run/agent.sock", |e| {
            matches!(e, EndpointError::UnixHost { .. })
        }),
        ("tcp://localhost:8081", |e| {
            matches!(e, EndpointError::TcpHostName { .. })
        }),
        ("tcp://127.0.0.1", |e| {
            matches!(e, EndpointError::MissingPort { .. })
        }),
        ("unix:///a.sock?x=1", |e| {
            matches!(e, EndpointError::QueryOrFragment { .. })
        }),
        ("unix:///a.sock#f", |e| {
            matches!(e, EndpointError::QueryOrFragment { .. })
        }),
        ("http://127.0.0.1:1", |e| {
            matches!(e, EndpointError::UnsupportedScheme { .. })
        }),
    ];
    for (input, check) in cases {
        let err = Endpoint::parse(input).expect_err(input);
        assert!(check(&err), "{input}: {err:?}");
    }
}

#[test]
fn display_round_trips() {
    for form in ["unix:///run/agent.sock", "tcp://127.0.0.1:8081"] {
        let parsed = Endpoint::parse(form).unwrap();
        assert_eq!(parsed.to_string(), form);
        assert_eq!(Endpoint::parse(&parsed.to_string()).unwrap(), parsed);
    }
}
