//! How a command fails: an exit code and the text for stderr, worded as etcdctl's.

use std::fmt::Display;

/// etcdctl's exit codes.
pub mod exit {
    /// Bad or missing arguments.
    pub const BAD_ARGS: i32 = 1;
    /// No endpoint could be reached.
    pub const BAD_CONNECTION: i32 = 2;
    /// etcd (or the transport) failed the request.
    pub const SERVER_ERROR: i32 = 4;
    /// `cluster-health` found an unhealthy member.
    pub const CLUSTER_NOT_HEALTHY: i32 = 5;
}

/// A command's failure: print `stderr` as is and exit with `code`.
#[derive(Debug)]
pub struct Fail {
    /// Process exit code.
    pub code: i32,
    /// Everything to write to stderr, newlines included.
    pub stderr: String,
}

impl Fail {
    /// `Error:  <err>` (etcdctl's `handleError`; the two spaces are Go's `Println`).
    pub fn error(code: i32, err: impl Display) -> Fail {
        Fail {
            code,
            stderr: format!("Error:  {err}\n"),
        }
    }

    /// A client error as `handleError` prints it, with the per-endpoint detail after a
    /// cluster error.
    pub fn client(code: i32, err: &beacon_client::Error) -> Fail {
        let mut fail = Fail::error(code, err);
        if let beacon_client::Error::Unavailable(errors) = err {
            fail.stderr.push_str(&errors.detail());
            fail.stderr.push('\n');
        }
        fail
    }

    /// A bare line on stderr.
    pub fn line(code: i32, text: impl Display) -> Fail {
        Fail {
            code,
            stderr: format!("{text}\n"),
        }
    }

    /// Raw stderr text.
    pub fn raw(code: i32, text: impl Into<String>) -> Fail {
        Fail {
            code,
            stderr: text.into(),
        }
    }
}

/// What a command returns.
pub type CmdResult = Result<(), Fail>;

/// `context deadline exceeded`: Go's text for the total timeout running out.
pub const DEADLINE_EXCEEDED: &str = "context deadline exceeded";
