use super::*;

#[test]
fn spec_examples() {
    let cases: &[(&str, &[&str])] = &[
        (r#"a "b c" d"#, &["a", "b c", "d"]),
        (r#""echo 'hi there'""#, &["echo 'hi there'"]),
        ("-c 'echo hi'", &["-c", "'echo", "hi'"]),
        (r#""say ""hi""""#, &[r#"say "hi""#]),
        ("a  b", &["a", "", "b"]),
        ("", &[]),
        ("a ", &["a", ""]),
        (r"C:\path\x \n", &[r"C:\path\x", r"\n"]),
        ("$HOME *", &["$HOME", "*"]),
        ("a b\n", &["a", "b"]),
        ("\"line\nbreak\"", &["line\nbreak"]),
        ("\"\"", &[""]),
        (
            "server --listen localhost:8002 --allow-uri-san spiffe://example.org/Database",
            &[
                "server",
                "--listen",
                "localhost:8002",
                "--allow-uri-san",
                "spiffe://example.org/Database",
            ],
        ),
    ];
    for (input, want) in cases {
        assert_eq!(split_cmd_args(input).unwrap(), *want, "input {input:?}");
    }
}

#[test]
fn quoting_errors_name_the_column() {
    let cases = [
        (r#"a "b c"#, ArgsError::Unclosed { column: 3 }),
        (r#"""#, ArgsError::Unclosed { column: 1 }),
        (r#"ab"c"#, ArgsError::StrayQuote { column: 3 }),
        (r#"x "b"c"#, ArgsError::TextAfterQuote { column: 5 }),
        ("a\nb", ArgsError::LineBreak { column: 2 }),
        ("\"a\"\nb", ArgsError::LineBreak { column: 4 }),
    ];
    for (input, want) in cases {
        assert_eq!(split_cmd_args(input), Err(want.clone()), "input {input:?}");
    }
    assert_eq!(
        ArgsError::Unclosed { column: 3 }.to_string(),
        "the quote at column 3 is never closed (add a closing \")"
    );
}
