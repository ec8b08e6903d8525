//! The fake Workload API server, driven by a raw tonic client (the testkit's generated code is
//! server-only; the client crate's own tests exercise it much further).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use spiffe_helper_testkit::certs::{TestCa, x509_response};
use spiffe_helper_testkit::fake::{Behaviour, FakeAgent};
use spiffe_helper_testkit::pb;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Streaming};
use tonic_prost::ProstCodec;

const T: Duration = Duration::from_secs(5);

async fn channel(path: PathBuf) -> Channel {
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?))
            }
        }))
        .await
        .unwrap()
}

fn req<T>(msg: T, header: bool) -> Request<T> {
    let mut r = Request::new(msg);
    if header {
        r.metadata_mut()
            .insert("workload.spiffe.io", "true".parse().unwrap());
    }
    r
}

async fn fetch_x509(
    fake: &FakeAgent,
    header: bool,
) -> Result<Streaming<pb::X509svidResponse>, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel(fake.socket_path().to_path_buf()).await);
    grpc.ready().await.unwrap();
    let codec = ProstCodec::<pb::X509svidRequest, pb::X509svidResponse>::default();
    grpc.server_streaming(
        req(pb::X509svidRequest {}, header),
        PathAndQuery::from_static("/SpiffeWorkloadAPI/FetchX509SVID"),
        codec,
    )
    .await
    .map(tonic::Response::into_inner)
}

async fn fetch_jwt(fake: &FakeAgent) -> Result<pb::JwtsvidResponse, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel(fake.socket_path().to_path_buf()).await);
    grpc.ready().await.unwrap();
    let codec = ProstCodec::<pb::JwtsvidRequest, pb::JwtsvidResponse>::default();
    let msg = pb::JwtsvidRequest {
        audience: vec!["a".into()],
        spiffe_id: String::new(),
    };
    grpc.unary(
        req(msg, true),
        PathAndQuery::from_static("/SpiffeWorkloadAPI/FetchJWTSVID"),
        codec,
    )
    .await
    .map(tonic::Response::into_inner)
}

fn response(id: &str) -> pb::X509svidResponse {
    let ca = TestCa::root("example.org");
    let svid = ca.issue(id, Duration::from_secs(60));
    x509_response(&[(&svid, "")], &[ca.der()], &[])
}

async fn next(
    s: &mut Streaming<pb::X509svidResponse>,
) -> Result<Option<pb::X509svidResponse>, tonic::Status> {
    tokio::time::timeout(T, s.message())
        .await
        .expect("stream stalled")
}

#[tokio::test]
async fn calls_without_security_header_are_invalid_argument() {
    let fake = FakeAgent::start().await;
    let err = fetch_x509(&fake, false).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(fake.x509_calls(), 0);
    fake.shutdown().await;
}

#[tokio::test]
async fn stream_gets_latest_then_every_push() {
    let fake = FakeAgent::start().await;
    fake.push_x509(response("spiffe://example.org/first"));
    let mut s = fetch_x509(&fake, true).await.unwrap();
    assert_eq!(
        next(&mut s).await.unwrap().unwrap().svids[0].spiffe_id,
        "spiffe://example.org/first"
    );
    fake.push_x509(response("spiffe://example.org/second"));
    assert_eq!(
        next(&mut s).await.unwrap().unwrap().svids[0].spiffe_id,
        "spiffe://example.org/second"
    );
    assert_eq!(fake.x509_calls(), 1);
    fake.shutdown().await;
}

#[tokio::test]
async fn fail_answers_with_the_status() {
    let fake = FakeAgent::start().await;
    fake.set_behaviour(Behaviour::Fail(
        Code::PermissionDenied,
        "no identity issued".into(),
    ));
    let err = fetch_x509(&fake, true).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(err.message(), "no identity issued");
    assert_eq!(
        fetch_jwt(&fake).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    assert_eq!(
        fake.x509_calls(),
        1,
        "failed calls still count as reconnect attempts"
    );
    fake.shutdown().await;
}

#[tokio::test]
async fn cut_after_and_end_with_stop_the_stream() {
    let fake = FakeAgent::start().await;
    fake.push_x509(response("spiffe://example.org/w"));
    fake.set_behaviour(Behaviour::CutAfter(1));
    let mut s = fetch_x509(&fake, true).await.unwrap();
    assert!(next(&mut s).await.unwrap().is_some());
    assert!(
        next(&mut s).await.unwrap().is_none(),
        "stream should end after 1 message"
    );

    fake.set_behaviour(Behaviour::EndWith(1, Code::Unavailable));
    let mut s = fetch_x509(&fake, true).await.unwrap();
    assert!(next(&mut s).await.unwrap().is_some());
    assert_eq!(next(&mut s).await.unwrap_err().code(), Code::Unavailable);
    fake.shutdown().await;
}

#[tokio::test]
async fn hang_never_answers_until_shutdown() {
    let fake = FakeAgent::start().await;
    fake.push_x509(response("spiffe://example.org/w"));
    fake.set_behaviour(Behaviour::Hang);
    let jwt = tokio::time::timeout(Duration::from_millis(500), fetch_jwt(&fake)).await;
    assert!(jwt.is_err(), "a hanging unary call must not answer");
    let mut s = fetch_x509(&fake, true).await.unwrap();
    let msg = tokio::time::timeout(Duration::from_millis(500), s.message()).await;
    assert!(msg.is_err(), "a hanging stream must not send");
    tokio::time::timeout(T, fake.shutdown())
        .await
        .expect("shutdown must not hang");
}

#[tokio::test]
async fn jwt_answer_and_request_are_recorded() {
    let fake = FakeAgent::start().await;
    assert_eq!(
        fetch_jwt(&fake).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    fake.set_jwt_svids(pb::JwtsvidResponse {
        svids: vec![pb::Jwtsvid {
            spiffe_id: "spiffe://example.org/w".into(),
            svid: "x.y.z".into(),
            hint: String::new(),
        }],
    });
    let r = fetch_jwt(&fake).await.unwrap();
    assert_eq!(r.svids[0].spiffe_id, "spiffe://example.org/w");
    assert_eq!(fake.last_jwt_request().unwrap().audience, ["a"]);
    fake.shutdown().await;
}

#[tokio::test]
async fn restart_ends_open_streams_and_serves_again_with_state() {
    let mut fake = FakeAgent::start().await;
    fake.push_x509(response("spiffe://example.org/w"));
    let mut s = fetch_x509(&fake, true).await.unwrap();
    assert!(next(&mut s).await.unwrap().is_some());
    fake.restart(Duration::from_millis(100)).await;
    // The old stream is over: end of stream or an error, never another message.
    assert!(!matches!(next(&mut s).await, Ok(Some(_))));
    let mut s = fetch_x509(&fake, true).await.unwrap();
    assert_eq!(
        next(&mut s).await.unwrap().unwrap().svids[0].spiffe_id,
        "spiffe://example.org/w"
    );
    assert_eq!(fake.x509_calls(), 2);
    fake.shutdown().await;
}
