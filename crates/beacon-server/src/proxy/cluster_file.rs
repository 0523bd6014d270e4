//! `<data-dir>/proxy/cluster`: the peer URLs the proxy last learned, as etcd writes
//! them (`{"PeerURLs":[...]}`), so that a restarted proxy finds the cluster even after
//! its members moved away from `--initial-cluster`. Written to `cluster.bak`, synced,
//! then renamed over the file, as etcd does.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file's content: Go's encoding of etcd's anonymous struct.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
struct ClusterFile {
    // Go's decoder matches field names case-insensitively, and takes null as empty.
    #[serde(rename = "PeerURLs", alias = "peerURLs", alias = "peerurls", default)]
    peer_urls: Option<Vec<String>>,
}

/// The cluster file in the proxy directory `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join("cluster")
}

/// The peer URLs the file holds; `Ok(None)` when there is no file.
pub fn read(file: &Path) -> Result<Option<Vec<String>>, String> {
    let bytes = match std::fs::read(file) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("reading {}: {e}", file.display())),
    };
    let parsed: ClusterFile =
        serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(Some(parsed.peer_urls.unwrap_or_default()))
}

/// The file's bytes for `peer_urls`, as Go's `json.Marshal` writes them.
fn encode(peer_urls: &[String]) -> Vec<u8> {
    let content = ClusterFile {
        peer_urls: Some(peer_urls.to_vec()),
    };
    crate::http::gojson::go_json(&content).unwrap_or_default()
}

/// Replaces the file with `peer_urls`: the whole new file or the old one, after a crash.
pub fn write(file: &Path, peer_urls: &[String]) -> std::io::Result<()> {
    let mut staged = file.as_os_str().to_owned();
    staged.push(".bak");
    let staged = PathBuf::from(staged);
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options.open(&staged)?;
        f.write_all(&encode(peer_urls))?;
        f.sync_all()?;
    }
    std::fs::rename(&staged, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_file_reads_back_and_is_etcds_json() {
        let dir = std::env::temp_dir().join(format!("beacon-proxy-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = path(&dir);
        assert_eq!(read(&file).unwrap(), None);
        let urls = vec![
            "http://127.0.0.1:2380".to_string(),
            "http://10.0.0.2:2380".to_string(),
        ];
        write(&file, &urls).unwrap();
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            r#"{"PeerURLs":["http://127.0.0.1:2380","http://10.0.0.2:2380"]}"#
        );
        assert_eq!(read(&file).unwrap(), Some(urls));
        assert!(!dir.join("cluster.bak").exists());
        std::fs::write(&file, r#"{"peerurls":null}"#).unwrap();
        assert_eq!(read(&file).unwrap(), Some(vec![]));
        std::fs::write(&file, "not json").unwrap();
        assert!(read(&file).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
