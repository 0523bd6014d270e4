//! Transactions: compares on every target with every operator, on missing keys and on
//! ranges, nested transactions, and the refusals checked before and while applying.

use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, GetOptions, LeaseGrantOptions, PutOptions, Txn,
    TxnOp,
};

use crate::{answer, same_answers};

const OPS: [CompareOp; 4] = [
    CompareOp::Equal,
    CompareOp::NotEqual,
    CompareOp::Greater,
    CompareOp::Less,
];

/// A transaction that says which way its compare went (and writes nothing either way).
fn probe(compare: Compare) -> Txn {
    Txn::new()
        .when([compare])
        .and_then([TxnOp::get("yes", None)])
        .or_else([TxnOp::get("no", None)])
}

#[tokio::test]
async fn compares_on_version_create_mod_value_and_lease() {
    same_answers(|mut c: Client| async move {
        let mut out = vec![
            answer(
                c.lease_grant(60, Some(LeaseGrantOptions::new().with_id(77)))
                    .await,
            ),
            answer(c.put("k", "b", None).await),
            answer(
                c.put("k", "c", Some(PutOptions::new().with_lease(77)))
                    .await,
            ),
            answer(c.put("j/1", "x", None).await),
            answer(c.put("j/2", "y", None).await),
        ];
        // k: version 2, created at 2, modified at 3, value "c", lease 77.
        let mut compares = Vec::new();
        for op in OPS {
            for key in ["k", "missing"] {
                compares.push(Compare::version(key, op, 2));
                compares.push(Compare::version(key, op, 0));
                compares.push(Compare::create_revision(key, op, 2));
                compares.push(Compare::create_revision(key, op, 0));
                compares.push(Compare::mod_revision(key, op, 3));
                compares.push(Compare::mod_revision(key, op, 4));
                compares.push(Compare::value(key, op, "c"));
                compares.push(Compare::value(key, op, "b"));
                compares.push(Compare::value(key, op, ""));
                compares.push(Compare::lease(key, op, 77));
                compares.push(Compare::lease(key, op, 0));
            }
            // Over a range: true only if true of every key in it.
            compares.push(Compare::version("j/", op, 1).with_prefix());
            compares.push(Compare::value("j/", op, "x").with_prefix());
            compares.push(Compare::mod_revision("j/1", op, 5).with_range("j/3"));
            compares.push(Compare::create_revision("nothing/", op, 0).with_prefix());
        }
        for compare in compares {
            out.push(answer(c.txn(probe(compare)).await));
        }
        // Several compares: all must hold.
        out.push(answer(
            c.txn(
                Txn::new()
                    .when([
                        Compare::version("k", CompareOp::Equal, 2),
                        Compare::value("k", CompareOp::Equal, "wrong"),
                    ])
                    .and_then([TxnOp::put("won", "1", None)])
                    .or_else([TxnOp::put("lost", "1", None)]),
            )
            .await,
        ));
        out.push(answer(
            c.get("", Some(GetOptions::new().with_all_keys())).await,
        ));
        out
    })
    .await;
}

#[tokio::test]
async fn operations_nesting_and_prev_kv() {
    same_answers(|mut c: Client| async move {
        vec![
            answer(c.put("a", "1", None).await),
            answer(c.put("b", "2", None).await),
            // Every operation kind in one revision, prev_kv on the writes.
            answer(
                c.txn(Txn::new().and_then([
                    TxnOp::put("a", "10", Some(PutOptions::new().with_prev_key())),
                    TxnOp::get("a", None),
                    TxnOp::delete("b", Some(DeleteOptions::new().with_prev_key())),
                    TxnOp::get("", Some(GetOptions::new().with_all_keys())),
                ]))
                .await,
            ),
            // Nested, both ways, with the inner compares seeing the state before the txn.
            answer(
                c.txn(
                    Txn::new()
                        .when([Compare::value("a", CompareOp::Equal, "10")])
                        .and_then([
                            TxnOp::put("a", "11", None),
                            TxnOp::txn(
                                Txn::new()
                                    .when([Compare::value("a", CompareOp::Equal, "10")])
                                    .and_then([TxnOp::put("inner", "saw-10", None)])
                                    .or_else([TxnOp::put("inner", "saw-other", None)]),
                            ),
                        ])
                        .or_else([TxnOp::put("outer", "failed", None)]),
                )
                .await,
            ),
            answer(
                c.txn(
                    Txn::new()
                        .when([Compare::version("a", CompareOp::Less, 1)])
                        .or_else([TxnOp::txn(Txn::new().and_then([TxnOp::get(
                            "a",
                            Some(GetOptions::new().with_revision(2)),
                        )]))]),
                )
                .await,
            ),
            // A read-only and an empty transaction take no revision.
            answer(c.txn(Txn::new().and_then([TxnOp::get("a", None)])).await),
            answer(c.txn(Txn::new()).await),
            // A delete of nothing and a put of the same key in one revision.
            answer(
                c.txn(Txn::new().and_then([
                    TxnOp::delete("zz", Some(DeleteOptions::new().with_prev_key())),
                    TxnOp::put("yy", "1", None),
                ]))
                .await,
            ),
            answer(c.get("", Some(GetOptions::new().with_all_keys())).await),
        ]
    })
    .await;
}

