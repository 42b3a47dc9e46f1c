//! One HTTP/1.1 GET over a connection the caller opened: `status --probe`'s
//! TLS connection to the gateway itself, as a client of the exposed host
//! speaks to it. It is not a request to the API server, so it does not go
//! through the kube client.

use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::cluster::USER_AGENT;

/// An answer, read whole.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Sends `GET path` with `Host: host` over `io` and reads the whole answer;
/// the connection is closed after.
pub async fn get<T>(io: T, host: &str, path: &str) -> Result<Answer, hyper::Error>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    let connection = tokio::spawn(connection);
    let request = http::Request::get(path)
        .header(http::header::HOST, host)
        .header(http::header::USER_AGENT, USER_AGENT)
        .body(http_body_util::Empty::<Bytes>::new())
        .expect("a GET request is well formed");
    let answer = async {
        let (head, body) = sender.send_request(request).await?.into_parts();
        Ok(Answer {
            status: head.status,
            headers: head.headers,
            body: body.collect().await?.to_bytes(),
        })
    }
    .await;
    connection.abort();
    answer
}
