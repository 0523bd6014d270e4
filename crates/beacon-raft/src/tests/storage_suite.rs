//! openraft's own storage test suite, run on the fjall log store and our state machine.

use std::sync::Arc;

use crate::disk::StdDisk;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite() {
    crate::storage_suite::run(|| {
        let dir = tempfile::tempdir()?;
        Ok((
            Arc::new(StdDisk::default()) as _,
            dir.path().to_owned(),
            dir,
        ))
    })
    .await
    .expect("openraft storage suite");
}
