//! `pullman-bench`: tools for measuring pullman against its peers.
//!
//! # Layout
//! - `direct`: a plain hyper server with the demo app's `/hello`, the floor any proxy is
//!   measured against (one hop less, same HTTP stack).

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use clap::{Parser, Subcommand};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

#[derive(Parser)]
#[command(name = "pullman-bench", about = "Benchmark tools for pullman.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A plain hyper server answering `/hello` like the demo app: the direct baseline.
    Direct {
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Direct { listen } => runtime.block_on(direct(listen)),
    }
}

async fn direct(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("direct listening http://{}", listener.local_addr()?);
    loop {
        let (sock, _) = listener.accept().await?;
        let _ = sock.set_nodelay(true);
        tokio::spawn(async move {
            let service = service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                let resp = if req.uri().path() == "/hello" {
                    http::Response::builder()
                        .header("content-type", "text/plain; charset=utf-8")
                        .body(Full::new(Bytes::from_static(b"hello from pullman\n")))
                } else {
                    http::Response::builder()
                        .status(404)
                        .body(Full::new(Bytes::new()))
                };
                Ok::<_, Infallible>(resp.expect("static response parts are valid"))
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(sock), service)
                .await;
        });
    }
}
