//! A TCP proxy on loopback in front of the local API server that can stop
//! passing bytes: connections stay open and requests simply get no answer,
//! the way a partitioned or wedged API server looks to a client.

use std::net::SocketAddr;

use kube::config::{Config, KubeConfigOptions, Kubeconfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::common;

pub struct StallingProxy {
    addr: SocketAddr,
    stalled: watch::Sender<bool>,
}

impl StallingProxy {
    /// Listens on a free loopback port, forwarding to the control plane.
    pub async fn start() -> Self {
        let upstream = api_server_addr().await;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        let (stalled, _) = watch::channel(false);
        let gate = stalled.clone();
        tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                let Ok(up) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let (down_r, down_w) = down.into_split();
                let (up_r, up_w) = up.into_split();
                tokio::spawn(pipe(down_r, up_w, gate.subscribe()));
                tokio::spawn(pipe(up_r, down_w, gate.subscribe()));
            }
        });
        StallingProxy { addr, stalled }
    }

    /// From now on no byte passes, either way.
    pub fn stall(&self) {
        self.stalled.send_replace(true);
    }

    /// An admin client of the control plane that goes through this proxy
    /// (the server certificate names 127.0.0.1, so TLS checks still pass).
    pub async fn client(&self) -> kube::Client {
        let mut config = admin_config().await;
        config.cluster_url = format!("https://{}", self.addr).parse().expect("url");
        kube::Client::try_from(config).expect("client builds")
    }
}

/// Copies until either side closes; while stalled, holds what it read.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut stalled: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stalled.wait_for(|s| !*s).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn admin_config() -> Config {
    let kubeconfig = Kubeconfig::read_from(common::kubeconfig_path()).expect("kubeconfig readable");
    Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig valid")
}

async fn api_server_addr() -> SocketAddr {
    let url = admin_config().await.cluster_url;
    let host = url.host().expect("the API server URL has a host");
    let port = url.port_u16().unwrap_or(443);
    tokio::net::lookup_host((host, port))
        .await
        .expect("resolve the API server")
        .next()
        .expect("the API server has an address")
}
