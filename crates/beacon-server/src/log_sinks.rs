//! The places `--log-outputs` names, opened once at start, as the writer the log
//! subscriber (`tracing_subscriber::fmt`) writes each line through: every line goes
//! whole to each place, in order.

use std::fs::File;
use std::io::{self, Write};
use std::sync::Mutex;

use crate::config::LogOutput;

/// The opened places.
pub struct LogSinks {
    sinks: Vec<Sink>,
}

enum Sink {
    Stderr,
    Stdout,
    /// Locked for a whole line, so that lines from several threads never interleave.
    File(Mutex<File>),
}

impl LogSinks {
    /// Opens every file of `outputs` (created if missing, appended to, mode 0644 as zap
    /// creates them); `Err` in etcd's words when one cannot be.
    pub fn open(outputs: &[LogOutput]) -> Result<LogSinks, String> {
        let mut sinks = Vec::with_capacity(outputs.len());
        for output in outputs {
            sinks.push(match output {
                LogOutput::Stderr => Sink::Stderr,
                LogOutput::Stdout => Sink::Stdout,
                LogOutput::File(path) => {
                    let mut options = std::fs::OpenOptions::new();
                    options.append(true).create(true);
                    #[cfg(unix)]
                    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o644);
                    let file = options.open(path).map_err(|e| {
                        let path = path.display();
                        format!("open sink \"{path}\": open {path}: {}", go_words(&e))
                    })?;
                    Sink::File(Mutex::new(file))
                }
            });
        }
        Ok(LogSinks { sinks })
    }

    /// Whether the lines go to a terminal alone (which may show colours).
    pub fn is_terminal(&self) -> bool {
        match self.sinks.as_slice() {
            [Sink::Stderr] => io::IsTerminal::is_terminal(&io::stderr()),
            [Sink::Stdout] => io::IsTerminal::is_terminal(&io::stdout()),
            _ => false,
        }
    }
}

/// An OS error as Go words it: the system's text, its first letter lower-cased,
/// without Rust's "(os error N)".
fn go_words(e: &io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or_default();
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_lowercase().chain(chars).collect()
    })
}

/// One line's writer: hands what it is given to every place.
pub struct LineWriter<'a> {
    sinks: &'a [Sink],
}

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    /// The subscriber writes a line in one call: each place gets it whole, and a place
    /// that fails (a full disk) keeps none of the others from it.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut failed = None;
        for sink in self.sinks {
            let written = match sink {
                Sink::Stderr => io::stderr().write_all(buf),
                Sink::Stdout => io::stdout().write_all(buf),
                Sink::File(file) => file
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .write_all(buf),
            };
            if let Err(e) = written {
                failed.get_or_insert(e);
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// Standard output is the one place that buffers (a line at a time).
    fn flush(&mut self) -> io::Result<()> {
        match self.sinks.iter().any(|s| matches!(s, Sink::Stdout)) {
            true => io::stdout().flush(),
            false => Ok(()),
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogSinks {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> LineWriter<'a> {
        LineWriter { sinks: &self.sinks }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::fmt::MakeWriter as _;

    #[test]
    fn every_line_reaches_every_file_and_a_bad_path_is_named() {
        let dir = std::env::temp_dir().join(format!("beacon-log-sinks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a.log"), dir.join("b.log"));
        std::fs::write(&a, "kept\n").unwrap();
        let sinks = LogSinks::open(&[LogOutput::File(a.clone()), LogOutput::File(b.clone())])
            .expect("opened");
        assert!(!sinks.is_terminal());
        sinks.make_writer().write_all(b"one\n").unwrap();
        sinks.make_writer().write_all(b"two\n").unwrap();
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "kept\none\ntwo\n");
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "one\ntwo\n");
        let missing = dir.join("no/such/dir.log");
        let refused = LogSinks::open(&[LogOutput::File(missing.clone())])
            .err()
            .expect("refused");
        let path = missing.display();
        let named = format!("open sink \"{path}\": open {path}: no such file or directory");
        assert_eq!(refused, named);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
