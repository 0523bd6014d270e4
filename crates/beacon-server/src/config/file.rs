//! etcd's `--config-file`: a YAML mapping of flag names to values, read into the same
//! `--name=value` arguments the command line would give, so that one parser checks
//! both. As etcd 3.4 does, a config file replaces the command line and the `ETCD_*`
//! environment: only the file's settings and the defaults apply.

use std::ffi::OsString;
use std::path::Path;

use yaml_rust2::{Yaml, YamlLoader};

/// The nested TLS sections of etcd's file, and the flag each of their keys stands for.
const SECURITY_SECTIONS: &[(&str, &[(&str, &str)])] = &[
    (
        "client-transport-security",
        &[
            ("cert-file", "cert-file"),
            ("key-file", "key-file"),
            ("client-cert-auth", "client-cert-auth"),
            ("trusted-ca-file", "trusted-ca-file"),
            ("auto-tls", "auto-tls"),
        ],
    ),
    (
        "peer-transport-security",
        &[
            ("cert-file", "peer-cert-file"),
            ("key-file", "peer-key-file"),
            ("client-cert-auth", "peer-client-cert-auth"),
            ("trusted-ca-file", "peer-trusted-ca-file"),
            ("auto-tls", "peer-auto-tls"),
        ],
    ),
];

/// The arguments (after the program name) that the file at `path` stands for, and a
/// warning for each key it has that no etcd flag reads (etcd ignores those too).
pub(super) fn arguments(path: &Path) -> Result<(Vec<OsString>, Vec<String>), String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config file {shown}: {e}"))?;
    let docs = YamlLoader::load_from_str(&text)
        .map_err(|e| format!("config file {shown} is not YAML: {e}"))?;
    let (mut args, mut warnings) = (Vec::new(), Vec::new());
    let Some(doc) = docs.first() else {
        return Ok((args, warnings));
    };
    let Yaml::Hash(top) = doc else {
        return Err(format!(
            "config file {shown}: expected a mapping of flag names"
        ));
    };
    for (key, value) in top {
        let Some(key) = key.as_str() else {
            return Err(format!(
                "config file {shown}: a key is not a string: {key:?}"
            ));
        };
        if let Some((_, keys)) = SECURITY_SECTIONS.iter().find(|(s, _)| *s == key) {
            let Yaml::Hash(section) = value else {
                if !value.is_null() {
                    return Err(format!("config file {shown}: {key} is not a mapping"));
                }
                continue;
            };
            for (inner, value) in section {
                let inner = inner.as_str().unwrap_or_default();
                match keys.iter().find(|(k, _)| *k == inner) {
                    Some((_, flag)) => args.push(argument(flag, value, &shown)?),
                    None => warnings.push(format!(
                        "config file {shown}: {key}.{inner} is not read by beacon or etcd 3.4"
                    )),
                }
            }
            continue;
        }
        args.push(argument(key, value, &shown)?);
    }
    Ok((args, warnings))
}

/// `--flag=value` for one setting: scalars as YAML wrote them, a list joined with
/// commas (`log-outputs: [stderr]`), nothing (`wal-dir:`) as the empty value.
fn argument(flag: &str, value: &Yaml, shown: &impl std::fmt::Display) -> Result<OsString, String> {
    let scalar = |v: &Yaml| match v {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        Yaml::Null => Some(String::new()),
        _ => None,
    };
    let text = match value {
        Yaml::Array(items) => items
            .iter()
            .map(scalar)
            .collect::<Option<Vec<_>>>()
            .map(|v| v.join(",")),
        other => scalar(other),
    };
    let text =
        text.ok_or_else(|| format!("config file {shown}: {flag} has a value beacon cannot read"))?;
    Ok(OsString::from(format!("--{flag}={text}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args_of(yaml: &str) -> Result<(Vec<String>, Vec<String>), String> {
        let dir = std::env::temp_dir().join(format!("beacon-config-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}.yml", yaml.len()));
        std::fs::write(&path, yaml).unwrap();
        let got = arguments(&path);
        let _ = std::fs::remove_file(&path);
        let (args, warnings) = got?;
        let args = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        Ok((args, warnings))
    }

    #[test]
    fn settings_become_flags() {
        let (args, warnings) = args_of(
            "name: 'n1'\nsnapshot-count: 5\nenable-v2: true\nwal-dir:\nlog-outputs: [stderr]\n\
             client-transport-security:\n  client-cert-auth: false\n  cert-file: ''\n\
             peer-transport-security:\n  auto-tls: false\n  bogus: 1\n",
        )
        .unwrap();
        assert_eq!(
            args,
            [
                "--name=n1",
                "--snapshot-count=5",
                "--enable-v2=true",
                "--wal-dir=",
                "--log-outputs=stderr",
                "--client-cert-auth=false",
                "--cert-file=",
                "--peer-auto-tls=false",
            ]
        );
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("peer-transport-security.bogus"));
    }

    #[test]
    fn broken_files_are_refused_with_their_path() {
        let missing = arguments(Path::new("/nonexistent/etcd.yml")).unwrap_err();
        assert!(missing.contains("/nonexistent/etcd.yml"), "{missing}");
        assert!(args_of("name: [unclosed\n")
            .unwrap_err()
            .contains("is not YAML"));
        assert!(args_of("- a\n- b\n").unwrap_err().contains("mapping"));
        assert!(args_of("name: {a: 1}\n")
            .unwrap_err()
            .contains("name has a value"));
        assert_eq!(args_of("").unwrap().0.len(), 0);
    }
}
