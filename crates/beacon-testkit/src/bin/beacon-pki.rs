//! `beacon-pki DIR`: writes a test CA, server and client pairs and a revocation list
//! into DIR (see `beacon_testkit::Pki::write_to`), for the compatibility suites' TLS
//! runs, which start servers and clients from shell scripts.

fn main() -> std::process::ExitCode {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: beacon-pki DIR");
        return std::process::ExitCode::from(2);
    };
    let dir = std::path::PathBuf::from(dir);
    let made = std::fs::create_dir_all(&dir).and_then(|()| beacon_testkit::Pki::write_to(&dir));
    match made {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("beacon-pki: {}: {e}", dir.display());
            std::process::ExitCode::FAILURE
        }
    }
}
