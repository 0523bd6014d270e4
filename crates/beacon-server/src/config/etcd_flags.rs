//! etcd 3.4 flags that Beacon does not parse with clap: taken out of the command line
//! (and the `ETCD_*` environment) before clap sees it, so that an etcd command line
//! runs unchanged wherever Beacon would behave as etcd does.
//!
//! A flag here is one of two kinds:
//! - [`Kind::Pending`]: it means something Beacon has not built (today only etcd
//!   3.5's `--unsafe-no-fsync`, which etcd 3.4 does not know). The values at which etcd
//!   behaves as Beacon always does are accepted (none for that one); any other value
//!   is refused by name, never silently ignored.
//! - [`Kind::NoMeaning`]: it tunes something Beacon does not have (bbolt's batching,
//!   WAL file retention, Go's profiler); any value is accepted with one warning.

use std::ffi::OsString;

/// What Beacon does with one etcd flag.
pub(super) enum Kind {
    /// Accepted only at these values (compared as Go parses the flag's type).
    Pending(&'static [&'static str]),
    /// Accepted at any value, with a warning saying why it changes nothing.
    NoMeaning(&'static str),
}

/// One etcd flag Beacon's clap parser does not know.
pub(super) struct EtcdFlag {
    pub(super) name: &'static str,
    /// Go's boolean flags take their value only after `=`; alone they mean true.
    pub(super) boolean: bool,
    pub(super) kind: Kind,
}

const fn pending_bool(name: &'static str, accepted: &'static [&'static str]) -> EtcdFlag {
    EtcdFlag {
        name,
        boolean: true,
        kind: Kind::Pending(accepted),
    }
}

const fn no_meaning(name: &'static str, boolean: bool, why: &'static str) -> EtcdFlag {
    EtcdFlag {
        name,
        boolean,
        kind: Kind::NoMeaning(why),
    }
}

/// No value is accepted yet: Beacon behaves as etcd does at none of them.
const NONE: &[&str] = &[];

const BBOLT: &str = "it tunes etcd's bbolt backend; beacon's keyspace is in fjall";

/// Every flag of `etcd --help` (3.4.23) that [`super::Flags`] does not declare (but
/// `--config-file`, which `super::take_config_file` reads first), and
/// `--unsafe-no-fsync` (3.5), refused here by name as etcd 3.4 refuses it as unknown.
pub(super) const ETCD_FLAGS: &[EtcdFlag] = &[
    no_meaning(
        "max-snapshots",
        false,
        "beacon keeps no snapshot files to count",
    ),
    no_meaning("max-wals", false, "beacon keeps no WAL files to count"),
    no_meaning("backend-batch-interval", false, BBOLT),
    no_meaning("backend-batch-limit", false, BBOLT),
    no_meaning("experimental-backend-bbolt-freelist-type", false, BBOLT),
    no_meaning("experimental-compaction-batch-limit", false, BBOLT),
    no_meaning(
        "log-package-levels",
        false,
        "it sets capnslog's per-package levels; use --log-level",
    ),
    no_meaning(
        "enable-pprof",
        true,
        "it serves Go's profiler; beacon is not a Go program",
    ),
    no_meaning(
        "experimental-enable-lease-checkpoint",
        true,
        "beacon always keeps leases' remaining TTLs in its log",
    ),
    pending_bool("unsafe-no-fsync", NONE),
];

fn lookup(name: &str) -> Option<&'static EtcdFlag> {
    ETCD_FLAGS.iter().find(|f| f.name == name)
}

/// Splits `args` (in `--name` form, the program name first) into the arguments left
/// for clap and the flags `wanted` picks, in the order given, as Go's flag package
/// reads them: `--name=value`, a flag `wanted` calls boolean alone as `true`, or
/// `--name value`. Nothing after `--` is a flag.
pub(super) fn split_out(
    args: Vec<OsString>,
    wanted: impl Fn(&str) -> Option<Boolean>,
) -> Result<(Vec<OsString>, Picked), String> {
    let mut rest = Vec::with_capacity(args.len());
    let mut picked = Vec::new();
    let mut args = args.into_iter().enumerate();
    while let Some((i, arg)) = args.next() {
        let text = arg.to_string_lossy().into_owned();
        if text == "--" {
            rest.push(arg);
            rest.extend(args.map(|(_, a)| a));
            break;
        }
        let name = text
            .strip_prefix("--")
            .filter(|_| i > 0)
            .map(|s| s.split('=').next().unwrap_or(""));
        let Some((name, boolean)) = name.and_then(|n| Some((n, wanted(n)?))) else {
            rest.push(arg);
            continue;
        };
        let value = match text.split_once('=') {
            Some((_, v)) => OsString::from(v),
            None if boolean == Boolean::Yes => OsString::from("true"),
            None => match args.next() {
                Some((_, v)) => v,
                None => return Err(format!("flag needs an argument: -{name}")),
            },
        };
        picked.push((name.to_string(), value));
    }
    Ok((rest, picked))
}

/// The flags [`split_out`] took: (name, value), in the order given.
pub(super) type Picked = Vec<(String, OsString)>;

/// Whether a flag is one of Go's booleans, which take a value only after `=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Boolean {
    Yes,
    No,
}

