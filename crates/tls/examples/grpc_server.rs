//! A tonic gRPC service over SPIFFE mTLS: the TLS layer authenticates and authorizes the
//! caller, and the handler reads the caller's SPIFFE ID from the request.
//!
//! ```text
//! SPIFFE_ENDPOINT_SOCKET=unix:///tmp/agent.sock \
//!   cargo run -p spiffe-workload-tls --example grpc_server -- \
//!   --listen 127.0.0.1:50051 [--allow ID | --allow-td TD | --allow any] [--hint H]
//! ```
//!
//! Prints `listening on ADDR` once it accepts. Copy it: the only SPIFFE-specific parts are the
//! source, the config, and the `SpiffeConn` wrapper that hands tonic the peer's ID.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "an example's output is its interface"
)]

use std::io::Write as _;
use std::pin::Pin;
use std::task::{Context, Poll};

use clap::Parser;
use spiffe_workload_client::{SpiffeId, X509Source};
use spiffe_workload_tls::{Authorizer, SpiffeAcceptor, mtls_server_config};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;
use tonic::{Request, Response, Status};

/// The generated greeter code, shared with the other gRPC example (checked by tests/proto.rs).
#[allow(clippy::all, clippy::pedantic, missing_docs, reason = "generated code")]
#[rustfmt::skip]
mod greeter {
    include!("grpc/greeter.rs");
}

use greeter::greeter_server::{Greeter, GreeterServer};
use greeter::{HelloReply, HelloRequest};

/// gRPC over SPIFFE mTLS.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long)]
    listen: String,
    /// The client SPIFFE ID to allow, or `any`.
    #[arg(long, default_value = "any", conflicts_with = "allow_td")]
    allow: String,
    /// Allow any client of this trust domain.
    #[arg(long)]
    allow_td: Option<String>,
    /// Serve the X.509-SVID with this hint.
    #[arg(long)]
    hint: Option<String>,
}

/// The caller's SPIFFE ID, as tonic's connection info (in each request's extensions).
#[derive(Clone, Debug)]
struct Caller(Option<SpiffeId>);

/// An accepted mTLS connection that tells tonic who is on the other end.
struct SpiffeConn {
    stream: tokio_rustls::server::TlsStream<TcpStream>,
    caller: Option<SpiffeId>,
}

impl Connected for SpiffeConn {
    type ConnectInfo = Caller;

    fn connect_info(&self) -> Caller {
        Caller(self.caller.clone())
    }
}

impl AsyncRead for SpiffeConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for SpiffeConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

struct Hello;

#[tonic::async_trait]
impl Greeter for Hello {
    async fn hello(&self, request: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
        let caller = request
            .extensions()
            .get::<Caller>()
            .and_then(|c| c.0.clone())
            .ok_or_else(|| Status::unauthenticated("no SPIFFE ID"))?;
        Ok(Response::new(HelloReply {
            message: format!("hello {caller} from rust grpc ({})", request.get_ref().text),
            caller: caller.to_string(),
        }))
    }
}

fn authorizer(args: &Args) -> anyhow::Result<Authorizer> {
    Ok(match (&args.allow_td, args.allow.as_str()) {
        (Some(td), _) => Authorizer::member_of(td.parse()?),
        (None, "any") => Authorizer::any(),
        (None, id) => Authorizer::exact(id.parse()?),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let source = X509Source::builder()
        .hint(args.hint.as_deref())
        .build()
        .await?;
    let mut config = mtls_server_config(&source, authorizer(&args)?)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = SpiffeAcceptor::new(config);
    let listener = TcpListener::bind(&args.listen).await?;
    println!("listening on {}", listener.local_addr()?);
    std::io::stdout().flush()?;

    // Handshakes run in their own tasks so that one slow or refused client never holds up the
    // accept loop; tonic gets only connections that passed SPIFFE authorization.
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<SpiffeConn>>(16);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                match acceptor.accept(tcp).await {
                    Ok((stream, caller)) => {
                        let _ = tx.send(Ok(SpiffeConn { stream, caller })).await;
                    }
                    Err(err) => eprintln!("connection rejected: {err}"),
                }
            });
        }
    });
    tonic::transport::Server::builder()
        .add_service(GreeterServer::new(Hello))
        .serve_with_incoming(ReceiverStream::new(rx))
        .await?;
    Ok(())
}
