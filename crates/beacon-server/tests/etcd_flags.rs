//! etcd's command lines: every flag `etcd --help` (3.4.23) lists is known to Beacon,
//! either implemented or refused by name at the values Beacon cannot honour (never
//! clap's "unexpected argument"), and one command line with repeated flags, etcd's
//! defaults of flags Beacon has not built yet and flags that mean nothing here starts
//! both etcd and Beacon.

use std::ffi::OsString;
use std::process::Command;

use beacon_server::config::{Config, ConfigError};
use beacon_testkit::{beacon_bin, etcd_bin, etcd_or_skip, ServerKind, ServerProcess};

/// `--flag 'default'` pairs from etcd's help text (a few defaults are unquoted).
fn etcd_help_flags() -> Vec<(String, String)> {
    let help = Command::new(etcd_bin())
        .arg("--help")
        .output()
        .expect("running etcd --help");
    let text =
        String::from_utf8_lossy(&help.stdout).into_owned() + &String::from_utf8_lossy(&help.stderr);
    text.lines()
        .filter_map(|line| {
            let (flag, rest) = line.trim().strip_prefix("--")?.split_once(' ')?;
            let default = rest.trim();
            let default = default
                .strip_prefix('\'')
                .and_then(|d| d.strip_suffix('\''))
                .unwrap_or(default);
            Some((flag.to_string(), default.to_string()))
        })
        .collect()
}

#[test]
fn every_flag_of_etcd_help_is_known_at_its_default() {
    if !etcd_or_skip() {
        return;
    }
    let flags = etcd_help_flags();
    assert!(
        flags.len() >= 80,
        "etcd --help listed {} flags",
        flags.len()
    );
    let (mut accepted, mut refused) = (Vec::new(), Vec::new());
    for (flag, default) in &flags {
        let value = match (flag.as_str(), default.as_str()) {
            ("data-dir", _) => "/tmp/beacon-etcd-flags-test".to_string(),
            (_, "math.MaxUint32") => u32::MAX.to_string(),
            _ => default.clone(),
        };
        let args = ["beacon".to_string(), format!("--{flag}={value}")];
        match Config::from_args(args.iter().map(OsString::from)) {
            Ok(_) => accepted.push(flag.as_str()),
            Err(ConfigError::Invalid(why)) if why.contains(&format!("--{flag}=")) => {
                refused.push(flag.as_str())
            }
            Err(e) => panic!("--{flag}={value}: not refused by name: {e}"),
        }
    }
    eprintln!(
        "{} of {} etcd flags accepted at etcd's default; refused by name: {refused:?}",
        accepted.len(),
        flags.len()
    );
    // What Beacon does with these defaults is what etcd does with them.
    for flag in [
        "client-cert-auth",
        "proxy",
        "max-txn-ops",
        "max-wals",
        "log-level",
        "cors",
        "bcrypt-cost",
    ] {
        assert!(accepted.contains(&flag), "--{flag} at its default");
    }
}

#[test]
fn an_etcd_command_line_with_repeats_and_foreign_flags_starts_both() {
    if !etcd_or_skip() {
        return;
    }
    let args = [
        "--snapshot-count=5",
        "--snapshot-count",
        "100000",
        "--max-wals",
        "3",
        "-max-wals=4",
        "--client-cert-auth=false",
        "--proxy",
        "off",
        "--auto-compaction-retention",
        "0",
        "--strict-reconfig-check=false",
        "-max-txn-ops=128",
        "--enable-pprof=false",
        "--log-level",
        "debug",
        "--log-level=info",
    ];
    for (kind, bin) in [
        (ServerKind::Etcd, etcd_bin()),
        (ServerKind::Beacon, beacon_bin()),
    ] {
        let mut members = ServerProcess::cluster_with(kind, bin, 1, &args)
            .unwrap_or_else(|e| panic!("{kind:?} refused the command line: {e}"));
        if kind == ServerKind::Beacon {
            let log = members[0].log_tail(200);
            let warned = log.matches("--max-wals=4 is accepted").count();
            assert_eq!(warned, 1, "one warning, for the last value:\n{log}");
            assert!(!log.contains("DEBUG"), "the last --log-level wins:\n{log}");
        }
        members[0].terminate(std::time::Duration::from_secs(10));
    }
}
