//! A small HTTP/1.1 keep-alive load client (tokio) for the health endpoint, loopback only.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Per-request timeout: a slower answer counts as an error and the connection is reopened.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// What one load run observed.
#[derive(Debug, Default)]
pub(crate) struct LoadResult {
    /// Latency of every successful request, microseconds.
    pub(crate) latencies_us: Vec<f64>,
    /// Requests that failed, timed out or answered other than 200.
    pub(crate) errors: u64,
    /// Wall time of the run.
    pub(crate) elapsed: Duration,
}

/// Runs `conns` concurrent keep-alive clients against `127.0.0.1:port` `path` for `dur`.
///
/// # Errors
/// If the tokio runtime cannot be built.
pub(crate) fn run(port: u16, path: &str, conns: usize, dur: Duration) -> Result<LoadResult> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the load runtime")?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: bench\r\n\r\n");
    rt.block_on(async move {
        let start = Instant::now();
        let deadline = start + dur;
        let mut tasks = Vec::with_capacity(conns);
        for _ in 0..conns {
            let req = request.clone();
            tasks.push(tokio::spawn(client(port, req, deadline)));
        }
        let mut total = LoadResult::default();
        for t in tasks {
            if let Ok(r) = t.await {
                total.latencies_us.extend(r.latencies_us);
                total.errors += r.errors;
            }
        }
        total.elapsed = start.elapsed();
        Ok(total)
    })
}

async fn client(port: u16, req: String, deadline: Instant) -> LoadResult {
    let mut out = LoadResult::default();
    let mut conn: Option<TcpStream> = None;
    let mut buf = Vec::with_capacity(1024);
    while Instant::now() < deadline {
        let t0 = Instant::now();
        let attempt = tokio::time::timeout(REQUEST_TIMEOUT, async {
            if conn.is_none() {
                let s = TcpStream::connect(("127.0.0.1", port)).await?;
                s.set_nodelay(true)?;
                conn = Some(s);
            }
            let Some(s) = conn.as_mut() else {
                return Err(std::io::Error::other("no connection"));
            };
            s.write_all(req.as_bytes()).await?;
            read_response(s, &mut buf).await
        })
        .await;
        if let Ok(Ok((200, keep_alive))) = attempt {
            out.latencies_us.push(t0.elapsed().as_secs_f64() * 1e6);
            if !keep_alive {
                conn = None;
            }
        } else {
            out.errors += 1;
            conn = None;
            // Back off briefly so a refusing server is not spun on.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    out
}

/// Reads one response; returns (status code, whether the connection may be reused).
async fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<(u16, bool)> {
    buf.clear();
    let mut chunk = [0u8; 2048];
    let head_end = loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let keep_alive = !head.contains("connection: close");
    let header = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
    };
    if let Some(len) = header("content-length:").and_then(|v| v.parse::<usize>().ok()) {
        while buf.len() < head_end + len {
            let n = s.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    } else if header("transfer-encoding:").is_some_and(|v| v.contains("chunked")) {
        while !buf[head_end..].ends_with(b"0\r\n\r\n") {
            let n = s.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    } else {
        // No length: the body runs to the end of the connection.
        loop {
            if s.read(&mut chunk).await? == 0 {
                return Ok((status, false));
            }
        }
    }
    Ok((status, keep_alive))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One GET, for sanity checks: the status code.
///
/// # Errors
/// If the connection or the read fails.
pub(crate) fn get_status(port: u16, path: &str) -> Result<u16> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building a runtime")?;
    rt.block_on(async {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        let (code, _) = tokio::time::timeout(REQUEST_TIMEOUT, read_response(&mut s, &mut buf))
            .await
            .context("health request timed out")??;
        Ok(code)
    })
}
