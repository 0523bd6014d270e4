//! `snapshot status FILE` and `snapshot restore FILE`, with etcdctl v3's flags, on the
//! backups `etcdctl snapshot save` writes from Beacon (`beacon_raft::backup`: Beacon's
//! snapshot format, which etcdctl cannot open as its bbolt database). Offline commands:
//! no endpoint is contacted. Failures are etcdctl v3's: `Error: ...`, exit 1 (128 for
//! a wrong argument count). Unlike etcdctl's `status`, which opens the database as it
//! is, both verify the file's sha256 and checksum first, and refuse a damaged file.

use beacon_raft::backup::{self, Backup, Summary};

use crate::cli::{SnapshotRestoreArgs, SnapshotStatusArgs};
use crate::fail::{CmdResult, Fail};

/// etcdctl v3's `ExitError`.
const EXIT_ERROR: i32 = 1;
/// etcdctl v3's `ExitBadArgs`.
const EXIT_BAD_ARGS: i32 = 128;

/// etcdctl v3's `ExitWithError`: one space after `Error:`, unlike v2's two.
fn error(code: i32, err: impl std::fmt::Display) -> Fail {
    Fail::raw(code, format!("Error: {err}\n"))
}

fn one_file<'a>(files: &'a [String], command: &str) -> Result<&'a str, Fail> {
    match files {
        [file] => Ok(file),
        _ => Err(error(
            EXIT_BAD_ARGS,
            format!("snapshot {command} requires exactly one argument"),
        )),
    }
}

/// Reads and verifies the backup at `path`; its length too.
fn read(path: &str, skip_hash_check: bool) -> Result<(Backup, u64), Fail> {
    let bytes = std::fs::read(path).map_err(|e| error(EXIT_ERROR, format!("open {path}: {e}")))?;
    let len = bytes.len() as u64;
    backup::decode(bytes, skip_hash_check)
        .map(|b| (b, len))
        .map_err(|e| error(EXIT_ERROR, format!("snapshot {path}: {e}")))
}

/// `snapshot status FILE [-w simple|table|json|fields]`.
pub fn status(args: &SnapshotStatusArgs) -> CmdResult {
    let path = one_file(&args.files, "status")?;
    let (backup, len) = read(path, false)?;
    let summary = backup
        .summary(len)
        .map_err(|e| error(EXIT_ERROR, format!("snapshot {path}: {e}")))?;
    let text = match args.write_out.as_str() {
        "simple" => simple(&summary),
        "table" => table(&summary),
        "json" => json(&summary),
        "fields" => fields(&summary),
        other => {
            return Err(error(
                EXIT_BAD_ARGS,
                format!("unknown output format {other:?}"),
            ))
        }
    };
    print!("{text}");
    Ok(())
}

/// `snapshot restore FILE --data-dir ... [cluster flags]`: prints nothing on success,
/// as etcdctl (which only logs).
pub fn restore(args: &SnapshotRestoreArgs) -> CmdResult {
    let path = one_file(&args.files, "restore")?;
    // etcdctl refuses an existing directory before it reads the file.
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| format!("{}.beacon", args.name).into());
    if data_dir.exists() {
        return Err(error(
            EXIT_ERROR,
            format!("data-dir {:?} exists", data_dir.display().to_string()),
        ));
    }
    let (backup, _) = read(path, args.skip_hash_check)?;
    let flags = beacon_server::restore::RestoreFlags {
        name: args.name.clone(),
        initial_cluster: args.initial_cluster.clone(),
        initial_cluster_token: args.initial_cluster_token.clone(),
        initial_advertise_peer_urls: args.initial_advertise_peer_urls.clone(),
        data_dir,
    };
    beacon_server::restore::restore(&backup, &flags)
        .map(|_| ())
        .map_err(|e| error(EXIT_ERROR, e))
}

fn simple(s: &Summary) -> String {
    format!(
        "{:x}, {}, {}, {}\n",
        s.hash,
        s.revision,
        s.total_keys,
        human_bytes(s.total_size)
    )
}

