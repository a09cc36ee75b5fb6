//! A program's stdout and stderr, line by line into the hub's log, labelled with the program
//! and the instance.

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// Longest line logged whole; a longer one is logged in pieces of this size, so a program
/// that writes without newlines cannot make the hub buffer without bound.
pub(crate) const MAX_LINE: usize = 16 * 1024;

/// Which of a program's outputs a line came from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Logs each line `output` writes until it closes.
pub(crate) async fn forward(
    output: impl AsyncRead + Unpin,
    program: String,
    instance: u32,
    stream: Stream,
) {
    let mut reader = BufReader::new(output);
    let mut line = Vec::new();
    loop {
        let chunk = match reader.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(chunk) => chunk,
        };
        let room = MAX_LINE - line.len();
        let (taken, ends_line) = match chunk.iter().take(room).position(|&b| b == b'\n') {
            Some(newline) => (newline + 1, true),
            None => (chunk.len().min(room), false),
        };
        line.extend_from_slice(&chunk[..taken]);
        reader.consume(taken);
        if ends_line || line.len() == MAX_LINE {
            emit(&line, &program, instance, stream);
            line.clear();
        }
    }
    if !line.is_empty() {
        emit(&line, &program, instance, stream);
    }
}

fn emit(line: &[u8], program: &str, instance: u32, stream: Stream) {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches(['\n', '\r']);
    tracing::info!(
        target: "pullman::program",
        program,
        instance,
        stream = stream.as_str(),
        "{text}"
    );
}