#[tokio::test]
async fn refusals_of_transactions() {
    same_answers(|mut c: Client| async move {
        let many = |n: usize| {
            Txn::new().and_then(
                (0..n)
                    .map(|i| TxnOp::get(format!("k{i}"), None))
                    .collect::<Vec<_>>(),
            )
        };
        vec![
            answer(c.put("x", "1", None).await),
            answer(c.txn(many(128)).await),
            answer(c.txn(many(129)).await),
            // Too many in the failure branch alone.
            answer(
                c.txn(
                    Txn::new().or_else(
                        (0..129)
                            .map(|i| TxnOp::put(format!("f{i}"), "", None))
                            .collect::<Vec<_>>(),
                    ),
                )
                .await,
            ),
            // A key written twice: two puts, a put inside a delete's range, in a nested txn.
            answer(
                c.txn(
                    Txn::new().and_then([TxnOp::put("d", "1", None), TxnOp::put("d", "2", None)]),
                )
                .await,
            ),
            answer(
                c.txn(Txn::new().and_then([
                    TxnOp::delete("c", Some(DeleteOptions::new().with_range("e"))),
                    TxnOp::put("d", "1", None),
                ]))
                .await,
            ),
            answer(
                c.txn(Txn::new().and_then([
                    TxnOp::put("d", "1", None),
                    TxnOp::txn(Txn::new().and_then([TxnOp::put("d", "2", None)])),
                ]))
                .await,
            ),
            // Not duplicates: the same key in the two branches, overlapping deletes,
            // reads of a written key.
            answer(
                c.txn(
                    Txn::new()
                        .and_then([TxnOp::put("d", "1", None)])
                        .or_else([TxnOp::put("d", "2", None)]),
                )
                .await,
            ),
            answer(
                c.txn(Txn::new().and_then([
                    TxnOp::delete("a", Some(DeleteOptions::new().with_range("m"))),
                    TxnOp::delete("b", Some(DeleteOptions::new().with_range("z"))),
                ]))
                .await,
            ),
            answer(
                c.txn(Txn::new().and_then([TxnOp::put("x", "2", None), TxnOp::get("x", None)]))
                    .await,
            ),
            // An empty key in an operation or a compare.
            answer(
                c.txn(Txn::new().and_then([TxnOp::put("", "v", None)]))
                    .await,
            ),
            answer(c.txn(Txn::new().and_then([TxnOp::get("", None)])).await),
            answer(c.txn(Txn::new().and_then([TxnOp::delete("", None)])).await),
            answer(
                c.txn(probe(Compare::version("", CompareOp::Equal, 0)))
                    .await,
            ),
            // Refused while applying: a missing lease, a future revision, ignore_value on a
            // missing key; in the branch taken only.
            answer(
                c.txn(Txn::new().and_then([TxnOp::put(
                    "l",
                    "v",
                    Some(PutOptions::new().with_lease(404)),
                )]))
                .await,
            ),
            answer(
                c.txn(
                    Txn::new()
                        .and_then([TxnOp::get("x", Some(GetOptions::new().with_revision(1000)))]),
                )
                .await,
            ),
            answer(
                c.txn(Txn::new().and_then([TxnOp::put(
                    "nope",
                    "",
                    Some(PutOptions::new().with_ignore_value()),
                )]))
                .await,
            ),
            answer(
                c.txn(
                    Txn::new()
                        .when([Compare::version("x", CompareOp::Greater, 0)])
                        .and_then([TxnOp::put("ok", "1", None)])
                        .or_else([TxnOp::put(
                            "l",
                            "v",
                            Some(PutOptions::new().with_lease(404)),
                        )]),
                )
                .await,
            ),
            answer(c.get("", Some(GetOptions::new().with_all_keys())).await),
        ]
    })
    .await;
}
