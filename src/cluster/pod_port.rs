//! One port of a pod as a byte stream, through the API server's
//! port-forward: a WebSocket whose binary frames carry a channel byte
//! (0 the port's data, 1 its error) before the bytes, and whose first frame
//! on each channel names the port. The pod's bytes are read straight from
//! the frames as they arrive; kube's port-forwarder would copy each into an
//! in-memory pipe through a task of its own, which for `status` over many
//! contexts is a second copy of every gateway proxy's answer held at once.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures::{SinkExt, StreamExt};
use hyper::body::Bytes;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Pod;
use kube::Resource;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::cluster::Cluster;
use crate::error::Result;

/// The channel of a port's data, and of what goes wrong with it.
const DATA: u8 = 0;
const ERROR: u8 = 1;

/// How much of the WebSocket is read at a time.
const READ_BUFFER: usize = 16 * 1024;

/// A forwarded port of a pod, read and written like a TCP connection to it.
pub struct PodPort {
    socket: WebSocketStream<TokioIo<Upgraded>>,
    frames: Frames,
    /// Data received and not yet read.
    unread: Bytes,
    ended: bool,
}

/// What the frames of one forwarded port say.
struct Frames {
    port: u16,
    /// Whether each channel's first frame (the port's number) has come.
    announced: [bool; 2],
}

/// Forwards `port` (not 0) of pod `namespace/pod` (the `pods/portforward`
/// permission, over the cluster's HTTP/1.1 client).
pub async fn open(cluster: &Cluster, namespace: &str, pod: &str, port: u16) -> Result<PodPort> {
    let action = format!("forward port {port} of pod {namespace}/{pod}");
    let request = kube::core::Request::new(Pod::url_path(&(), Some(namespace)))
        .portforward(pod, &[port])
        .expect("a forward of one port other than 0 is a well-formed request");
    let client = cluster.tunnel_client()?;
    let connection = cluster.call(&action, client.connect(request)).await?;
    // kube's WebSocket reads through a 128 KiB buffer of its own; a gateway
    // proxy's answer needs far less, and `status` over many contexts holds
    // one per context in flight. Nothing was read through it yet, so the
    // connection is taken back and read through a smaller one.
    let upgraded = connection.into_stream().into_inner();
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    let socket = WebSocketStream::from_raw_socket(upgraded, Role::Client, Some(config)).await;
    Ok(PodPort {
        socket,
        frames: Frames {
            port,
            announced: [false; 2],
        },
        unread: Bytes::new(),
        ended: false,
    })
}

impl Frames {
    /// The pod's data in `frame`, if it holds any; `Err` when the frame
    /// breaks the protocol or says the port failed.
    fn data(&mut self, mut frame: Bytes) -> io::Result<Option<Bytes>> {
        if frame.is_empty() {
            return Ok(None);
        }
        let channel = frame.split_to(1)[0];
        let (DATA | ERROR) = channel else {
            return Err(io::Error::other(format!(
                "the port-forward sent channel {channel}; only one port was asked for"
            )));
        };
        let index = usize::from(channel);
        if !self.announced[index] {
            let announced = <[u8; 2]>::try_from(&frame[..]).ok().map(u16::from_le_bytes);
            if announced != Some(self.port) {
                return Err(io::Error::other(format!(
                    "the port-forward opened with {frame:?}, not port {}",
                    self.port
                )));
            }
            self.announced[index] = true;
            return Ok(None);
        }
        if channel == ERROR {
            return Err(io::Error::other(
                String::from_utf8_lossy(&frame).trim().to_owned(),
            ));
        }
        Ok(Some(frame))
    }
}

impl AsyncRead for PodPort {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while this.unread.is_empty() && !this.ended {
            match ready!(this.socket.poll_next_unpin(cx)) {
                Some(Ok(Message::Binary(frame))) => {
                    if let Some(data) = this.frames.data(frame)? {
                        this.unread = data;
                    }
                }
                Some(Ok(Message::Close(_))) | None => this.ended = true,
                Some(Ok(_)) => {}
                Some(Err(err)) => return Poll::Ready(Err(io::Error::other(err))),
            }
        }
        let n = this.unread.len().min(buf.remaining());
        buf.put_slice(&this.unread.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for PodPort {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.socket.poll_ready_unpin(cx)).map_err(io::Error::other)?;
        let mut frame = Vec::with_capacity(buf.len() + 1);
        frame.push(DATA);
        frame.extend_from_slice(buf);
        this.socket
            .start_send_unpin(Message::binary(frame))
            .map_err(io::Error::other)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut()
            .socket
            .poll_flush_unpin(cx)
            .map_err(io::Error::other)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut()
            .socket
            .poll_close_unpin(cx)
            .map_err(io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin_port() -> Frames {
        Frames {
            port: 15000,
            announced: [false; 2],
        }
    }

    fn frame(bytes: &[u8]) -> Bytes {
        Bytes::copy_from_slice(bytes)
    }

    #[test]
    fn data_follows_each_channels_port_announcement() {
        let mut frames = admin_port();
        let port = 15000u16.to_le_bytes();
        assert!(
            frames
                .data(frame(&[0, port[0], port[1]]))
                .unwrap()
                .is_none()
        );
        assert!(
            frames
                .data(frame(&[1, port[0], port[1]]))
                .unwrap()
                .is_none()
        );
        let data = frames.data(frame(b"\0HTTP/1.1 200 OK")).unwrap();
        assert_eq!(data.as_deref(), Some(&b"HTTP/1.1 200 OK"[..]));
        assert!(frames.data(Bytes::new()).unwrap().is_none());
    }

    #[test]
    fn the_error_channel_and_a_wrong_port_fail_with_what_they_said() {
        let mut frames = admin_port();
        let wrong = 80u16.to_le_bytes();
        let err = frames.data(frame(&[0, wrong[0], wrong[1]])).unwrap_err();
        assert!(err.to_string().contains("not port 15000"), "{err}");

        let mut frames = admin_port();
        let port = 15000u16.to_le_bytes();
        frames.data(frame(&[1, port[0], port[1]])).unwrap();
        let err = frames.data(frame(b"\x01connection refused\n")).unwrap_err();
        assert_eq!(err.to_string(), "connection refused");

        let err = frames.data(frame(&[2, 0, 0])).unwrap_err();
        assert!(err.to_string().contains("channel 2"), "{err}");
    }
}
