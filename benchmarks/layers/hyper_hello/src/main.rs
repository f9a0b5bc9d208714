//! `hyper-hello PORT [--example]`: answers every request with
//! `{"message":"Hello, World!"}`.
//!
//! What a server costs when it does nothing but let Hyper parse the request and write a
//! fixed response: the bound the layer benchmark compares data-bridge's native route
//! against. By default it runs as data-bridge does (one current-thread runtime, HTTP/1
//! and HTTP/2 by the auto builder); with `--example`, as Hyper's own hello example
//! (`#[tokio::main]`'s multi-thread runtime, the HTTP/1 builder).

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

const HELLO: &[u8] = br#"{"message":"Hello, World!"}"#;

async fn hello(_request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(HELLO)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

async fn serve(port: u16, example: bool) -> std::io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let io = TokioIo::new(stream);
        // A connection that fails (a client reset) ends alone.
        if example {
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service_fn(hello))
                    .await;
            });
        } else {
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(io, service_fn(hello))
                    .await;
            });
        }
    }
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (port, example) = match args.as_slice() {
        [port] => (port.parse::<u16>(), false),
        [port, flag] if flag == "--example" => (port.parse::<u16>(), true),
        _ => ("".parse::<u16>(), false),
    };
    let Ok(port) = port else {
        eprintln!("usage: hyper-hello PORT [--example]");
        std::process::exit(2);
    };
    let mut runtime = if example {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    runtime.enable_all().build()?.block_on(serve(port, example))
}
