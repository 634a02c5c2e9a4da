//! The server under test: started in process on port 0 with its own data directory.

#![allow(dead_code)] // each test binary uses some of it

use cardguard_core::SystemClock;
use cardguard_server::client::Client;
use cardguard_server::{ApiKeys, App, Config};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

pub const ADMIN: &str = "admin-key-0123456789abcdef";
pub const ACQUIRER: &str = "acquirer-key-0123456789abcdef";
pub const TEST_KEY: &str = "0123456789ABCDEFFEDCBA9876543210";
pub const PAN: &str = "4123456789012349";

/// The tests send recorded times: the clock-skew check is off unless a test turns it on.
pub const RECORDED_TIMES: (&str, &str) = ("CARDGUARD__ENGINE__MAX_CLOCK_SKEW_SECS", "0");

pub struct Server {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    pub async fn start(dir: &Path, extra: &str) -> Server {
        Server::start_with(dir, extra, &[RECORDED_TIMES]).await
    }

    pub async fn start_with(dir: &Path, extra: &str, env: &[(&str, &str)]) -> Server {
        let cfg_path = dir.join("test.toml");
        std::fs::write(
            &cfg_path,
            format!(
                r#"
[server]
max_body_bytes = 16384
[storage]
snapshot_every = 50
[[auth.api_keys]]
key = "{ADMIN}"
scopes = ["admin"]
[[auth.api_keys]]
key = "{ACQUIRER}"
scopes = ["authorize"]
[keys.cvk]
cvk-1 = "{TEST_KEY}"
[keys.pvk]
pvk-1 = "{TEST_KEY}"
{extra}
"#
            ),
        )
        .unwrap();
        let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
        let config = Config::load(Some(&cfg_path), env).unwrap();
        let keys = ApiKeys::from_config(&config.auth.api_keys).unwrap();
        let (app, _) = App::open(config, &dir.join("data"), Arc::new(SystemClock)).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            cardguard_server::serve(listener, Arc::new(app), keys, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Server {
            addr,
            stop: Some(tx),
            task,
        }
    }

    pub async fn client(&self, key: &str) -> Client {
        Client::connect(self.addr, key).await.unwrap()
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap();
    }
}
