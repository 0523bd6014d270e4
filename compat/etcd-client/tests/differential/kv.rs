//! KV: puts, ranges, deletes and compactions, their options, `prev_kv`, and each of
//! their refusals.

use etcd_client::{
    Client, CompactionOptions, DeleteOptions, GetOptions, PutOptions, SortOrder, SortTarget,
};

use crate::{answer, same_answers};

#[tokio::test]
async fn refusals_of_puts_ranges_and_deletes() {
    same_answers(|mut c: Client| async move {
        vec![
            // A key that is not there is no error.
            answer(c.get("missing", None).await),
            answer(c.delete("missing", None).await),
            // The empty key.
            answer(c.put("", "v", None).await),
            answer(c.get("", None).await),
            answer(c.delete("", None).await),
            // ignore_value and ignore_lease: with what they ignore, and on a missing key.
            answer(
                c.put("k", "v", Some(PutOptions::new().with_ignore_value()))
                    .await,
            ),
            answer(
                c.put(
                    "k",
                    "",
                    Some(PutOptions::new().with_lease(7).with_ignore_lease()),
                )
                .await,
            ),
            answer(
                c.put("k", "", Some(PutOptions::new().with_ignore_value()))
                    .await,
            ),
            answer(
                c.put("k", "v", Some(PutOptions::new().with_ignore_lease()))
                    .await,
            ),
            // A lease that does not exist.
            answer(
                c.put("k", "v", Some(PutOptions::new().with_lease(12345)))
                    .await,
            ),
            // Then the key exists: ignore_value keeps its value, ignore_lease its lease.
            answer(c.put("k", "v", None).await),
            answer(
                c.put(
                    "k",
                    "",
                    Some(PutOptions::new().with_ignore_value().with_prev_key()),
                )
                .await,
            ),
            answer(
                c.put("k", "v2", Some(PutOptions::new().with_ignore_lease()))
                    .await,
            ),
            answer(c.get("k", None).await),
            // Revisions from the future.
            answer(c.get("k", Some(GetOptions::new().with_revision(100))).await),
            answer(c.get("k", Some(GetOptions::new().with_revision(5))).await),
            answer(c.get("k", Some(GetOptions::new().with_revision(6))).await),
            // A key with bytes that are not UTF-8, and a large value.
            answer(c.put(vec![0xff, 0, 0xfe], vec![0x80; 3], None).await),
            answer(c.get(vec![0xff, 0, 0xfe], None).await),
            answer(c.put("big", vec![b'x'; 1 << 20], None).await),
            answer(c.get("big", Some(GetOptions::new().with_keys_only())).await),
            // Over the request limit (1.5 MiB plus etcd's gRPC overhead).
            answer(c.put("huge", vec![b'x'; 3 << 20], None).await),
        ]
    })
    .await;
}

#[tokio::test]
async fn compactions_and_reads_of_compacted_revisions() {
    same_answers(|mut c: Client| async move {
        let mut out = Vec::new();
        for i in 0..6 {
            out.push(answer(c.put("c", format!("v{i}"), None).await));
        }
        // Revision 7 is current.
        out.extend([
            answer(c.compact(0, None).await),
            answer(c.compact(-1, None).await),
            answer(c.compact(8, None).await),
            answer(c.compact(100, None).await),
            answer(c.compact(3, None).await),
            answer(c.compact(3, None).await),
            answer(c.compact(2, None).await),
            answer(
                c.compact(5, Some(CompactionOptions::new().with_physical()))
                    .await,
            ),
            answer(c.compact(7, None).await),
            answer(c.compact(7, None).await),
        ]);
        for revision in [1, 4, 6, 7, 8, 9] {
            out.push(answer(
                c.get("c", Some(GetOptions::new().with_revision(revision)))
                    .await,
            ));
        }
        out.extend([
            answer(c.put("c", "after", None).await),
            answer(c.get("c", Some(GetOptions::new().with_revision(8))).await),
            answer(c.get("c", Some(GetOptions::new().with_revision(7))).await),
            answer(c.compact(8, None).await),
            answer(c.get("c", Some(GetOptions::new().with_revision(7))).await),
            answer(c.get("c", None).await),
        ]);
        out
    })
    .await;
}

#[tokio::test]
async fn prev_kv_on_puts_and_deletes() {
    same_answers(|mut c: Client| async move {
        let prev = || Some(PutOptions::new().with_prev_key());
        let dprev = || DeleteOptions::new().with_prev_key();
        vec![
            answer(c.put("p/a", "1", prev()).await),
            answer(c.put("p/a", "2", prev()).await),
            answer(c.put("p/b", "1", prev()).await),
            answer(c.put("p/c", "1", None).await),
            answer(c.put("p/c", "2", None).await),
            answer(c.put("q", "1", None).await),
            // Without prev_kv, a delete counts only.
            answer(c.delete("q", None).await),
            answer(c.delete("p/a", Some(dprev())).await),
            answer(c.delete("p/a", Some(dprev())).await),
            answer(c.delete("p/", Some(dprev().with_prefix())).await),
            answer(c.delete("p/", Some(dprev().with_prefix())).await),
            answer(c.put("r1", "1", None).await),
            answer(c.put("r2", "2", None).await),
            answer(c.put("r3", "3", None).await),
            answer(c.delete("r1", Some(dprev().with_range("r3"))).await),
            answer(c.delete("r", Some(dprev().with_from_key())).await),
            answer(c.put("s", "1", None).await),
            answer(c.delete("", Some(dprev().with_all_keys())).await),
            answer(c.get("", Some(GetOptions::new().with_all_keys())).await),
        ]
    })
    .await;
}

#[tokio::test]
async fn range_options() {
    same_answers(|mut c: Client| async move {
        let mut out = Vec::new();
        for (key, value) in [
            ("a", "3"),
            ("b/1", "1"),
            ("b/2", "22"),
            ("b/3", ""),
            ("c", "1"),
            ("b/2", "2"),
            ("a", "0"),
            ("d", "9"),
        ] {
            out.push(answer(c.put(key, value, None).await));
        }
        let all = || GetOptions::new().with_all_keys();
        let gets = [
            ("b/", GetOptions::new().with_prefix()),
            ("b", GetOptions::new().with_from_key()),
            ("a", GetOptions::new().with_range("c")),
            ("c", GetOptions::new().with_range("a")),
            ("", all().with_limit(2)),
            ("", all().with_limit(-1)),
            ("", all().with_count_only()),
            ("", all().with_count_only().with_limit(1)),
            ("", all().with_keys_only()),
            ("", all().with_serializable()),
            ("", all().with_revision(4)),
            ("", all().with_min_mod_revision(4)),
            ("", all().with_max_mod_revision(4)),
            (
                "",
                all()
                    .with_min_create_revision(3)
                    .with_max_create_revision(5),
            ),
            ("", all().with_min_mod_revision(6).with_limit(1)),
        ];
        for (key, options) in gets {
            out.push(answer(c.get(key, Some(options)).await));
        }
        for target in [
            SortTarget::Key,
            SortTarget::Version,
            SortTarget::Create,
            SortTarget::Mod,
            SortTarget::Value,
        ] {
            for order in [SortOrder::None, SortOrder::Ascend, SortOrder::Descend] {
                let options = all().with_sort(target, order).with_limit(3);
                out.push(answer(c.get("", Some(options)).await));
            }
        }
        out
    })
    .await;
}
