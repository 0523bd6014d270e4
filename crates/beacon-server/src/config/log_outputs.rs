//! `--log-outputs` as etcd 3.4 reads it (`embed/config_logging.go`): a comma-separated
//! set of places, whose rules depend on the logger. Under `capnslog` (etcd's default)
//! it is exactly one of `default`, `stderr` or `stdout`; under `zap` any number of
//! `stderr`, `stdout` and files (zap's sink URLs: a path, or `file://`), `default`
//! alone standing for stderr. The deprecated `--log-output` (3.4 parses it, its help
//! leaves it out) is reconciled with it first, as etcd does.

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

/// The places `--log-outputs` (`value`, and `deprecated`, `--log-output`) name under
/// `logger` (`Text` is capnslog, `Json` zap), in etcd's order, and etcd's warning
/// about `--log-output` if any; `Err` has etcd's words for a value it refuses.
pub(super) fn parse(
    deprecated: &str,
    value: &str,
    logger: LogFormat,
) -> Result<(Vec<LogOutput>, Option<String>), String> {
    let (values, warning) = reconcile(unique(deprecated), unique(value))?;
    let outputs = match logger {
        LogFormat::Text => capnslog(&values)?,
        LogFormat::Json => zap(&values)?,
    };
    Ok((outputs, warning))
}

/// etcd's UniqueStringsValue: split at commas (nothing trimmed), each value once,
/// sorted.
fn unique(value: &str) -> Vec<&str> {
    let mut values: Vec<&str> = value.split(',').collect();
    values.sort_unstable();
    values.dedup();
    values
}

/// etcd 3.4's choice between `--log-output` and `--log-outputs`, both `default` unless
/// given: the one with more values wins; with as many, `--log-outputs` does, unless
/// both have several, or the same one that is not `default`. A lone `--log-output`
/// thus changes nothing but a warning, as in etcd.
fn reconcile<'a>(
    old: Vec<&'a str>,
    new: Vec<&'a str>,
) -> Result<(Vec<&'a str>, Option<String>), String> {
    if old.len() > new.len() {
        let warning = "'--log-output' flag has been deprecated! Please use '--log-outputs'!";
        return Ok((old, Some(warning.to_string())));
    }
    if old.len() < new.len() {
        return Ok((new, None));
    }
    if old.len() > 1 {
        return Err(
            "both '--log-output' and '--log-outputs' are set; only set '--log-outputs'".into(),
        );
    }
    if old == new && old != ["default"] {
        return Err(format!(
            "'--log-output={}' and '--log-outputs={}' are incompatible; only set --log-outputs",
            go_quoted(&old),
            go_quoted(&new)
        ));
    }
    let warning = (old != ["default"]).then(|| {
        format!(
            "Deprecated '--log-output' flag is set to {}; please use '--log-outputs' flag",
            go_quoted(&old)
        )
    });
    Ok((new, warning))
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

    fn parse(value: &str, logger: LogFormat) -> Result<Vec<LogOutput>, String> {
        super::parse("default", value, logger).map(|(outputs, _)| outputs)
    }

    #[test]
    fn the_deprecated_flag_counts_as_etcd_counts_it() {
        let both = |old, new| super::parse(old, new, LogFormat::Text);
        let (outputs, warning) = both("stdout", "default").unwrap();
        assert_eq!(outputs, [LogOutput::Stderr], "alone, it changes nothing");
        assert!(warning.unwrap().contains("[\"stdout\"]"));
        let refused = both("stdout,stderr", "default").unwrap_err();
        assert!(refused.contains("supports only 1 value"), "more values win");
        assert_eq!(
            both("stdout", "stdout").unwrap_err(),
            "'--log-output=[\"stdout\"]' and '--log-outputs=[\"stdout\"]' are incompatible; \
             only set --log-outputs"
        );
        assert!(both("a,b", "c,d")
            .unwrap_err()
            .starts_with("both '--log-output'"));
        let zap = super::parse("stderr", "stdout,stderr", LogFormat::Json).unwrap();
        assert_eq!(zap, (vec![LogOutput::Stderr, LogOutput::Stdout], None));
        assert_eq!(both("default", "stdout").unwrap().1, None);
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