fn json(s: &Summary) -> String {
    format!(
        "{{\"hash\":{},\"revision\":{},\"totalKey\":{},\"totalSize\":{}}}\n",
        s.hash, s.revision, s.total_keys, s.total_size
    )
}

fn fields(s: &Summary) -> String {
    format!(
        "\"Hash\" : {}\n\"Revision\" : {}\n\"Keys\" : {}\n\"Size\" : {}\n",
        s.hash, s.revision, s.total_keys, s.total_size
    )
}

/// etcdctl's table (Go's tablewriter): headers centered, values right-aligned, each
/// cell padded by a space.
fn table(s: &Summary) -> String {
    let headers = ["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"];
    let values = [
        format!("{:x}", s.hash),
        s.revision.to_string(),
        s.total_keys.to_string(),
        human_bytes(s.total_size),
    ];
    let widths: Vec<usize> = headers
        .iter()
        .zip(&values)
        .map(|(h, v)| h.len().max(v.len()))
        .collect();
    let rule: String = widths.iter().fold("+".to_string(), |mut line, w| {
        line.push_str(&"-".repeat(w + 2));
        line.push('+');
        line
    });
    let row = |cells: Vec<String>| {
        cells.iter().fold("|".to_string(), |mut line, cell| {
            line.push_str(&format!(" {cell} |"));
            line
        })
    };
    let header = row(headers
        .iter()
        .zip(&widths)
        .map(|(h, &w)| {
            let left = (w - h.len()) / 2;
            format!("{}{h}{}", " ".repeat(left), " ".repeat(w - h.len() - left))
        })
        .collect());
    let body = row(values
        .iter()
        .zip(&widths)
        .map(|(v, &w)| format!("{v:>w$}"))
        .collect());
    format!("{rule}\n{header}\n{rule}\n{body}\n{rule}\n")
}

/// go-humanize's `Bytes`, which etcdctl prints sizes with: SI units, one decimal
/// below 10.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if n < 10 {
        return format!("{n} B");
    }
    let e = ((n as f64).ln() / 1000f64.ln()).floor() as usize;
    let e = e.min(UNITS.len() - 1);
    let val = ((n as f64) / 1000f64.powi(e as i32) * 10.0 + 0.5).floor() / 10.0;
    if val < 10.0 {
        format!("{val:.1} {}", UNITS[e])
    } else {
        format!("{val:.0} {}", UNITS[e])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What etcdctl printed for an etcd 3.4 snapshot of 20480 bytes.
    fn etcd_like() -> Summary {
        Summary {
            hash: 479_979_825,
            revision: 4,
            total_keys: 7,
            total_size: 20480,
        }
    }

    #[test]
    fn formats_as_etcdctl() {
        let s = etcd_like();
        assert_eq!(simple(&s), "1c9be931, 4, 7, 20 kB\n");
        assert_eq!(
            json(&s),
            "{\"hash\":479979825,\"revision\":4,\"totalKey\":7,\"totalSize\":20480}\n"
        );
        assert_eq!(
            table(&s),
            "+----------+----------+------------+------------+\n\
             |   HASH   | REVISION | TOTAL KEYS | TOTAL SIZE |\n\
             +----------+----------+------------+------------+\n\
             | 1c9be931 |        4 |          7 |      20 kB |\n\
             +----------+----------+------------+------------+\n"
        );
    }

    #[test]
    fn sizes_as_go_humanize() {
        for (n, want) in [
            (5, "5 B"),
            (999, "999 B"),
            (1056, "1.1 kB"),
            (24608, "25 kB"),
            (2_500_000, "2.5 MB"),
        ] {
            assert_eq!(human_bytes(n), want, "{n}");
        }
    }

    #[test]
    fn a_missing_file_names_its_path() {
        let err = read("/nonexistent/backup.db", false).expect_err("refused");
        assert!(err.stderr.starts_with("Error: open /nonexistent/backup.db"));
    }
}
