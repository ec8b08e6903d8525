use super::*;

#[test]
fn classification_follows_spec() {
    let status = |code| Error::Status {
        code,
        message: String::new(),
    };
    assert!(!status(StatusCode::InvalidArgument).is_retryable());
    assert!(!status(StatusCode::Unimplemented).is_retryable());
    for code in [
        StatusCode::PermissionDenied,
        StatusCode::Unknown,
        StatusCode::Unavailable,
        StatusCode::Internal,
    ] {
        assert!(status(code).is_retryable(), "{code}");
    }
    assert!(status(StatusCode::PermissionDenied).is_permission_denied());
    assert!(Error::StreamEnded.is_retryable());
    assert!(Error::EmptyResponse.is_retryable());
    assert!(!Error::Closed.is_retryable());
}

#[test]
fn status_display_uses_grpc_names() {
    let err = Error::Status {
        code: StatusCode::PermissionDenied,
        message: "no identity issued".into(),
    };
    assert_eq!(
        err.to_string(),
        "workload API returned PermissionDenied: no identity issued"
    );
    assert_eq!(
        StatusCode::from(tonic::Code::Unimplemented).to_string(),
        "Unimplemented"
    );
}

#[test]
fn timeout_names_last_error() {
    let err = Error::Timeout {
        after: Duration::from_secs(3),
        last_error: Some(Box::new(Error::StreamEnded)),
    };
    assert_eq!(
        err.to_string(),
        "timed out after 3s; last error: workload API stream ended"
    );
}
