//! One fake agent (and runtime) per fuzzing process, shared by every input.

use std::sync::OnceLock;
use std::time::Duration;

use spiffe_helper_testkit::fake::FakeAgent;
use spiffe_workload_client::{Endpoint, WorkloadApiClient};

pub struct Peer {
    pub rt: tokio::runtime::Runtime,
    pub fake: FakeAgent,
    pub client: WorkloadApiClient,
}

pub fn peer() -> &'static Peer {
    static PEER: OnceLock<Peer> = OnceLock::new();
    PEER.get_or_init(|| {
        // libFuzzer's C `main` skips the Rust runtime's start-up, which ignores SIGPIPE; without
        // this, the fake agent writing to a connection the client just dropped kills the run.
        // SAFETY: setting a signal disposition to SIG_IGN before any other thread exists.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("fuzz: runtime");
        let fake = rt.block_on(FakeAgent::start());
        let endpoint = Endpoint::parse(&fake.endpoint()).expect("fuzz: fake endpoint");
        Peer {
            rt,
            fake,
            client: WorkloadApiClient::new(endpoint),
        }
    })
}

/// Runs `fut` with a deadline: a hang on a malformed message is a finding too.
pub fn bounded<T>(rt: &tokio::runtime::Runtime, fut: impl Future<Output = T>) -> T {
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), fut)
            .await
            .expect("the client hung on a malformed response")
    })
}