/// Takes the flags of [`ETCD_FLAGS`] out of `args` (already in `--name` form) and
/// checks their values, the last one given winning as with Go's flag package; a flag
/// absent from the command line is read from its `ETCD_*` variable through `env`.
/// Returns the arguments left for clap and one warning per flag accepted without
/// meaning; `Err` names the first flag whose value Beacon cannot honour.
pub(super) fn take(
    args: Vec<OsString>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(Vec<OsString>, Vec<String>), String> {
    let boolean = |f: &EtcdFlag| if f.boolean { Boolean::Yes } else { Boolean::No };
    let (rest, picked) = split_out(args, |name| lookup(name).map(boolean))?;
    let mut given: Vec<(&'static EtcdFlag, String)> = Vec::new();
    for (flag, value) in picked
        .into_iter()
        .filter_map(|(n, v)| Some((lookup(&n)?, v)))
    {
        given.retain(|(f, _)| f.name != flag.name);
        given.push((flag, value.to_string_lossy().into_owned()));
    }
    for flag in ETCD_FLAGS {
        if given.iter().any(|(f, _)| f.name == flag.name) {
            continue;
        }
        let var = format!("ETCD_{}", flag.name.to_uppercase().replace('-', "_"));
        if let Some(value) = env(&var) {
            given.push((flag, value));
        }
    }
    let mut warnings = Vec::new();
    for (flag, value) in given {
        match flag.kind {
            Kind::NoMeaning(why) => warnings.push(format!(
                "flag --{}={value} is accepted for etcd compatibility and ignored: {why}",
                flag.name
            )),
            Kind::Pending(accepted) => {
                if !accepted.iter().any(|a| same_value(flag, a, &value)) {
                    let only = match accepted {
                        [] => String::new(),
                        values => format!(" (only {})", quoted(values)),
                    };
                    return Err(format!(
                        "flag --{}={value} is an etcd flag that beacon does not support yet{only}",
                        flag.name
                    ));
                }
            }
        }
    }
    Ok((rest, warnings))
}

/// Whether `value` says what `accepted` says, as Go would parse the flag.
fn same_value(flag: &EtcdFlag, accepted: &str, value: &str) -> bool {
    if flag.boolean {
        let go = crate::http::goform::parse_bool;
        return go(value).is_some() && go(value) == go(accepted);
    }
    value == accepted
}

fn quoted(values: &[&str]) -> String {
    values
        .iter()
        .map(|v| format!("{v:?}"))
        .collect::<Vec<_>>()
        .join(" or ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<(Vec<String>, Vec<String>), String> {
        let args = args.iter().map(OsString::from).collect();
        let (rest, warnings) = take(args, |_| None)?;
        let rest = rest.iter().map(|a| a.to_string_lossy().into_owned());
        Ok((rest.collect(), warnings))
    }

    #[test]
    fn accepted_values_are_taken_out_and_others_refused() {
        let (rest, warnings) = run(&["beacon", "--name", "a", "--max-wals=1"]).unwrap();
        assert_eq!(rest, ["beacon", "--name", "a"]);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let refused = run(&["beacon", "--unsafe-no-fsync"]).unwrap_err();
        assert!(refused.contains("--unsafe-no-fsync=true"), "{refused}");
        assert!(refused.contains("does not support yet"), "{refused}");
        assert!(run(&["beacon", "--unsafe-no-fsync=false"]).is_err());
        assert!(run(&["beacon", "--unsafe-no-fsync=nope"]).is_err());
    }

    #[test]
    fn the_last_value_given_wins() {
        let a = "--unsafe-no-fsync=false";
        let refused = run(&["beacon", a, "--unsafe-no-fsync"]).unwrap_err();
        assert!(refused.contains("--unsafe-no-fsync=true"), "{refused}");
    }

    #[test]
    fn flags_without_meaning_warn_once() {
        let (rest, warnings) = run(&[
            "beacon",
            "--max-wals",
            "3",
            "--max-wals=4",
            "--enable-pprof",
        ])
        .unwrap();
        assert_eq!(rest, ["beacon"]);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("--max-wals=4"), "{warnings:?}");
    }

    #[test]
    fn the_environment_fills_in_and_the_command_line_wins() {
        let env = |v: &str| match v {
            "ETCD_UNSAFE_NO_FSYNC" => Some("true".to_string()),
            "ETCD_MAX_WALS" => Some("9".to_string()),
            _ => None,
        };
        let args = vec![OsString::from("beacon")];
        assert!(take(args, env).is_err());
        let only_wals = |v: &str| env(v).filter(|_| v == "ETCD_MAX_WALS");
        let args = ["beacon", "--max-wals=2"].map(OsString::from).to_vec();
        let (_, warnings) = take(args, only_wals).unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("--max-wals=2"), "{warnings:?}");
    }

    #[test]
    fn a_value_after_the_separator_is_left_alone() {
        let (rest, _) = run(&["beacon", "--", "--unsafe-no-fsync"]).unwrap();
        assert_eq!(rest, ["beacon", "--", "--unsafe-no-fsync"]);
        assert!(run(&["beacon", "--max-wals"])
            .unwrap_err()
            .contains("needs an argument"));
    }
}
