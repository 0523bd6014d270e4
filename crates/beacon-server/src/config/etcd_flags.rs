//! etcd 3.4 flags that tune something Beacon does not have (bbolt's batching, WAL file
//! retention, Go's profiler): taken out of the command line (and the `ETCD_*`
//! environment) before clap sees it and accepted at any value, each with one warning,
//! so that an etcd command line runs unchanged. Every other etcd flag is one of
//! [`super::Flags`] and does what etcd's does.

use std::ffi::OsString;

/// One etcd flag Beacon's clap parser does not know.
pub(super) struct EtcdFlag {
    pub(super) name: &'static str,
    /// Go's boolean flags take their value only after `=`; alone they mean true.
    pub(super) boolean: bool,
    /// Why any value changes nothing, said in the warning.
    pub(super) why: &'static str,
}

const fn no_meaning(name: &'static str, boolean: bool, why: &'static str) -> EtcdFlag {
    EtcdFlag { name, boolean, why }
}

const BBOLT: &str = "it tunes etcd's bbolt backend; beacon's keyspace is in fjall";

/// Every flag of etcd 3.4.23 that [`super::Flags`] does not declare (but
/// `--config-file`, which `super::take_config_file` reads first).
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
    no_meaning(
        "experimental-enable-lease-checkpoint-persist",
        true,
        "beacon always keeps leases' remaining TTLs in its log",
    ),
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
/// meaning; `Err` when such a flag's value is missing, or etcd refuses the values.
pub(super) fn take(
    args: Vec<OsString>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(Vec<OsString>, Vec<String>), super::ConfigError> {
    let boolean = |f: &EtcdFlag| if f.boolean { Boolean::Yes } else { Boolean::No };
    let (rest, picked) =
        split_out(args, |name| lookup(name).map(boolean)).map_err(super::ConfigError::Invalid)?;
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
    // etcd's check of the two lease checkpoint flags, both Go booleans.
    let on = |name: &str| {
        given
            .iter()
            .any(|(f, v)| f.name == name && crate::http::goform::parse_bool(v) == Some(true))
    };
    if on("experimental-enable-lease-checkpoint-persist")
        && !on("experimental-enable-lease-checkpoint")
    {
        return Err(super::ConfigError::Refused(
            "setting experimental-enable-lease-checkpoint-persist requires \
             experimental-enable-lease-checkpoint"
                .to_string(),
        ));
    }
    let warnings = given
        .into_iter()
        .map(|(flag, value)| {
            format!(
                "flag --{}={value} is accepted for etcd compatibility and ignored: {}",
                flag.name, flag.why
            )
        })
        .collect();
    Ok((rest, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<(Vec<String>, Vec<String>), String> {
        let args = args.iter().map(OsString::from).collect();
        let (rest, warnings) = take(args, |_| None).map_err(|e| e.to_string())?;
        let rest = rest.iter().map(|a| a.to_string_lossy().into_owned());
        Ok((rest.collect(), warnings))
    }

    #[test]
    fn flags_without_meaning_are_taken_out_and_the_rest_left() {
        let (rest, warnings) = run(&["beacon", "--name", "a", "--max-wals=1"]).unwrap();
        assert_eq!(rest, ["beacon", "--name", "a"]);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        // A boolean alone means true, and takes no value after it.
        let (rest, warnings) = run(&["beacon", "--enable-pprof", "--name", "a"]).unwrap();
        assert_eq!(rest, ["beacon", "--name", "a"]);
        assert!(warnings[0].contains("--enable-pprof=true"), "{warnings:?}");
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
            "ETCD_ENABLE_PPROF" => Some("true".to_string()),
            "ETCD_MAX_WALS" => Some("9".to_string()),
            _ => None,
        };
        let args = vec![OsString::from("beacon")];
        let (_, warnings) = take(args, env).unwrap();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        let args = ["beacon", "--max-wals=2"].map(OsString::from).to_vec();
        let (_, warnings) = take(args, env).unwrap();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings.iter().any(|w| w.contains("--max-wals=2")),
            "{warnings:?}"
        );
    }

    #[test]
    fn a_value_after_the_separator_is_left_alone() {
        let (rest, _) = run(&["beacon", "--", "--max-wals=1"]).unwrap();
        assert_eq!(rest, ["beacon", "--", "--max-wals=1"]);
        assert!(run(&["beacon", "--max-wals"])
            .unwrap_err()
            .contains("needs an argument"));
    }
}
