//! `relay PORT`: joins stdin and stdout to a connection to PORT on this
//! network namespace's loopback, which is what a port-forward to a played
//! pod carries (KWOK runs it once per forwarded connection, inside the
//! pod's network namespace; see mesh.py). Built by the harness with rustc
//! alone: it starts in about a millisecond, where an interpreter would take
//! a hundred, and a fleet of port-forwards starts one per connection.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsFd;
use std::process::exit;
use std::thread;

fn main() {
    let Some(port) = std::env::args().nth(1).and_then(|p| p.parse::<u16>().ok()) else {
        eprintln!("usage: relay PORT");
        exit(2);
    };
    let connection = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|err| {
        eprintln!("relay: connect to 127.0.0.1:{port}: {err}");
        exit(1);
    });
    let mut upstream = connection.try_clone().expect("a second handle on the connection");
    let mut stdin = file_of(io::stdin().as_fd());
    thread::spawn(move || {
        pass_on(&mut stdin, &mut upstream);
        let _ = upstream.shutdown(Shutdown::Write);
    });
    let mut stdout = file_of(io::stdout().as_fd());
    pass_on(&mut &connection, &mut stdout);
}

/// A file of its own on a standard stream: unbuffered, so what arrives is
/// passed on at once.
fn file_of(fd: std::os::fd::BorrowedFd<'_>) -> File {
    File::from(fd.try_clone_to_owned().expect("a handle on a standard stream"))
}

/// Copies `from` to `to` until `from` ends or either fails, a read at a
/// time (plain reads and writes: the kernel's zero-copy paths stall on the
/// pipes KWOK hands over).
fn pass_on(from: &mut impl Read, to: &mut impl Write) {
    let mut buffer = vec![0; 64 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) => return,
            Ok(n) => {
                if to.write_all(&buffer[..n]).is_err() {
                    return;
                }
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}
