//! `--log-outputs` as etcd 3.4 reads it (`embed/config_logging.go`): a comma-separated
//! set of places, whose rules depend on the logger. Under `capnslog` (etcd's default)
//! it is exactly one of `default`, `stderr` or `stdout`; under `zap` any number of
//! `stderr`, `stdout` and files (zap's sink URLs: a path, or `file://`), `default`
//! alone standing for stderr.

use std::path::PathBuf;

use super::LogFormat;

/// One place the log lines go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogOutput {
    /// The process's standard error (etcd's `default`).
    Stderr,
    /// The process's standard output.
    Stdout,
    /// A file, created if missing and appended to.
    File(PathBuf),
}

/// The places `value` names under `logger` (`Text` is capnslog, `Json` zap), in etcd's
/// order; `Err` has etcd's words for a value it refuses.
pub(super) fn parse(value: &str, logger: LogFormat) -> Result<Vec<LogOutput>, String> {
    // etcd's UniqueStringsValue: split at commas (nothing trimmed), each value once,
    // sorted.
    let mut values: Vec<&str> = value.split(',').collect();
    values.sort_unstable();
    values.dedup();
    match logger {
        LogFormat::Text => capnslog(&values),
        LogFormat::Json => zap(&values),
    }
}

fn capnslog(values: &[&str]) -> Result<Vec<LogOutput>, String> {
    let [value] = values else {
        return Err(format!(
            "--logger=capnslog supports only 1 value in '--log-outputs', got {}",
            go_quoted(values)
        ));
    };
    // etcd's capnslog `default` is journald when its parent is PID 1 (systemd), and
    // stderr otherwise; Beacon's is always stderr.
    match *value {
        "default" | "stderr" => Ok(vec![LogOutput::Stderr]),
        "stdout" => Ok(vec![LogOutput::Stdout]),
        other => Err(format!(
            "unknown log-output {other:?} (only supports \"default\", \"stderr\", \"stdout\")"
        )),
    }
}

fn zap(values: &[&str]) -> Result<Vec<LogOutput>, String> {
    if values.len() > 1 && values.contains(&"default") {
        return Err("multi logoutput for \"default\" is not supported yet".to_string());
    }
    let mut outputs = Vec::with_capacity(values.len());
    for &value in values {
        let output = match value {
            "default" | "stderr" => LogOutput::Stderr,
            "stdout" => LogOutput::Stdout,
            "systemd/journal" => {
                return Err(
                    "flag --log-outputs=systemd/journal is an etcd value that beacon does not \
                     support yet"
                        .to_string(),
                )
            }
            path => LogOutput::File(sink_path(path)?),
        };
        if !outputs.contains(&output) {
            outputs.push(output);
        }
    }
    // etcd's MergeOutputPaths: "/dev/null" among them discards everything.
    let discard = LogOutput::File(PathBuf::from("/dev/null"));
    if outputs.contains(&discard) {
        return Ok(vec![discard]);
    }
    Ok(outputs)
}

/// The file a zap sink URL names: a path as it is, or a `file:` URL whose host is
/// empty or `localhost`; any other scheme is refused with zap's words.
fn sink_path(value: &str) -> Result<PathBuf, String> {
    let Some((scheme, rest)) = url_scheme(value) else {
        return Ok(PathBuf::from(value));
    };
    if !scheme.eq_ignore_ascii_case("file") {
        return Err(format!(
            "open sink {value:?}: no sink found for scheme {:?}",
            scheme.to_ascii_lowercase()
        ));
    }
    let Some(authority_and_path) = rest.strip_prefix("//") else {
        return Ok(PathBuf::from(rest));
    };
    let (host, path) = match authority_and_path.find('/') {
        Some(at) => authority_and_path.split_at(at),
        None => (authority_and_path, ""),
    };
    if !host.is_empty() && host != "localhost" {
        return Err(format!(
            "open sink {value:?}: file URLs must leave host empty or use localhost: got {value}"
        ));
    }
    Ok(PathBuf::from(path))
}

/// A URL's scheme as Go's `url.Parse` finds it (a letter, then letters, digits, `+`,
/// `-` or `.`, up to a colon), and what follows the colon.
fn url_scheme(value: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = value.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    let valid = first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some((scheme, rest))
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
fn go_quoted(values: &[&str]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("[{}]", quoted.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> LogOutput {
        LogOutput::File(PathBuf::from(path))
    }

    #[test]
    fn capnslog_takes_one_standard_stream() {
        let text = |v| parse(v, LogFormat::Text);
        assert_eq!(text("default"), Ok(vec![LogOutput::Stderr]));
        assert_eq!(text("stderr"), Ok(vec![LogOutput::Stderr]));
        assert_eq!(text("stdout"), Ok(vec![LogOutput::Stdout]));
        assert_eq!(text("stdout,stdout"), Ok(vec![LogOutput::Stdout]), "a set");
        assert_eq!(
            text("stdout,stderr").unwrap_err(),
            "--logger=capnslog supports only 1 value in '--log-outputs', got [\"stderr\" \"stdout\"]"
        );
        assert_eq!(
            text("/tmp/x").unwrap_err(),
            "unknown log-output \"/tmp/x\" (only supports \"default\", \"stderr\", \"stdout\")"
        );
        assert!(text("").unwrap_err().contains("unknown log-output \"\""));
    }

    #[test]
    fn zap_takes_streams_and_files() {
        let zap = |v| parse(v, LogFormat::Json);
        assert_eq!(zap("default"), Ok(vec![LogOutput::Stderr]));
        assert_eq!(
            zap("stdout,/var/log/b,stderr,/var/log/a"),
            Ok(vec![
                file("/var/log/a"),
                file("/var/log/b"),
                LogOutput::Stderr,
                LogOutput::Stdout
            ])
        );
        assert_eq!(zap("rel.log"), Ok(vec![file("rel.log")]));
        assert_eq!(zap("file:///tmp/f"), Ok(vec![file("/tmp/f")]));
        assert_eq!(zap("file://localhost/tmp/f"), Ok(vec![file("/tmp/f")]));
        assert_eq!(zap("stderr,/dev/null"), Ok(vec![file("/dev/null")]));
        assert_eq!(
            zap("default,/tmp/f").unwrap_err(),
            "multi logoutput for \"default\" is not supported yet"
        );
        assert_eq!(
            zap("http://x/y").unwrap_err(),
            "open sink \"http://x/y\": no sink found for scheme \"http\""
        );
        assert!(zap("file://elsewhere/tmp/f")
            .unwrap_err()
            .contains("must leave host empty or use localhost"));
        assert!(zap("systemd/journal")
            .unwrap_err()
            .contains("does not support"));
    }
}
