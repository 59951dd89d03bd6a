//! Console round-trip benchmark: `console_bench HOST:PORT [REQUESTS] [CONNECTIONS]`.
//!
//! Each connection reads the 128-byte greeting, then sends `1` and waits for the YAML reply,
//! REQUESTS times in a row; connections run on their own threads. Prints one line with the
//! total round trips per second. Works against any Tarantool-compatible console.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Instant;

fn run_connection(address: &str, requests: usize) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_nodelay(true)?;
    let mut greeting = [0u8; 128];
    stream.read_exact(&mut greeting)?;
    let reply = b"---\n- 1\n...\n";
    let mut buf = [0u8; 64];
    for _ in 0..requests {
        stream.write_all(b"1\n")?;
        let mut got = 0;
        while got < reply.len() {
            let count = stream.read(&mut buf[got..])?;
            if count == 0 {
                return Err(std::io::Error::other("console closed"));
            }
            got += count;
        }
        if &buf[..got] != reply {
            return Err(std::io::Error::other(format!(
                "unexpected reply {:?}",
                String::from_utf8_lossy(&buf[..got])
            )));
        }
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let address = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| String::from("127.0.0.1:3313"));
    let requests: usize = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let connections: usize = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(1);
    let started = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let address = address.clone();
            std::thread::spawn(move || run_connection(&address, requests))
        })
        .collect();
    for worker in workers {
        if let Err(err) = worker.join().expect("worker panicked") {
            eprintln!("console_bench: {err}");
            std::process::exit(1);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let total = requests * connections;
    println!(
        "console round trips: {total} over {connections} connection(s) in {elapsed:.3} s: {:.0} per second",
        total as f64 / elapsed
    );
}
